import Foundation
import Imaging
import Metrics
import Models
import Tensors

/// What training saw.
public struct TrainingReport: Sendable {
    /// Images used to fit the components.
    public var trainingImages: Int
    /// Images held out for calibration.
    public var calibrationImages: Int
    /// Files that could not be read, with the reason.
    public var failures: [String]
    /// Wall-clock seconds.
    public var seconds: Double
    /// Wall-clock seconds of each phase: features (the teacher pass), each component's fitting
    /// ("coreset", "gaussian", "students", "autoencoder"), calibration.
    public var phaseSeconds: [String: Double] = [:]
    /// The phases in the order they ran.
    public var phases: [String] = []
    /// The phase that fitted each component (components sharing a training share a phase).
    public var componentPhases: [Component: String] = [:]
}

/// Builds a detector from good images.
public enum Trainer {
    /// Tiles kept at least for the learned components of a tiled set (about 0.9 GB of inputs
    /// and teacher features at 256-pixel tiles): a few large images give them enough to learn from.
    public static let minimumKeptTiles = 640

    /// Trains on the images at `paths`. Unreadable files are skipped and reported; it fails
    /// only when too few readable images remain.
    ///
    /// Every random choice comes from one generator seeded by `settings.seed`, drawn in a fixed
    /// order: the calibration split, the channel permutation, each fitter's draws per image
    /// (in training order, fitters in settings order), then each fitter's own draws.
    public static func train(
        paths: [String], extractor: PatchFeatureExtractor, backboneSHA256: String,
        settings: DetectorSettings, sensitivity: Double = 0.5,
        progress: ProgressHandler = { _, _, _ in }
    ) throws -> (Detector, TrainingReport) {
        var clock = PhaseClock()
        guard paths.count >= 2 else {
            throw PipelineError.input("training needs at least 2 good images, got \(paths.count)")
        }
        guard !settings.components.isEmpty else { throw PipelineError.input("no scoring components selected") }
        var settings = settings
        settings.scoreComponents = settings.scoreComponents.filter(settings.components.contains)
        if let reason = settings.resolutionRefusal { throw PipelineError.input(reason) }
        for component in settings.components {
            if let reason = component.type.refusal(for: settings) { throw PipelineError.input(reason) }
        }
        var generator = SeededGenerator(seed: settings.seed)
        var order = paths.sorted()
        order.shuffle(using: &generator)
        let holdOut = min(order.count - 1, max(1, Int((Double(order.count) * settings.calibrationShare).rounded())))
        let calibration = Array(order.prefix(holdOut)), training = Array(order.dropFirst(holdOut))
        var channelPermutation = Array(0..<settings.featureDimension)
        channelPermutation.shuffle(using: &generator)
        let context = TrainingContext(trainingImages: training.count, channelPermutation: channelPermutation)
        var fitters = settings.components.map { $0.type.fitter(settings: settings, context: context) }

        // 1. One teacher pass over the training images (tile by tile when tiled); each fitter
        //    sees every tile once, and what fitters need for later passes (inputs, teacher
        //    features) is kept: of a tiled image set, a seeded uniform sample (reservoir
        //    sampling) of as many tiles as there are training images, and at least
        //    `minimumKeptTiles`, so memory and the learned components' training time do not grow
        //    with the number of tiles beyond those of an untiled set of that many images.
        let needs = fitters.reduce(TrainingNeeds()) { $0.union($1.needs) }
        let data = TrainingData()
        var failures = [String]()
        var tilesSeen = 0
        let keptTiles = max(training.count, minimumKeptTiles)
        var pooled = [[Float]]()
        for (i, path) in training.enumerated() {
            progress("features", i, training.count)
            do {
                let image = try ImageCodec.read(contentsOf: path, options: settings.decodeOptions)
                var pooling = Pooling()
                defer { pooled.append(pooling.value) }
                ComponentInput.forEachTile(of: image, settings: settings, extractor: extractor) { sample in
                    pooling.add(sample.teacher)
                    if !needs.isEmpty,
                        let slot = generator.reservoirSlot(
                            seen: tilesSeen, capacity: settings.isTiled ? keptTiles : .max)
                    {
                        if needs.contains(.inputs) { TrainingData.keep(sample.image, in: &data.inputs, at: slot) }
                        if needs.contains(.teacherFeatures) {
                            TrainingData.keep(sample.teacher, in: &data.rawTeacher, at: slot)
                        }
                    }
                    tilesSeen += 1
                    for f in fitters.indices { fitters[f].observe(sample, generator: &generator) }
                }
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("features", training.count, training.count)
        clock.end("features")
        guard failures.count < training.count else {
            throw PipelineError.input("none of the training images could be read")
        }

        // 2. Each component fitted, in settings order; kept tensors are dropped once no
        //    remaining fitter needs them.
        var components = [any ScoringComponent]()
        // A fitter is dropped once fitted: what it accumulated (the Gaussian's sums, the
        // bank's candidate patches) must not stay alive while the next component fits.
        let phases = fitters.map(\.phase), laterNeeds = fitters.map(\.needs)
        for f in phases.indices {
            var fitter = fitters.removeFirst()
            components.append(try fitter.fit(data, generator: &generator, progress: progress))
            clock.end(phases[f])
            data.release(keeping: laterNeeds[(f + 1)...].reduce(TrainingNeeds()) { $0.union($1) })
        }

        // 3. Calibration on the held-out good images.
        var (detector, heldOut, shiftedHeldOut) = try calibrate(
            components, extractor: extractor, settings: settings, on: calibration,
            threshold: Detector.threshold(sensitivity: sensitivity),
            backboneSHA256: backboneSHA256, failures: &failures, progress: progress)
        clock.end("calibration")

        // 4. The image-level shift detectors, on the pooled features of both passes.
        detector.shift = ShiftModel.fit(
            training: pooled, heldOut: heldOut, shiftedHeldOut: shiftedHeldOut, seed: settings.seed)
        clock.end("shift")
        let report = TrainingReport(
            trainingImages: training.count, calibrationImages: calibration.count,
            failures: failures, seconds: clock.total, phaseSeconds: clock.seconds,
            phases: clock.order,
            componentPhases: Dictionary(uniqueKeysWithValues: zip(settings.components, phases)))
        return (detector, report)
    }

    /// The threshold that maximizes image-level F1 on a labelled validation set (normalized
    /// scale), and the F1 it reaches. Unreadable files are skipped and returned.
    public static func f1Threshold(
        for detector: Detector, good: [String], defects: [String],
        progress: ProgressHandler = { _, _, _ in }
    ) throws -> (threshold: Float, f1: Double, failures: [String]) {
        var scores = [Double](), labels = [Bool](), failures = [String]()
        let all = good.map { ($0, false) } + defects.map { ($0, true) }
        for (i, (path, label)) in all.enumerated() {
            progress("validation", i, all.count)
            do {
                scores.append(Double(detector.inspect(try detector.read(contentsOf: path).image).score))
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

/// Wall-clock time of named phases; a phase that runs twice (two components sharing one
/// training) adds up.
struct PhaseClock {
    let start = Date()
    var phaseStart = Date()
    var seconds = [String: Double]()
    var order = [String]()

    mutating func end(_ phase: String) {
        if seconds[phase] == nil { order.append(phase) }
        seconds[phase, default: 0] += Date().timeIntervalSince(phaseStart)
        phaseStart = Date()
    }

    var total: Double { Date().timeIntervalSince(start) }
}
