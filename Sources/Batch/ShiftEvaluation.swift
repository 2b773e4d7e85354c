import Detection
import Foundation
import Imaging
import Metrics
import Models
import Tensors

/// The evaluation protocol of whole-image shift detection: inlier test images against each
/// outlier set, every shift detector scored as a binary classifier (outlier = positive).
public struct ShiftEvaluation: Codable, Sendable {
    /// One detector on one outlier set.
    public struct Result: Codable, Sendable, Equatable {
        /// ROC AUC.
        public var roc_auc: Double?
        /// Area under the precision-recall curve (average precision).
        public var pr_auc: Double?
        /// False positive rate (inliers flagged) at 95% of the outliers caught.
        public var fpr95: Double?
        /// Outlier images in the set.
        public var outliers: Int
    }

    /// By detector, then by outlier set.
    public var detectors: [String: [String: Result]]
    /// The outlier sets in the order given (synthetic ones last).
    public var sets: [String]
    /// Inlier images scored.
    public var inliers: Int
    /// By detector: the share of inliers flagged at the model's threshold (shift score >= 1).
    public var inliers_flagged: [String: Double]
    /// By detector: the share of the defect images flagged at the threshold (a defect is not a shift).
    public var defects_flagged: [String: Double]
    /// Defect images scored.
    public var defects: Int
    /// The detector `inspect` reports.
    public var primary: String
    /// Every image's calibrated scores (detector order of `detectorNames`) by set ("inliers",
    /// each outlier set, "defects"): `eval-shift` writes them to scores.csv.
    public var scores: [(set: String, scores: [Double])] = []
    /// The detectors in score order.
    public var detectorNames: [String] = []

    enum CodingKeys: String, CodingKey {
        case detectors, sets, inliers, inliers_flagged, defects_flagged, defects, primary
    }

    /// scores.csv: set, detector scores (1 = threshold), one row per image.
    public var scoresCSV: String {
        (["set," + detectorNames.joined(separator: ",")]
            + scores.map { row in ([row.set] + row.scores.map { String(format: "%.6g", $0) }).joined(separator: ",") })
            .joined(separator: "\n") + "\n"
    }

    /// Scores every image and computes the table. `synthetic` adds `ImageShift.allCases` applied
    /// to each inlier (seeded by `seed`). Unreadable files are reported through `onError` and
    /// left out.
    public static func run(
        _ detector: Detector, inliers: [String], outliers: [(name: String, paths: [String])], defects: [String],
        synthetic: Bool, seed: UInt64 = 0, sideBySide: Int = 1, progress: ProgressHandler = { _, _, _ in },
        onError: (String) -> Void = { _ in }
    ) throws -> ShiftEvaluation {
        guard let shift = detector.shift else {
            throw PipelineError.model("the model has no shift detectors (trained before they existed): retrain it")
        }
        let names = shift.detectors.map { type(of: $0).name }
        let total =
            inliers.count * (1 + (synthetic ? ImageShift.allCases.count : 0))
            + outliers.reduce(0) { $0 + $1.paths.count } + defects.count
        let backbone = detector.extractor.backbone
        let perturbing = shift.needsPerturbedHead ? Lite0InputGradient(backbone) : nil
        func scores(_ image: Image) -> [Double] {
            shift.calibratedScores(detector.shiftFeatures(image, gradients: shift.needsGradients)) {
                HeadOutput(backbone: backbone, input: detector.settings.input(for: image), perturbing: perturbing)
            }.map(Double.init)
        }
        // `sideBySide` images at once, sharing the compute threads; `make` builds the images
        // in order on this thread (the synthetic shifts draw from one generator), at most two
        // per lane ahead, so memory stays bounded. Scores do not depend on the split.
        let width = max(1, sideBySide)
        let lanes = SideBySideThreads(threads: width, computeThreads: computeThreads, name: "anomap.shift")
        defer { lanes.close() }
        let lock = NSLock(), slots = DispatchSemaphore(value: 2 * width)
        var done = 0
        func scoreAll(_ count: Int, _ make: (Int) throws -> Image?) rethrows -> [[Double]] {
            let results = ScoreSlots(count)
            let group = DispatchGroup()
            func report() {
                lock.lock()
                let finished = done
                lock.unlock()
                progress("shift", finished, total)
            }
            for k in 0..<count {
                guard let image = try make(k) else { continue }
                slots.wait()
                report()
                group.enter()
                lanes.submit {
                    let row = scores(image)
                    lock.lock()
                    results.rows[k] = row
                    done += 1
                    lock.unlock()
                    slots.signal()
                    group.leave()
                }
            }
            group.wait()
            report()
            return results.rows.compactMap { $0 }
        }
        func read(_ path: String) -> Image? {
            do {
                return try detector.read(contentsOf: path).image
            } catch {
                onError("error: \(error)")
                return nil
            }
        }
        let inlierImages = inliers.compactMap(read)
        guard !inlierImages.isEmpty else { throw PipelineError.input("none of the inlier images could be read") }
        let inlierScores = scoreAll(inlierImages.count) { inlierImages[$0] }
        var sets = [(String, [[Double]])]()
        for set in outliers { sets.append((set.name, scoreAll(set.paths.count) { read(set.paths[$0]) })) }
        if synthetic {
            var generator = SeededGenerator(seed: seed)
            for kind in ImageShift.allCases {
                sets.append(
                    (
                        kind.rawValue,
                        try scoreAll(inlierImages.count) { try kind.apply(inlierImages[$0], generator: &generator) }
                    ))
            }
        }
        let defectScores = scoreAll(defects.count) { read(defects[$0]) }
        var table = [String: [String: Result]]()
        var inliersFlagged = [String: Double](), defectsFlagged = [String: Double]()
        for (d, name) in names.enumerated() {
            let negatives = inlierScores.map { $0[d] }
            for (set, outlierScores) in sets {
                let positives = outlierScores.map { $0[d] }
                let all = negatives + positives
                let labels = negatives.map { _ in false } + positives.map { _ in true }
                table[name, default: [:]][set] = Result(
                    roc_auc: areaUnderROC(scores: all, labels: labels),
                    pr_auc: averagePrecision(scores: all, labels: labels),
                    fpr95: falsePositiveRate(atTruePositiveRate: 0.95, scores: all, labels: labels),
                    outliers: positives.count)
            }
            func share(_ s: [[Double]]) -> Double { Double(s.filter { $0[d] >= 1 }.count) / Double(max(1, s.count)) }
            inliersFlagged[name] = share(inlierScores)
            defectsFlagged[name] = share(defectScores)
        }
        var evaluation = ShiftEvaluation(
            detectors: table, sets: sets.map(\.0), inliers: inlierScores.count, inliers_flagged: inliersFlagged,
            defects_flagged: defectsFlagged, defects: defectScores.count,
            primary: type(of: shift.detectors[shift.primary]).name)
        evaluation.detectorNames = names
        evaluation.scores =
            inlierScores.map { ("inliers", $0) } + sets.flatMap { set in set.1.map { (set.0, $0) } }
            + defectScores.map { ("defects", $0) }
        return evaluation
    }

    /// The table as text: one row per detector and outlier set.
    public var table: String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "-" }
        // The name column fits the longest name ("gradnorm-block") and a space.
        let width = max(10, (detectors.keys.map(\.count).max() ?? 0) + 1)
        func column(_ name: String) -> String { name.padding(toLength: width, withPad: " ", startingAt: 0) }
        var lines = [column("detector") + "outlier set            ROC-AUC  PR-AUC  FPR95  outliers"]
        for name in detectors.keys.sorted() {
            for set in sets {
                guard let r = detectors[name]?[set] else { continue }
                lines.append(
                    column(name)
                        + set.padding(toLength: 23, withPad: " ", startingAt: 0)
                        + "\(f(r.roc_auc))    \(f(r.pr_auc))   \(f(r.fpr95))  \(r.outliers)")
            }
            lines.append(
                column(name)
                    + String(
                        format: "flagged at the threshold: %.1f%% of %d inliers, %.1f%% of %d defect images",
                        100 * (inliers_flagged[name] ?? 0), inliers, 100 * (defects_flagged[name] ?? 0), defects))
        }
        return lines.joined(separator: "\n")
    }

    /// A bar chart of ROC-AUC per outlier set and detector, as SVG.
    public var plot: String {
        let names = detectors.keys.sorted(), barWidth = 14, group = names.count * barWidth + 16
        let width = 60 + group * sets.count, height = 260
        let colours = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2"]
        var svg =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height + 110)\" font-family=\"sans-serif\" font-size=\"11\">\n"
        svg += "<text x=\"4\" y=\"14\">ROC-AUC by outlier set (inliers: \(inliers) images)</text>\n"
        for tick in [0.5, 0.75, 0.9, 1.0] {
            let y = 20 + Double(height - 20) * (1 - tick)
            svg +=
                "<line x1=\"40\" x2=\"\(width)\" y1=\"\(y)\" y2=\"\(y)\" stroke=\"#ccc\"/><text x=\"4\" y=\"\(y + 4)\">\(tick)</text>\n"
        }
        for (s, set) in sets.enumerated() {
            let x0 = 50 + s * group
            for (k, name) in names.enumerated() {
                let v = detectors[name]?[set]?.roc_auc ?? 0
                let h = Double(height - 20) * v
                svg +=
                    "<rect x=\"\(x0 + k * barWidth)\" y=\"\(20 + Double(height - 20) - h)\" width=\"\(barWidth - 2)\" height=\"\(h)\" fill=\"\(colours[k % colours.count])\"><title>\(name) \(set): \(String(format: "%.3f", v))</title></rect>\n"
            }
            svg +=
                "<text transform=\"translate(\(x0 + 4),\(height + 8)) rotate(60)\">\(set.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;"))</text>\n"
        }
        for (k, name) in names.enumerated() {
            svg +=
                "<rect x=\"\(width - 90)\" y=\"\(30 + 16 * k)\" width=\"10\" height=\"10\" fill=\"\(colours[k % colours.count])\"/><text x=\"\(width - 75)\" y=\"\(39 + 16 * k)\">\(name)</text>\n"
        }
        return svg + "</svg>\n"
    }
}

/// Rows written by the scoring lanes, each slot by one lane, read after they all finish.
private final class ScoreSlots: @unchecked Sendable {
    var rows: [[Double]?]
    init(_ count: Int) { rows = [[Double]?](repeating: nil, count: count) }
}
