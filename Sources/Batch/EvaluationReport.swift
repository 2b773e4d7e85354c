import Detection
import Foundation
import Imaging
import Metrics

/// Metrics of one group of test images (one defect type against all good images, or all).
public struct GroupMetrics: Codable, Sendable {
    /// Images in the group.
    public var images: Int
    /// Image-level ROC AUC (nil without both classes).
    public var image_auroc: Double?
    /// Pixel-level ROC AUC over the ground-truth masks.
    public var pixel_auroc: Double?
    /// Largest error of the binned pixel AUROC.
    public var pixel_auroc_error_bound: Double?
    /// Area under the per-region overlap curve up to FPR 0.3, normalized.
    public var aupro: Double?
    /// Best image-level F1 over all thresholds.
    public var f1_max: Double?
    /// The threshold that reaches `f1_max`.
    public var f1_threshold: Double?
    /// Image-level average precision.
    public var average_precision: Double?
    /// Precision at the model's threshold.
    public var precision: Double?
    /// Recall at the model's threshold.
    public var recall: Double?
    /// F1 at the model's threshold.
    public var f1: Double?
    /// Defective images flagged at the threshold.
    public var true_positives: Int?
    /// Good images flagged at the threshold.
    public var false_positives: Int?
    /// Good images passed at the threshold.
    public var true_negatives: Int?
    /// Defective images passed at the threshold.
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
    /// The image file.
    public var path: String
    /// Its defect type, or "good".
    public var type: String
    /// Normalized image score.
    public var score: Double
}
