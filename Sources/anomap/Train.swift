import ArgumentParser
import Batch
import Detection
import Foundation
import Models
import Tensors

extension DetectorSettings.Preset: ExpressibleByArgument {}

/// Options that shape training, shared by `train` and `eval --train`.
struct TrainingOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Starting settings: learned (gaussian+st+ae, the default: best region outlines, minutes to train) or fast (gaussian+knn with --wide-blur-sigma 24 and --bank-size 1024: seconds to train, under 20 ms per image); the options below override it.",
            valueName: "learned|fast"))
    var preset = DetectorSettings.Preset.learned

    @Option(
        name: .long,
        help:
            "Side of the square the images are resized to for the backbone, or with --keep-aspect the square root of the working pixels (multiple of 8; default: chosen from the training images, 256 for square ones)."
    )
    var inputSize: Int?

    @Option(
        name: .long,
        help:
            "Cut the working image into tiles of this side (multiple of 32 in 64...1024; 0: no tiles; default: 256 for elongated or large training images, else 0)."
    )
    var tile: Int?

    @Option(name: .long, help: "Share of a tile's side that neighbouring tiles overlap (0...0.75).")
    var tileOverlap = DetectorSettings().tileOverlap

    @Option(name: .long, help: "Patch embeddings kept in the memory bank (default 4096; 1024 with --preset fast).")
    var bankSize: Int?

    @Option(name: .long, help: "Share of the good images held out to calibrate normalization and threshold.")
    var calibrationShare = 0.15

    @Option(name: .long, help: "Seed for every random choice; the same seed gives the same model bytes.")
    var seed: UInt64 = 0

    @Option(
        name: .long,
        help:
            "Scoring components, comma-separated: \(ComponentRegistry.summaries). Default: gaussian,st,ae (gaussian,knn with --preset fast)."
    )
    var components: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Components whose fused map gives the image score (default: gaussian with a preset's own --components, else all of them); the heatmap always fuses all.",
            valueName: "components"))
    var scoreComponents: String?

    @Option(
        name: .long,
        help:
            "Teacher channels (a seeded random subset of the embedding's 152, or 176 with --fine-features) the gaussian component models (default: all; 100 at a common size, where the grid is larger)."
    )
    var gaussianChannels: Int?

    @Flag(
        name: .long, inversion: .prefixedNo,
        help:
            "Add the teacher's stride-4 stage (24 channels, averaged down to the stride-8 grid) to every patch embedding: finer detail for hairline and pinhole defects (default: on where train keeps the aspect of elongated or large images, else off)."
    )
    var fineFeatures: Bool?

    @Option(
        name: .long,
        help:
            "Comma-separated weights of the components in the fused map (default: 1,2,1 with the default --components, else equal)."
    )
    var componentWeights: String?

    @Option(name: .long, help: "Gaussian smoothing of the anomaly map, in pixels at the model resolution.")
    var blurSigma = DetectorSettings().blurSigma

    @Option(
        name: .long,
        help:
            "Wide smoothing, in pixels at the model resolution: the heatmap becomes the pixelwise maximum of the map smoothed by --blur-sigma and by this (covers large, smooth defects whole; 0, the default: off; 24 with --preset fast). The image score stays on the --blur-sigma map."
    )
    var wideBlurSigma: Float?

    @Flag(
        name: .long, inversion: .prefixedNo,
        help:
            "Keep each image's aspect ratio (about input-size^2 pixels) instead of squashing it square (default: chosen from the training images)."
    )
    var keepAspect: Bool?

    @Option(
        name: .long,
        help:
            "Weight of the patch position in the embedding (0: position-free; default: 1 for a tiled model with knn, else 0)."
    )
    var positionWeight: Float?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Image threshold on the normalized scale, or 'f1' to pick the F1-optimal one on --validation-good/--validation-defects (default: from --sensitivity).",
            valueName: "value|f1"))
    var threshold: String?

    @Option(name: .long, help: "Folder of good validation images (for --threshold f1).")
    var validationGood: String?

    @Option(name: .long, help: "Folder of defect validation images (for --threshold f1).")
    var validationDefects: String?

    @Option(
        name: .long,
        help: "0...1; higher flags more images (default threshold = 1.5 - sensitivity on the normalized scale).")
    var sensitivity = 0.5

    @Flag(
        name: .long,
        help:
            "Also fit ODIN's input perturbation for the odin shift detector (its magnitude chosen with the temperature on the held-out images; about 0.15 s more per held-out image)."
    )
    var odinPerturbation = false

    @OptionGroup(title: "Learned components (st, variance, ae, gan)")
    var learning: LearningOptions

    func validate() throws {
        guard (32...1024).contains(inputSize ?? 256), (inputSize ?? 256) % 8 == 0 else {
            throw ValidationError("--input-size must be a multiple of 8 between 32 and 1024")
        }
        if let refusal = settings.resolutionRefusal { throw ValidationError(refusal) }
        guard components.map({ (try? Component.list($0)) != nil }) ?? true else {
            throw ValidationError("--components takes a comma-separated list of: \(ComponentRegistry.namesList)")
        }
        if let scoreComponents {
            guard let parsed = try? Component.list(scoreComponents), parsed.allSatisfy(parsedComponents.contains) else {
                throw ValidationError("--score-components must be a comma-separated subset of --components")
            }
        }
        // Without --no-fine-features, train may add the stride-4 channels (a channel count the
        // embedding lacks is then clamped to all of them).
        let dimension = PatchFeatureExtractor.dimension(includingStride4: fineFeatures ?? true)
        guard (1...dimension).contains(gaussianChannels ?? dimension) else {
            throw ValidationError("--gaussian-channels must be in 1...\(dimension)")
        }
        if let componentWeights {
            let count = componentWeights.split(separator: ",").count
            guard parsedWeights.count == count, count == parsedComponents.count,
                parsedWeights.allSatisfy({ $0 >= 0 && $0.isFinite }), parsedWeights.contains(where: { $0 > 0 })
            else {
                throw ValidationError("--component-weights needs one non-negative number per component")
            }
        }
        guard blurSigma >= 0, blurSigma <= 64 else { throw ValidationError("--blur-sigma must be in 0...64") }
        guard (0...64).contains(wideBlurSigma ?? 0) else {
            throw ValidationError("--wide-blur-sigma must be in 0...64")
        }
        guard (positionWeight ?? 0) >= 0, (positionWeight ?? 0).isFinite else {
            throw ValidationError("--position-weight must be >= 0")
        }
        guard (bankSize ?? 1) >= 1 else { throw ValidationError("--bank-size must be positive") }
        guard calibrationShare > 0, calibrationShare < 1 else {
            throw ValidationError("--calibration-share must be in (0, 1)")
        }
        guard (0...1).contains(sensitivity) else { throw ValidationError("--sensitivity must be in 0...1") }
        if let threshold {
            if threshold == "f1" {
                guard validationGood != nil, validationDefects != nil else {
                    throw ValidationError("--threshold f1 needs --validation-good DIR and --validation-defects DIR")
                }
            } else if Float(threshold).map({ !$0.isFinite }) ?? true {
                throw ValidationError("--threshold takes a number or 'f1'")
            }
        }
    }

    /// Applies --threshold to a freshly trained detector; returns lines to report.
    func applyThreshold(to detector: inout Detector, progress: ProgressHandler) throws -> [String] {
        guard let threshold else { return [] }
        if let value = Float(threshold) {
            detector.threshold = value
            return []
        }
        let good = try ImageFolder.images(in: [validationGood ?? ""]),
            defects = try ImageFolder.images(in: [validationDefects ?? ""])
        let (value, f1, failures) = try Trainer.f1Threshold(
            for: detector, good: good, defects: defects, progress: progress)
        detector.threshold = value
        return failures.map { "skipped: \($0)" } + [
            String(
                format: "F1-optimal threshold %.3f (F1 %.3f on %d validation images)",
                value, f1, good.count + defects.count)
        ]
    }

    var parsedWeights: [Float] {
        componentWeights?.split(separator: ",").compactMap { Float($0.trimmingCharacters(in: .whitespaces)) } ?? []
    }

    /// The components trained: the preset's unless --components names others.
    var parsedComponents: [Component] { components.flatMap { try? Component.list($0) } ?? preset.settings.components }

    /// Whether the working resolution is left to `train` (no size option given).
    var choosesResolution: Bool { inputSize == nil || keepAspect == nil || tile == nil }

    /// The settings, the resolution chosen from the training images at `paths` where no option
    /// sets it; says on stderr (unless `quiet`) what was chosen.
    func settings(forTraining paths: [String], quiet: Bool) -> DetectorSettings {
        var s = settings
        guard choosesResolution || Self.needsGrid(s) else { return s }
        let choice = ResolutionChoice(sizes: ImageFolder.sampledSizes(paths))
        if choosesResolution {
            s.keepsAspectRatio = keepAspect ?? (tile.map { $0 > 0 } ?? choice.keepsAspectRatio)
            if let tile {
                s.tileSize = tile
            } else if s.keepsAspectRatio && !choice.keepsAspectRatio {
                // Aspect kept where the choice was a square: tiles unless every component takes
                // any size.
                var untiled = s
                untiled.tileSize = 0
                s.tileSize = Self.needsGrid(untiled) ? ResolutionChoice.tile : 0
            } else {
                s.tileSize = s.keepsAspectRatio ? choice.tileSize : 0
            }
            s.inputSize = inputSize ?? (s.keepsAspectRatio ? max(choice.inputSize, s.tileSize) : max(256, s.tileSize))
            if fineFeatures == nil { s.includesStride4 = s.keepsAspectRatio && choice.includesStride4 }
            if gaussianChannels == nil { s.gaussianChannels = s.featureDimension }
        }
        // Aspect kept without tiles (chosen for elongated sets of one aspect, or asked for with
        // --keep-aspect --tile 0): components that need one feature grid get one, the training
        // images' median size at about input-size^2 pixels.
        if Self.needsGrid(s) {
            (s.commonWidth, s.commonHeight) = s.commonSize(
                medianWidth: choice.medianWidth, medianHeight: choice.medianHeight)
            // Its Gaussian grows with the grid: PaDiM's 100 random channels keep it to about
            // 135 MB at 640^2 pixels (and measured as good as all 176 on the small-defect set).
            if gaussianChannels == nil { s.gaussianChannels = min(s.featureDimension, 100) }
        }
        // Tiled, where a patch lies in the whole image enters the memory bank's embedding: a
        // tile alone does not know (small-defect benchmark, fast preset: pixel AUROC 0.934 ->
        // 0.950, AUPRO 0.986 -> 0.987).
        if choosesResolution && s.isTiled && positionWeight == nil && s.components.contains(.knn) {
            s.positionWeight = 1
        }
        if !quiet {
            printError(
                "resolution: \(s.resolutionDescription) (\(choice.basis); --input-size, --keep-aspect and --tile override)"
            )
        }
        return s
    }

    /// Whether `s` keeps the aspect untiled with a component that needs one feature grid (the
    /// positional Gaussian, the students, the autoencoder), which then needs a common size.
    static func needsGrid(_ s: DetectorSettings) -> Bool {
        s.keepsAspectRatio && !s.isTiled && s.components.contains { $0.type.refusal(for: s) != nil }
    }

    /// The settings the options give, the resolution left at its defaults where no option sets it.
    var settings: DetectorSettings {
        var s = preset.settings
        s.components = parsedComponents
        s.includesStride4 = fineFeatures ?? false
        s.gaussianChannels = gaussianChannels ?? s.featureDimension
        s.blurSigma = blurSigma
        if let wideBlurSigma { s.wideBlurSigma = wideBlurSigma }
        if componentWeights != nil { s.componentWeights = parsedWeights }
        if let scoreComponents {
            s.scoreComponents = (try? Component.list(scoreComponents)) ?? []
        } else if parsedComponents != preset.settings.components {
            s.scoreComponents = []
        }
        s.tileSize = tile ?? 0
        s.tileOverlap = tileOverlap
        s.keepsAspectRatio = keepAspect ?? ((tile ?? 0) > 0)
        s.inputSize = inputSize ?? max(256, s.tileSize)
        if let bankSize { s.bankSize = bankSize }
        s.calibrationShare = calibrationShare
        s.seed = seed
        s.positionWeight = positionWeight ?? 0
        s.learning = learning.settings
        s.fitsODINPerturbation = odinPerturbation
        return s
    }
}

/// Options every model-running command shares.
struct RunOptions: ParsableArguments {
    /// Images a batch command runs side by side by default: two on two cores took 0.73x the
    /// wall time of one after the other (README, "Scripts, CI and large batches"), but a tiled
    /// model's large images would double the peak memory, so those go one at a time.
    func sideBySide(for detector: Detector) -> Int {
        guard detector.settings.tileSize == 0 else { return 1 }
        return max(1, min(threads, ProcessInfo.processInfo.activeProcessorCount))
    }

    @Option(name: .long, help: "Threads for the numeric kernels.")
    var threads = 2

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }
}

/// `anomap train`: learn normal appearance from a folder of good images.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Train a detector on a folder of good images.")

    @Argument(help: ArgumentHelp("Folder (searched recursively) or files of good images.", valueName: "good-dir"))
    var good: [String]

    @Option(
        name: [.short, .long], help: ArgumentHelp("Where to write the model bundle.", valueName: "model.safetensors"))
    var output: String

    @Flag(name: .long, help: "Print one JSON summary on stdout (images, errors, seconds per phase, model).")
    var json = false

    @OptionGroup var training: TrainingOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func run() throws {
        setComputeThreads(runOptions.threads)
        try exitOnFailure {
            let paths = try ImageFolder.images(in: good)
            let (network, sha) = try backbone.loadWithChecksum()
            let progress = ProgressReporter(quiet: runOptions.quiet)
            let settings = training.settings(forTraining: paths, quiet: runOptions.quiet)
            var (detector, report) = try Trainer.train(
                paths: paths, extractor: PatchFeatureExtractor(backbone: network),
                backboneSHA256: sha, settings: settings,
                sensitivity: training.sensitivity, progress: progress.handler)
            for failure in report.failures { printError("skipped: \(failure)") }
            for line in try training.applyThreshold(to: &detector, progress: progress.handler) where !runOptions.quiet {
                printError(line)
            }
            try ModelBundle.write(detector, to: output)
            if json {
                printJSON([
                    "training_images": report.trainingImages, "calibration_images": report.calibrationImages,
                    "errors": report.failures.count, "seconds": (report.seconds * 1000).rounded() / 1000,
                    "phase_seconds": report.phaseSeconds.mapValues { ($0 * 1000).rounded() / 1000 },
                    "components": training.parsedComponents.map(\.rawValue), "threshold": Double(detector.threshold),
                    "resolution": settings.resolutionDescription,
                    "model": output,
                ])
            }
            if !runOptions.quiet {
                let phases = report.phases.compactMap { name in
                    report.phaseSeconds[name].map { String(format: "%@ %.0f s", name, $0) }
                }
                Summary.print([
                    Summary.part(
                        String(
                            format: "trained on %d images, calibrated on %d (%@)", report.trainingImages,
                            report.calibrationImages,
                            training.parsedComponents.map(\.rawValue).joined(separator: "+")), .green),
                    Summary.part("\(report.failures.count) errors", report.failures.isEmpty ? nil : .yellow),
                    Summary.part(String(format: "%.1f s (%@)", report.seconds, phases.joined(separator: ", "))),
                    Summary.part("-> \(output)"),
                ])
            }
        }
    }
}

/// Runs `body`, turning pipeline and model errors into one stderr line and exit code 2.
func exitOnFailure(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch {
        printError("error: \(error)")
        throw ExitCode(2)
    }
}
