import ArgumentParser
import Batch
import Detection
import Foundation
import Models
import SafeFiles
import Tensors

/// `anomap eval-shift`: how well the model's whole-image shift detectors tell its own kind of
/// image from other kinds.
struct EvalShift: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-shift",
        abstract:
            "Measure the shift detectors: inlier images against outlier sets (another product, a moved camera, other lighting), ROC-AUC, PR-AUC and FPR at 95% TPR per detector and set."
    )

    @Option(
        name: .long,
        help: ArgumentHelp("Model bundle whose shift detectors to measure.", valueName: "model.safetensors"))
    var model: String

    @Option(
        name: .long,
        help: ArgumentHelp("Folder of good images of the trained product (test, not training).", valueName: "dir"))
    var inliers: String

    @Option(
        name: .long, parsing: .upToNextOption,
        help: ArgumentHelp(
            "Folders of outlier images, one set each, named by the folder or as NAME=DIR.", valueName: "dir"))
    var outliers: [String] = []

    @Option(
        name: .long, parsing: .upToNextOption,
        help: ArgumentHelp(
            "Folders of defect images of the trained product: the share flagged as shifted is reported (a defect is not a shift).",
            valueName: "dir"))
    var defects: [String] = []

    @Flag(
        name: .long,
        help:
            "Add shifted copies of the inliers as outlier sets: Gaussian noise, glass blur and defocus (ImageNet-C severity 5), brightness -40%/+40%, contrast 50%, rotation 10 degrees, translation 10%, JPEG quality 10."
    )
    var synthetic = false

    @Option(name: .long, help: "Seed of the synthetic shifts' noise.")
    var seed: UInt64 = 0

    @Option(name: .long, help: ArgumentHelp("Folder for shift.json, shift.svg and scores.csv.", valueName: "dir"))
    var out: String

    @Flag(
        name: .long,
        help: "Print one JSON summary on stdout (the path of shift.json and every detector's mean ROC-AUC).")
    var json = false

    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func validate() throws {
        if outliers.isEmpty && !synthetic { throw ValidationError("give --outliers DIR... or --synthetic (or both)") }
    }

    func run() throws {
        setComputeThreads(runOptions.threads)
        try exitOnFailure {
            let (network, sha) = try backbone.loadWithChecksum()
            let detector = try ModelBundle.read(
                model, extractor: PatchFeatureExtractor(backbone: network), backboneSHA256: sha)
            func images(_ dir: String) throws -> [String] {
                let found = try ImageFolder.images(in: [dir])
                guard !found.isEmpty else { throw PipelineError.input("\(dir): no PNG or JPEG images in it") }
                return found
            }
            // NAME=DIR names a set; a bare DIR is named by its folder.
            let sets = try outliers.map { argument in
                let parts = argument.split(separator: "=", maxSplits: 1).map(String.init)
                let named = parts.count == 2 && !parts[0].contains("/") && !parts[0].isEmpty
                let dir = named ? parts[1] : argument
                let name = named ? parts[0] : ((dir as NSString).standardizingPath as NSString).lastPathComponent
                return (name: name, paths: try images(dir))
            }
            let progress = ProgressReporter(quiet: runOptions.quiet)
            let evaluation = try ShiftEvaluation.run(
                detector, inliers: try images(inliers), outliers: sets, defects: try defects.flatMap(images),
                synthetic: synthetic, seed: seed, sideBySide: runOptions.sideBySide(for: detector),
                progress: progress.handler, onError: { printError($0) })
            do {
                try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                try writeFileAtomically(
                    Array(try encoder.encode(evaluation)), to: (out as NSString).appendingPathComponent("shift.json"))
                try writeFileAtomically(
                    Array(evaluation.plot.utf8), to: (out as NSString).appendingPathComponent("shift.svg"))
                try writeFileAtomically(
                    Array(evaluation.scoresCSV.utf8), to: (out as NSString).appendingPathComponent("scores.csv"))
            } catch {
                throw PipelineError.output("\(out): cannot write the results (\(error))")
            }
            if json {
                var means = [String: Double]()
                for (name, sets) in evaluation.detectors {
                    let values = sets.values.compactMap(\.roc_auc)
                    means[name] = values.reduce(0, +) / Double(max(1, values.count))
                }
                printJSON([
                    "shift": (out as NSString).appendingPathComponent("shift.json"), "mean_roc_auc": means,
                    "primary": evaluation.primary,
                ])
            } else {
                print(evaluation.table)
            }
        }
    }
}
