import Foundation
import Imaging
import Metrics

/// A labelled test set: good images, defect images by type, optional ground-truth masks.
public struct EvaluationSet: Sendable {
    /// One test image.
    public struct Item: Sendable {
        /// Image file.
        public var path: String
        /// "good" or the defect type.
        public var type: String
        /// Ground-truth mask file, if any (defect images only).
        public var mask: String?
    }

    /// Training images (good), when the layout has them.
    public var trainingImages: [String]
    /// Test images.
    public var items: [Item]

    /// Reads the MVTec AD layout: `train/good`, `test/<type>`, `ground_truth/<type>/<stem>_mask.png`.
    public static func mvtec(_ root: String) throws -> EvaluationSet {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isFolder) else { throw PipelineError.input("\(root): no such folder") }
        guard isFolder.boolValue else { throw PipelineError.input("\(root): not a folder (give the dataset's root folder)") }
        let test = (root as NSString).appendingPathComponent("test")
        guard let types = try? fm.contentsOfDirectory(atPath: test) else {
            throw PipelineError.input("\(root): not an MVTec-style dataset (no test/ folder); use --good and --defects for a plain folder layout")
        }
        let trainDir = (root as NSString).appendingPathComponent("train/good")
        let training = fm.fileExists(atPath: trainDir) ? try ImageFolder.images(in: [trainDir]) : []
        var items = [Item]()
        for type in types.sorted() {
            let dir = (test as NSString).appendingPathComponent(type)
            for path in try ImageFolder.images(in: [dir]) {
                var mask: String?
                if type != "good" {
                    let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                    let candidate = (root as NSString).appendingPathComponent("ground_truth/\(type)/\(stem)_mask.png")
                    if fm.fileExists(atPath: candidate) { mask = candidate }
                }
                items.append(Item(path: path, type: type, mask: mask))
            }
        }
        return EvaluationSet(trainingImages: training, items: items)
    }

    /// A plain layout: a folder of good images, a folder of defect images, an optional mask
    /// folder with `<stem>_mask.png` or `<stem>.png` per defect image.
    public static func folders(good: String, defects: String, masks: String?) throws -> EvaluationSet {
        var items = try ImageFolder.images(in: [good]).map { Item(path: $0, type: "good", mask: nil) }
        for path in try ImageFolder.images(in: [defects]) {
            var mask: String?
            if let masks {
                let stem = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
                for name in ["\(stem)_mask.png", "\(stem).png"] {
                    let candidate = (masks as NSString).appendingPathComponent(name)
                    if FileManager.default.fileExists(atPath: candidate) { mask = candidate; break }
                }
            }
            items.append(Item(path: path, type: "defect", mask: mask))
        }
        return EvaluationSet(trainingImages: [], items: items)
    }
}

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

/// Runs a detector over a labelled set and computes every metric, streaming the pixels.
public enum Evaluator {
    /// Range of normalized map values covered by the pixel-metric bins (values beyond are clamped).
    static let pixelRange: ClosedRange<Double> = -2...30

    /// Evaluates `detector` on `set`.
    public static func evaluate(_ detector: Detector, on set: EvaluationSet,
                                progress: ProgressHandler = { _, _, _ in }) -> EvaluationReport {
        evaluate(detector, on: set, progress: progress) { _, _, _ in }
    }

    /// Evaluates `detector` on `set`; `visit` sees each inspected image with its ground-truth mask
    /// (all false for good images) and each unreadable one (nil), e.g. to fill a report; an error
    /// it throws ends the evaluation.
    public static func evaluate(_ detector: Detector, on set: EvaluationSet,
                                progress: ProgressHandler,
                                visit: (EvaluationSet.Item, (image: Image, inspection: Inspection, truth: [Bool])?, Error?) throws -> Void) rethrows -> EvaluationReport {
        let types = Array(Set(set.items.map(\.type)).subtracting(["good"])).sorted()
        var byType = [String: PixelMetricAccumulator]()
        for t in types { byType[t] = PixelMetricAccumulator(range: pixelRange, binCount: 32_000) }
        var goodPixels = PixelMetricAccumulator(range: pixelRange, binCount: 32_000)
        var scored = [ScoredImage](), errors = [String](), times = [Double]()
        for (i, item) in set.items.enumerated() {
            progress("evaluate", i, set.items.count)
            let inspected: (image: Image, inspection: Inspection, truth: [Bool])?
            do {
                let t0 = Date()
                let image = try ImageCodec.read(contentsOf: item.path)
                let inspection = detector.inspect(image)
                times.append(Date().timeIntervalSince(t0) * 1000)
                scored.append(ScoredImage(path: item.path, type: item.type, score: Double(inspection.score)))
                var mask = [Bool](repeating: false, count: inspection.map.count)
                if let maskPath = item.mask {
                    let m = try ImageCodec.read(contentsOf: maskPath).gray()
                        .resized(width: image.width, height: image.height, method: .nearest)
                    mask = m.pixels.map { $0 > 127 }
                }
                inspected = (image, inspection, mask)
                if item.type == "good" {
                    goodPixels.add(map: inspection.map, mask: mask, width: image.width, height: image.height)
                } else {
                    byType[item.type]?.add(map: inspection.map, mask: mask, width: image.width, height: image.height)
                }
            } catch {
                errors.append(String(describing: error))
                inspected = nil
                try visit(item, nil, error)
            }
            if let inspected { try visit(item, inspected, nil) }
        }
        progress("evaluate", set.items.count, set.items.count)
        func group(_ images: [ScoredImage], _ pixels: PixelMetricAccumulator) -> GroupMetrics {
            let scores = images.map(\.score), labels = images.map { $0.type != "good" }
            let at = operatingPoint(scores: scores, labels: labels, threshold: Double(detector.threshold))
            let best = bestF1(scores: scores, labels: labels)
            return GroupMetrics(images: images.count, image_auroc: areaUnderROC(scores: scores, labels: labels),
                                pixel_auroc: pixels.pixelAUROC, pixel_auroc_error_bound: pixels.pixelAUROCErrorBound,
                                aupro: pixels.aupro(maxFPR: 0.3), f1_max: best?.f1, f1_threshold: best?.threshold,
                                average_precision: averagePrecision(scores: scores, labels: labels),
                                precision: at.precision, recall: at.recall, f1: at.f1,
                                true_positives: at.truePositives, false_positives: at.falsePositives,
                                true_negatives: at.trueNegatives, false_negatives: at.falseNegatives)
        }
        // Each type is scored with the good images; overall is every group merged, so no image's
        // pixels and regions are binned twice.
        var perType = [String: GroupMetrics]()
        var all = goodPixels
        for t in types {
            guard let typePixels = byType[t] else { continue }
            var pixels = typePixels
            pixels.merge(goodPixels)
            perType[t] = group(scored.filter { $0.type == t || $0.type == "good" }, pixels)
            all.merge(typePixels)
        }
        let sortedTimes = times.sorted()
        return EvaluationReport(threshold: Double(detector.threshold), overall: group(scored, all), per_type: perType,
                                scores: scored, errors: errors,
                                ms_per_image: sortedTimes.isEmpty ? 0 : sortedTimes[sortedTimes.count / 2])
    }
}
