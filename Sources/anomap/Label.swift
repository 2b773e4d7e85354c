import ArgumentParser
import Batch
import Detection
import Foundation
import Imaging
import Models
import Tensors

/// `anomap label`: teach a model the images a person marked "false alarm" in a report.
struct Label: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Add the images marked \"false alarm\" (marks.csv/json exported from a report) to a model as normal, without retraining.",
        discussion:
            "Works for models whose components learn from single images (the knn memory bank); for others it says what to do instead."
    )

    @Argument(
        help: ArgumentHelp(
            "Marks exported from a report page (CSV with path,mark columns, or JSON).", valueName: "marks"))
    var marks: String

    @Option(name: .long, help: ArgumentHelp("Model bundle to update.", valueName: "model.safetensors"))
    var model: String

    @Option(
        name: [.short, .long],
        help: ArgumentHelp(
            "Where to write the updated model (default: replace --model, atomically).", valueName: "model.safetensors"))
    var output: String?

    @Flag(name: .long, help: "Print one JSON summary on stdout.")
    var json = false

    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func run() throws {
        setComputeThreads(runOptions.threads)
        let target = output ?? model
        var summary: [String: Any] = [:]
        try exitOnFailure {
            let all = try MarksFile.read(marks)
            let falseAlarms = all.filter { $0.mark == "false alarm" }
            guard !falseAlarms.isEmpty else {
                throw PipelineError.input(
                    "\(marks): no image is marked \"false alarm\" (\(all.count) marks); nothing to learn")
            }
            let (network, sha) = try backbone.loadWithChecksum()
            let detector = try ModelBundle.read(
                model, extractor: PatchFeatureExtractor(backbone: network), backboneSHA256: sha)
            // Relative paths are taken from the working folder, else from the marks file's folder.
            let marksFolder = ((marks as NSString).standardizingPath as NSString).deletingLastPathComponent
            var images = [Image](), failed = 0
            for mark in falseAlarms {
                var path = mark.path
                if !path.hasPrefix("/") && !FileManager.default.fileExists(atPath: path) {
                    path = (marksFolder as NSString).appendingPathComponent(path)
                }
                do {
                    images.append(try detector.read(contentsOf: path).image)
                } catch {
                    failed += 1
                    printError("skipped: \(error)")
                }
            }
            guard !images.isEmpty else {
                throw PipelineError.input("\(marks): none of the false-alarm images could be read")
            }
            let (updated, added) = try detector.learningNormal(from: images)
            let bankSize = updated.component(MemoryBankComponent.self)?.bank.count ?? 0
            try ModelBundle.write(updated, to: target)
            summary = [
                "false_alarms": images.count, "defects": all.count - falseAlarms.count, "errors": failed,
                "patches_added": added, "bank_size": bankSize, "model": target,
            ]
            if !runOptions.quiet {
                Summary.print([
                    Summary.part("learned \(images.count) false alarms as normal", .green),
                    Summary.part("\(added) patches added (bank \(bankSize))"),
                    Summary.part("\(failed) errors", failed > 0 ? .yellow : nil),
                    Summary.part("\(all.count - falseAlarms.count) defect marks left as they are"),
                    Summary.part("-> \(target)"),
                ])
            }
        }
        if json { printJSON(summary) }
    }
}
