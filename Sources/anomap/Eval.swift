import ArgumentParser
import Batch
import Detection
import Foundation
import Imaging
import Models
import Tensors

/// `anomap eval`: accuracy on a labelled dataset.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure accuracy on a labelled dataset (MVTec AD layout, or --good/--defects folders).")

    @Argument(
        help: ArgumentHelp("Dataset root with train/good, test/<type>, ground_truth/<type>.", valueName: "dataset"))
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

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Evaluate only these components of the model, comma-separated (each keeps its stored calibration).",
            valueName: "components"))
    var only: String?

    @Option(name: .long, help: "Also save the model trained with --train here.")
    var saveModel: String?

    @Option(name: .long, help: ArgumentHelp("Folder for metrics.json and the plots.", valueName: "dir"))
    var out: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also write an offline HTML triage report (every test image with heatmap, overlay, predicted and true mask; metrics and curves) into this folder.",
            valueName: "dir"))
    var report: String?

    @Flag(name: .long, help: "Print one JSON summary on stdout (the overall metrics, timings and output paths).")
    var json = false

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
            let set =
                try dataset.map { try EvaluationSet.mvtec($0) }
                ?? EvaluationSet.folders(good: good ?? "", defects: defects ?? "", masks: masks)
            let (network, sha) = try backbone.loadWithChecksum()
            let extractor = PatchFeatureExtractor(backbone: network)
            let progress = ProgressReporter(quiet: runOptions.quiet)
            var trainSeconds: Double?
            var detector: Detector
            if let model {
                detector = try ModelBundle.read(model, extractor: extractor, backboneSHA256: sha)
            } else {
                guard !set.trainingImages.isEmpty else {
                    throw PipelineError.input("\(dataset ?? ""): no train/good images")
                }
                let settings = training.settings(forTraining: set.trainingImages, quiet: runOptions.quiet)
                var (trained, report) = try Trainer.train(
                    paths: set.trainingImages, extractor: extractor, backboneSHA256: sha,
                    settings: settings, sensitivity: training.sensitivity,
                    progress: progress.handler)
                trainSeconds = report.seconds
                for line in try training.applyThreshold(to: &trained, progress: progress.handler)
                where !runOptions.quiet {
                    printError(line)
                }
                detector = trained
                if let saveModel { try ModelBundle.write(detector, to: saveModel) }
            }
            if let only {
                detector = try detector.selecting(
                    try Component.list(only), weights: training.parsedWeights,
                    scoreComponents: try training.scoreComponents.map { try Component.list($0) })
            }
            do {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            } catch {
                throw PipelineError.output("\(out): cannot create output folder (\(error.localizedDescription))")
            }
            let reportWriter = try report.map { try ReportWriter(root: $0) }
            let start = Date()
            let evaluation = try Evaluator.evaluate(detector, on: set, progress: progress.handler) {
                item, inspected, error in
                guard let reportWriter else { return }
                guard let (decoded, inspection, truth) = inspected else {
                    let reason = error.map { String(describing: $0) } ?? "unreadable"
                    return reportWriter.add(InspectionRecord(path: item.path, error: reason), group: item.type)
                }
                // The model may have read a large JPEG smaller: the report draws on the full photo.
                let image =
                    (decoded.width, decoded.height) == (inspection.width, inspection.height)
                    ? decoded : try ImageCodec.read(contentsOf: item.path)
                let rendered = try RenderedInspection(inspection, photo: image)
                let truthImage =
                    item.mask == nil
                    ? nil
                    : try Image(
                        width: image.width, height: image.height, channels: 1, pixels: truth.map { $0 ? 255 : 0 })
                try reportWriter.add(
                    InspectionRecord(path: item.path, inspection: inspection, outputs: []), group: item.type,
                    rendered: rendered, photo: image, truth: truthImage)
            }
            try EvaluationOutput.write(evaluation, trainSeconds: trainSeconds, to: out)
            try reportWriter?.write(
                title: "anomap eval: \(dataset ?? defects ?? "")", threshold: evaluation.threshold,
                evaluation: evaluation)
            if json {
                var fields: [String: Any] = [
                    "images": evaluation.overall.images, "errors": evaluation.errors.count,
                    "ms_per_image": evaluation.ms_per_image, "threshold": evaluation.threshold,
                    "seconds": (Date().timeIntervalSince(start) * 1000).rounded() / 1000,
                    "metrics": (out as NSString).appendingPathComponent("metrics.json"),
                ]
                let o = evaluation.overall
                for (key, value) in [
                    ("image_auroc", o.image_auroc), ("pixel_auroc", o.pixel_auroc), ("aupro", o.aupro),
                    ("f1_max", o.f1_max), ("average_precision", o.average_precision),
                ] {
                    fields[key] = value ?? NSNull()
                }
                if let trainSeconds { fields["train_seconds"] = trainSeconds }
                if let report { fields["report"] = (report as NSString).appendingPathComponent("index.html") }
                printJSON(fields)
            } else {
                print(EvaluationOutput.table(evaluation, trainSeconds: trainSeconds))
            }
            for e in evaluation.errors { printError("skipped: \(e)") }
            if !runOptions.quiet {
                var parts = [
                    Summary.part("\(evaluation.overall.images) images"),
                    Summary.part(String(format: "image AUROC %.3f", evaluation.overall.image_auroc ?? .nan), .green),
                    Summary.part(String(format: "AUPRO %.3f", evaluation.overall.aupro ?? .nan), .green),
                    Summary.part("\(evaluation.errors.count) errors", evaluation.errors.isEmpty ? nil : .yellow),
                    Summary.part("-> \(out)/metrics.json"),
                ]
                if let report { parts.append(Summary.part("report \(report)/index.html")) }
                Summary.print(parts)
            }
        }
    }
}
