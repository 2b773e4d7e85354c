import ArgumentParser
import Foundation
import Models
import Pipeline
import Tensors

/// `anomap eval`: accuracy on a labelled dataset.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure accuracy on a labelled dataset (MVTec AD layout, or --good/--defects folders).")

    @Argument(help: ArgumentHelp("Dataset root with train/good, test/<type>, ground_truth/<type>.", valueName: "dataset"))
    var dataset: String?

    @Option(name: .long, help: "Folder of good test images (plain layout, instead of a dataset root).")
    var good: String?

    @Option(name: .long, help: "Folder of defect test images (plain layout).")
    var defects: String?

    @Option(name: .long, help: "Folder of ground-truth masks <stem>_mask.png or <stem>.png (plain layout).")
    var masks: String?

    @Option(name: .long, help: ArgumentHelp("Model bundle to evaluate.", valueName: "model.safetensors"))
    var model: String?

    @Flag(name: .long, help: "Train on the dataset's train/good first (instead of --model).")
    var train = false

    @Option(name: .long, help: ArgumentHelp("Evaluate only these components of the model, comma-separated (each keeps its stored calibration).", valueName: "components"))
    var only: String?

    @Option(name: .long, help: "Also save the model trained with --train here.")
    var saveModel: String?

    @Option(name: .long, help: ArgumentHelp("Folder for metrics.json and the plots.", valueName: "dir"))
    var out: String

    @OptionGroup var training: TrainingOptions
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func validate() throws {
        if (model == nil) == !train { throw ValidationError("give exactly one of --model FILE or --train") }
        if dataset == nil && (good == nil || defects == nil) {
            throw ValidationError("give a dataset root, or --good and --defects folders")
        }
        if train && dataset == nil { throw ValidationError("--train needs a dataset root with train/good") }
    }

    func run() throws {
        setComputeThreads(runOptions.threads)
        try exitOnFailure {
            let set = try dataset.map { try EvaluationSet.mvtec($0) }
                ?? EvaluationSet.folders(good: good ?? "", defects: defects ?? "", masks: masks)
            let (network, sha) = try backbone.loadWithChecksum()
            let extractor = PatchFeatureExtractor(backbone: network)
            let progress = ProgressReporter(quiet: runOptions.quiet)
            var trainSeconds: Double?
            var detector: Detector
            if let model {
                detector = try ModelBundle.read(model, extractor: extractor, backboneSHA256: sha)
            } else {
                guard !set.trainingImages.isEmpty else { throw PipelineError.input("\(dataset ?? ""): no train/good images") }
                var (trained, report) = try Trainer.train(paths: set.trainingImages, extractor: extractor, backboneSHA256: sha,
                                                          settings: training.settings, sensitivity: training.sensitivity,
                                                          progress: progress.handler)
                trainSeconds = report.seconds
                for line in try training.applyThreshold(to: &trained, progress: progress.handler) where !runOptions.quiet {
                    printError(line)
                }
                detector = trained
                if let saveModel { try ModelBundle.write(detector, to: saveModel) }
            }
            if let only {
                detector = try detector.selecting(try Component.list(only), weights: training.parsedWeights,
                                                  scoreComponents: try training.scoreComponents.map { try Component.list($0) })
            }
            let report = Evaluator.evaluate(detector, on: set, progress: progress.handler)
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            try EvaluationOutput.write(report, trainSeconds: trainSeconds, to: out)
            print(EvaluationOutput.table(report, trainSeconds: trainSeconds))
            for e in report.errors { printError("skipped: \(e)") }
            if !runOptions.quiet { printError("wrote \(out)/metrics.json and plots in \(out)") }
        }
    }
}
