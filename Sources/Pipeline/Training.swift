import Foundation
import Imaging
import Metrics
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
    /// Wall-clock seconds of each phase: features (teacher pass, Gaussian statistics),
    /// coreset, students, autoencoder, calibration.
    public var phaseSeconds: [String: Double] = [:]
}

/// Builds a detector from good images.
public enum Trainer {
    /// Trains on the images at `paths`. Unreadable files are skipped and reported; it fails
    /// only when too few readable images remain.
    public static func train(paths: [String], extractor: PatchFeatureExtractor, backboneSHA256: String,
                             settings: DetectorSettings, sensitivity: Double = 0.5,
                             progress: ProgressHandler = { _, _, _ in }) throws -> (Detector, TrainingReport) {
        let start = Date()
        var phaseSeconds = [String: Double](), phaseStart = Date()
        func endPhase(_ name: String) {
            phaseSeconds[name] = Date().timeIntervalSince(phaseStart)
            phaseStart = Date()
        }
        guard paths.count >= 2 else {
            throw PipelineError.input("training needs at least 2 good images, got \(paths.count)")
        }
        var generator = SeededGenerator(seed: settings.seed)
        var order = paths.sorted()
        order.shuffle(using: &generator)
        let holdOut = min(order.count - 1, max(1, Int((Double(order.count) * settings.calibrationShare).rounded())))
        let calibration = Array(order.prefix(holdOut)), training = Array(order.dropFirst(holdOut))

        guard !settings.components.isEmpty else { throw PipelineError.input("no scoring components selected") }
        var settings = settings
        settings.scoreComponents = settings.scoreComponents.filter(settings.components.contains)
        if settings.components.contains(.gaussian) && settings.keepsAspectRatio {
            throw PipelineError.input("the gaussian component needs one fixed input size; drop --keep-aspect")
        }
        let usesBank = settings.components.contains(.knn)
        let learned = settings.components.contains(where: \.isLearned)
        if learned && settings.keepsAspectRatio {
            throw PipelineError.input("the st, variance and ae components need one fixed input size; drop --keep-aspect")
        }
        if settings.components.contains(.ae) && settings.inputSize % 32 != 0 {
            throw PipelineError.input("the ae component needs an input size that is a multiple of 32, got \(settings.inputSize)")
        }
        // Kept for the learned components: their training passes over the images many times.
        var inputs = [Tensor](), teacherFeatures = [Tensor]()
        // Positional Gaussian over a seeded random subset of the teacher channels.
        var channelOrder = Array(0..<PatchFeatureExtractor.dimension)
        channelOrder.shuffle(using: &generator)
        let gaussianChannels = Array(channelOrder.prefix(min(settings.gaussianChannels, PatchFeatureExtractor.dimension))).sorted()
        let grid = settings.featureGrid
        var accumulator = settings.components.contains(.gaussian)
            ? PositionalGaussianAccumulator(channels: gaussianChannels, height: grid.height, width: grid.width)
            : nil

        // 1. Candidate patches: a seeded random share of every training image's patches.
        let d = settings.embeddingDimension
        var failures = [String]()
        var candidates = [Float]()
        let perImage = max(1, min(grid.height * grid.width, settings.maxCandidates / max(1, training.count)))
        if usesBank { candidates.reserveCapacity(perImage * training.count * d) }
        for (i, path) in training.enumerated() {
            progress("features", i, training.count)
            do {
                let image = try ImageCodec.read(contentsOf: path)
                let input = settings.input(for: image)
                let teacher = extractor.embed(input)
                let features = Detector.embeddings(teacher, positionWeight: settings.positionWeight)
                accumulator?.add(features)
                if learned {
                    inputs.append(input)
                    teacherFeatures.append(teacher)
                }
                guard usesBank else { continue }
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
        endPhase("features")
        guard failures.count < training.count else { throw PipelineError.input("none of the training images could be read") }

        // 2. Coreset.
        var bank: PatchMemoryBank?
        if usesBank {
            progress("coreset", 0, 1)
            let chosen = PatchMemoryBank.greedyCoreset(candidates, dimension: d, size: settings.bankSize,
                                                       projectedDimension: settings.projectionDimension,
                                                       generator: &generator)
            var entries = [Float]()
            entries.reserveCapacity(chosen.count * d)
            for index in chosen { entries.append(contentsOf: candidates[(index * d)..<((index + 1) * d)]) }
            candidates = []
            bank = PatchMemoryBank(entries: Tensor(shape: [chosen.count, d], storage: entries))
            progress("coreset", 1, 1)
            endPhase("coreset")
        }
        let gaussian = accumulator?.finish()

        // 3. Learned components, on standardized teacher embeddings.
        var students: StudentEnsemble?, autoencoder: MemoryAutoencoder?
        if learned {
            let standardization = FeatureStandardization(of: teacherFeatures)
            let targets = teacherFeatures.map { standardization.apply($0) }
            teacherFeatures = []
            if settings.components.contains(where: \.usesStudents) {
                let trained = NetworkTrainer.trainStudents(inputs: inputs, targets: targets, settings: settings.learning,
                                                           seed: settings.seed, progress: progress)
                students = StudentEnsemble(students: trained, standardization: standardization)
                endPhase("students")
            }
            inputs = []
            if settings.components.contains(.ae) {
                autoencoder = NetworkTrainer.trainAutoencoder(targets: targets, standardization: standardization,
                                                              settings: settings.learning, seed: settings.seed, progress: progress)
                endPhase("autoencoder")
            }
        }

        // 4. Calibration on held-out good images: each component's map, then the fused map.
        let identity = Normalization(normalLevel: 0, peakLevel: 1)
        let threshold = Detector.threshold(sensitivity: sensitivity)
        var components = [[Float]](repeating: [], count: settings.components.count)
        var componentScores = [[Float]](repeating: [], count: settings.components.count)
        var detector = Detector(extractor: extractor, bank: bank, gaussian: gaussian, students: students, autoencoder: autoencoder,
                                componentNormalizations: settings.components.map { _ in identity }, settings: settings,
                                normalization: identity, threshold: threshold, backboneSHA256: backboneSHA256)
        // Coarse maps are small (one value per patch): kept, so the positional statistics and
        // the quantiles come from one pass of the networks.
        var coarse = [[[Float]]](repeating: [], count: settings.components.count)
        var geometry: Detector.MapGeometry?
        for (i, path) in calibration.enumerated() {
            progress("calibration", i, calibration.count)
            do {
                let image = try ImageCodec.read(contentsOf: path)
                let (maps, g) = detector.coarseMaps(image)
                for (c, map) in maps.enumerated() { coarse[c].append(map) }
                geometry = g
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("calibration", calibration.count, calibration.count)
        guard let geometry, let first = coarse.first, !first.isEmpty else {
            throw PipelineError.input("none of the calibration images could be read")
        }
        var positional = [Component: PositionalStandardization]()
        for (c, component) in settings.components.enumerated()
        where component.isLearned && settings.learning.positionalNormalization {
            let statistics = PositionalStandardization(of: coarse[c])
            positional[component] = statistics
            coarse[c] = coarse[c].map { statistics.apply($0) }
        }
        detector.positional = positional
        func refined(_ image: Int) -> [AnomalyResult] { coarse.map { detector.refine($0[image], geometry: geometry) } }
        for image in first.indices {
            for (c, result) in refined(image).enumerated() {
                componentScores[c].append(result.score)
                components[c] += stride(from: 0, to: result.map.count, by: 7).map { result.map[$0] }
            }
        }
        let perComponent = zip(components, componentScores).map {
            Normalization(normalLevel: quantile($0.0, 0.5), peakLevel: quantile($0.1, 0.99))
        }
        // The fused map (and the score's own map) from the same coarse maps, refined once more
        // (keeping every refined map instead would make memory grow with the calibration set).
        detector = Detector(extractor: extractor, bank: bank, gaussian: gaussian, students: students, autoencoder: autoencoder,
                            positional: positional, componentNormalizations: perComponent,
                            settings: settings, normalization: identity, threshold: threshold, backboneSHA256: backboneSHA256)
        // A single component's fine map is its raw map: its own calibration applies.
        let groups = [(Array(settings.components.indices), settings.wideBlurSigma > 0)]
            + (detector.hasScoreMap ? [(detector.scoreIndices, false)] : [])
        let ownCalibration = groups.map { indices, widened in indices.count == 1 && !widened }
        var pixels = groups.map { _ in [Float]() }, scores = groups.map { _ in [Float]() }
        if ownCalibration.contains(false) {
            for image in first.indices {
                let (map, scoreMap) = detector.fusedMaps(coarse: coarse.map { $0[image] }, geometry: geometry)
                for (g, result) in [map, scoreMap ?? map].prefix(groups.count).enumerated() where !ownCalibration[g] {
                    scores[g].append(result.score)
                    pixels[g] += stride(from: 0, to: result.map.count, by: 7).map { result.map[$0] }
                }
            }
        }
        let calibrated = groups.indices.map { g in
            ownCalibration[g] ? perComponent[groups[g].0[0]]
                : Normalization(normalLevel: quantile(pixels[g], 0.5), peakLevel: quantile(scores[g], 0.99))
        }
        let final = calibrated[0], scoreNormalization = calibrated.count > 1 ? calibrated[1] : final
        detector = Detector(extractor: extractor, bank: bank, gaussian: gaussian, students: students, autoencoder: autoencoder,
                            positional: positional, componentNormalizations: perComponent, settings: settings,
                            normalization: final, scoreNormalization: scoreNormalization, threshold: threshold,
                            backboneSHA256: backboneSHA256)
        endPhase("calibration")
        let report = TrainingReport(trainingImages: training.count, calibrationImages: calibration.count,
                                    failures: failures, seconds: Date().timeIntervalSince(start), phaseSeconds: phaseSeconds)
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

extension Trainer {
    /// The threshold that maximizes image-level F1 on a labelled validation set (normalized
    /// scale), and the F1 it reaches. Unreadable files are skipped and returned.
    public static func f1Threshold(for detector: Detector, good: [String], defects: [String],
                                   progress: ProgressHandler = { _, _, _ in }) throws -> (threshold: Float, f1: Double, failures: [String]) {
        var scores = [Double](), labels = [Bool](), failures = [String]()
        let all = good.map { ($0, false) } + defects.map { ($0, true) }
        for (i, (path, label)) in all.enumerated() {
            progress("validation", i, all.count)
            do {
                scores.append(Double(detector.inspect(try ImageCodec.read(contentsOf: path)).score))
                labels.append(label)
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("validation", all.count, all.count)
        guard labels.contains(true), labels.contains(false), let best = bestF1(scores: scores, labels: labels) else {
            throw PipelineError.input("--threshold f1 needs readable good and defect validation images")
        }
        return (Float(best.threshold), best.f1, failures)
    }
}
