import Detection
import Foundation
import Imaging
import SafeFiles

/// One row of results.csv / results.json.
public struct InspectionRecord: Codable, Sendable {
    /// Input path as given.
    public var path: String
    /// Raw score (distance units); nil on error.
    public var score: Double?
    /// Normalized score (0: median normal pixel, 1: peak of good images); nil on error.
    public var normalized_score: Double?
    /// "anomalous", "normal" or "error".
    public var verdict: String
    /// Share of the image predicted defective.
    public var defect_area: Double?
    /// Bounding boxes of predicted defect regions, largest first.
    public var boxes: [BoundingBox]
    /// Why the image could not be inspected.
    public var error: String?
    /// Output files written for this image, relative to the output folder.
    public var outputs: [String]
    /// Threshold the verdict used (normalized score); nil on error.
    public var threshold: Double?
    /// The shift detector's score (0: held-out good images' mean, 1: threshold); nil on error
    /// or when the model has no shift detectors.
    public var shift_score: Double?
    /// Whether the whole image looks unlike the training set; nil as `shift_score`.
    public var shifted: Bool?

    /// A record for an inspected image.
    public init(path: String, inspection: Inspection, outputs: [String]) {
        self.path = path
        score = Double(inspection.rawScore)
        normalized_score = Double(inspection.score)
        verdict = inspection.isAnomalous ? "anomalous" : "normal"
        defect_area = inspection.defectArea
        boxes = inspection.regions
        error = nil
        self.outputs = outputs
        threshold = Double(inspection.threshold)
        shift_score = inspection.shift.map { Double($0.score) }
        shifted = inspection.shift?.isShifted
    }

    /// A record for an image that could not be inspected.
    public init(path: String, error: String) {
        self.path = path
        verdict = "error"
        boxes = []
        self.error = error
        outputs = []
    }
}
