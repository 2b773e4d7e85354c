import Foundation
import Imaging
import Models
import Tensors

/// Progress of a long operation: phase name, items done, items in this phase.
public typealias ProgressHandler = (_ phase: String, _ done: Int, _ total: Int) -> Void

/// What training saw.
public struct TrainingReport: Sendable {
    /// Images used to build the bank.
    public var trainingImages: Int
    /// Images held out for calibration.
    public var calibrationImages: Int
    /// Files that could not be read, with the reason.
    public var failures: [String]
    /// Wall-clock seconds.
    public var seconds: Double
}

/// Builds a detector from good images.
public enum Trainer {
    /// Trains on the images at `paths`. Unreadable files are skipped and reported; it fails
    /// only when too few readable images remain.
    public static func train(paths: [String], extractor: PatchFeatureExtractor, backboneSHA256: String,
                             settings: DetectorSettings, sensitivity: Double = 0.5,
                             progress: ProgressHandler = { _, _, _ in }) throws -> (Detector, TrainingReport) {
        let start = Date()
        guard paths.count >= 2 else {
            throw PipelineError.input("training needs at least 2 good images, got \(paths.count)")
        }
        var generator = SeededGenerator(seed: settings.seed)
        var order = paths.sorted()
        order.shuffle(using: &generator)
        let holdOut = min(order.count - 1, max(1, Int((Double(order.count) * settings.calibrationShare).rounded())))
        let calibration = Array(order.prefix(holdOut)), training = Array(order.dropFirst(holdOut))

        // 1. Candidate patches: a seeded random share of every training image's patches.
        let d = settings.embeddingDimension
        var failures = [String]()
        var candidates = [Float]()
        let grid = (settings.inputSize + 7) / 8
        let perImage = max(1, min(grid * grid, settings.maxCandidates / max(1, training.count)))
        candidates.reserveCapacity(perImage * training.count * d)
        for (i, path) in training.enumerated() {
            progress("features", i, training.count)
            do {
                let image = try ImageCodec.read(contentsOf: path)
                let input = settings.input(for: image)
                let features = Detector.embeddings(extractor.embed(input), positionWeight: settings.positionWeight)
                let p = features.height * features.width
                var picks = Array(0..<p)
                picks.shuffle(using: &generator)
                for index in picks.prefix(perImage) {
                    for k in 0..<d { candidates.append(features.storage[k * p + index]) }
                }
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("features", training.count, training.count)
        guard !candidates.isEmpty else { throw PipelineError.input("none of the training images could be read") }

        // 2. Coreset.
        progress("coreset", 0, 1)
        let chosen = PatchMemoryBank.greedyCoreset(candidates, dimension: d, size: settings.bankSize,
                                                   projectedDimension: settings.projectionDimension,
                                                   generator: &generator)
        var entries = [Float]()
        entries.reserveCapacity(chosen.count * d)
        for index in chosen { entries.append(contentsOf: candidates[(index * d)..<((index + 1) * d)]) }
        candidates = []
        let bank = PatchMemoryBank(entries: Tensor(shape: [chosen.count, d], storage: entries))
        progress("coreset", 1, 1)

        // 3. Calibration on held-out good images.
        var detector = Detector(extractor: extractor, bank: bank, settings: settings,
                                normalization: Normalization(normalLevel: 0, peakLevel: 1),
                                threshold: Detector.threshold(sensitivity: sensitivity), backboneSHA256: backboneSHA256)
        var pixels = [Float](), scores = [Float]()
        for (i, path) in calibration.enumerated() {
            progress("calibration", i, calibration.count)
            do {
                let result = detector.analyze(try ImageCodec.read(contentsOf: path))
                scores.append(result.score)
                pixels += stride(from: 0, to: result.map.count, by: 7).map { result.map[$0] }
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("calibration", calibration.count, calibration.count)
        guard !scores.isEmpty else { throw PipelineError.input("none of the calibration images could be read") }
        detector = Detector(extractor: extractor, bank: bank, settings: settings,
                            normalization: Normalization(normalLevel: quantile(pixels, 0.5), peakLevel: quantile(scores, 0.99)),
                            threshold: detector.threshold, backboneSHA256: backboneSHA256)
        let report = TrainingReport(trainingImages: training.count, calibrationImages: calibration.count,
                                    failures: failures, seconds: Date().timeIntervalSince(start))
        return (detector, report)
    }
}

/// Linear-interpolation quantile (numpy's default) of a non-empty sample.
public func quantile(_ values: [Float], _ q: Double) -> Float {
    precondition(!values.isEmpty)
    let sorted = values.sorted()
    let position = q * Double(sorted.count - 1)
    let lo = Int(position.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
    let t = Float(position - Double(lo))
    return sorted[lo] * (1 - t) + sorted[hi] * t
}
