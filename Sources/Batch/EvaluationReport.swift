import Detection
import Foundation
import Imaging
import Metrics

/// Metrics of one group of test images (one defect type against all good images, or all).
public struct GroupMetrics: Codable, Sendable {
    public var images: Int
    public var image_auroc: Double?
    public var pixel_auroc: Double?
    public var pixel_auroc_error_bound: Double?
    public var aupro: Double?
    public var f1_max: Double?
    public var f1_threshold: Double?
    public var average_precision: Double?
    public var precision: Double?
    public var recall: Double?
    public var f1: Double?
    public var true_positives: Int?
    public var false_positives: Int?
    public var true_negatives: Int?
    public var false_negatives: Int?
}

/// Everything `anomap eval` measures.
public struct EvaluationReport: Codable, Sendable {
    /// Threshold the classification report uses (normalized score).
    public var threshold: Double
    /// All test images.
    public var overall: GroupMetrics
    /// Each defect type against all good images.
    public var per_type: [String: GroupMetrics]
    /// Per-image scores, for plots.
    public var scores: [ScoredImage]
    /// Files that could not be evaluated.
    public var errors: [String]
    /// Inference milliseconds per image (decode to map), median.
    public var ms_per_image: Double
}

/// One scored test image.
public struct ScoredImage: Codable, Sendable {
    public var path: String
    public var type: String
    public var score: Double
}
