import Detection
import Foundation
import Imaging
import Metrics

/// Runs a detector over a labelled set and computes every metric, streaming the pixels.
public enum Evaluator {
    /// Range of normalized map values covered by the pixel-metric bins (values beyond are clamped).
    static let pixelRange: ClosedRange<Double> = -2...30

    /// Evaluates `detector` on `set`.
    public static func evaluate(
        _ detector: Detector, on set: EvaluationSet,
        progress: ProgressHandler = { _, _, _ in }
    ) -> EvaluationReport {
        evaluate(detector, on: set, progress: progress) { _, _, _ in }
    }

    /// Evaluates `detector` on `set`; `visit` sees each image as the model read it (a large JPEG
    /// may be smaller, see `Detector.read`), its inspection and its ground-truth mask (all false
    /// for good images; both at the image's full size), and each unreadable image (nil), e.g.
    /// to fill a report; an error it throws ends the evaluation.
    public static func evaluate(
        _ detector: Detector, on set: EvaluationSet,
        progress: ProgressHandler,
        visit: (EvaluationSet.Item, (image: Image, inspection: Inspection, truth: [Bool])?, Error?) throws -> Void
    ) rethrows -> EvaluationReport {
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
                let (image, size) = try detector.read(contentsOf: item.path)
                let inspection = detector.inspect(image, size: size)
                times.append(Date().timeIntervalSince(t0) * 1000)
                scored.append(ScoredImage(path: item.path, type: item.type, score: Double(inspection.score)))
                var mask = [Bool](repeating: false, count: inspection.map.count)
                if let maskPath = item.mask {
                    let m = try ImageCodec.read(contentsOf: maskPath).gray()
                        .resized(width: size.width, height: size.height, method: .nearest)
                    mask = m.pixels.map { $0 > 127 }
                }
                inspected = (image, inspection, mask)
                if item.type == "good" {
                    goodPixels.add(map: inspection.map, mask: mask, width: size.width, height: size.height)
                } else {
                    byType[item.type]?.add(map: inspection.map, mask: mask, width: size.width, height: size.height)
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
            return GroupMetrics(
                images: images.count, image_auroc: areaUnderROC(scores: scores, labels: labels),
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
        return EvaluationReport(
            threshold: Double(detector.threshold), overall: group(scored, all), per_type: perType,
            scores: scored, errors: errors,
            ms_per_image: sortedTimes.isEmpty ? 0 : sortedTimes[sortedTimes.count / 2])
    }
}
