import Detection
import Foundation
import Imaging
import SafeFiles

/// One image of a triage report (`report.json` and the data embedded in `index.html`).
public struct ReportItem: Codable, Sendable, Equatable {
    /// Absolute path of the input image; marks exported from the page refer to it.
    public var path: String
    /// File name shown on the card.
    public var name: String
    /// Defect type when evaluating, the parent folder's name when inspecting.
    public var group: String
    /// Normalized score; nil on error.
    public var score: Double?
    /// Raw score (distance units); nil on error.
    public var raw_score: Double?
    /// "anomalous", "normal" or "error".
    public var verdict: String
    /// Share of the image predicted defective.
    public var defect_area: Double?
    /// Why the image could not be inspected.
    public var error: String?
    /// The shift detector's calibrated score (1: threshold); nil without one.
    public var shift_score: Double?
    /// Whether the image looks unlike the training set as a whole; nil without a shift detector.
    public var shifted: Bool?
    /// Picture files relative to the report folder, by kind: thumb, photo, heatmap, overlay,
    /// mask, truth.
    public var images: [String: String]
}

/// One row of the metrics table shown in an evaluation report.
public struct ReportMetricsRow: Codable, Sendable, Equatable {
    /// Defect type, or "overall".
    public var name: String
    /// Images in the group.
    public var images: Int
    /// Image-level ROC AUC (nil without both classes).
    public var image_auroc: Double?
    /// Pixel-level ROC AUC over the ground-truth masks.
    public var pixel_auroc: Double?
    /// Area under the per-region overlap curve up to FPR 0.3, normalized.
    public var aupro: Double?
    /// Best image-level F1 over all thresholds.
    public var f1_max: Double?
    /// Image-level average precision.
    public var average_precision: Double?
}

/// Everything the report page shows (`report.json`).
public struct ReportData: Codable, Sendable {
    /// Page title.
    public var title: String
    /// "inspect" or "eval".
    public var kind: String
    /// Creation time, ISO 8601; also keys the page's saved marks.
    public var generated: String
    /// Verdict threshold on the normalized score.
    public var threshold: Double
    /// Images, most suspicious first, errors last.
    public var items: [ReportItem]
    /// Metrics table rows (evaluation only), overall first.
    public var metrics: [ReportMetricsRow]?
    /// Plot files next to the page (evaluation only).
    public var plots: [String]?
}
