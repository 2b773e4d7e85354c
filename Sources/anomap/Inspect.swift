import ArgumentParser
import Foundation
import Imaging
import Models
import Pipeline
import Tensors

/// `anomap inspect`: score images and write heatmaps, overlays, masks and results files.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect images with a trained model; write heatmaps, overlays, masks and results.csv/json.")

    @Argument(help: ArgumentHelp("Image files or folders (searched recursively; PNG/JPEG by content).", valueName: "path"))
    var paths: [String]

    @Option(name: .long, help: ArgumentHelp("Model bundle from `anomap train`.", valueName: "model.safetensors"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Output folder (mirrors the input tree).", valueName: "dir"))
    var out: String

    @Option(name: .long, help: ArgumentHelp("Use only these components of the model, comma-separated (each keeps its stored calibration).", valueName: "components"))
    var only: String?

    @Option(name: .long, help: "Override the model's threshold (normalized score).")
    var threshold: Float?

    @Flag(name: .long, help: "Exit with 1 when any image is anomalous.")
    var failOnAnomaly = false

    @Flag(name: .long, help: "Only write results.csv/json, no images.")
    var noImages = false

    @Flag(name: .long, help: "Skip images already in the output folder's results.json (after an interrupted run).")
    var resume = false

    @Option(name: .long, help: ArgumentHelp("Process only share I of N of the inputs (1-based; deterministic by path).", valueName: "I/N"))
    var shard: String?

    @Flag(name: .long, help: "Print one JSON summary on stdout (images, anomalous, normal, errors, seconds, results).")
    var json = false

    /// (index, count) of --shard, 0-based index.
    var shardSpec: (index: Int, count: Int)? {
        guard let shard else { return nil }
        let parts = shard.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, (1...parts[1]).contains(parts[0]) else { return nil }
        return (parts[0] - 1, parts[1])
    }

    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func validate() throws {
        if paths.isEmpty { throw ValidationError("give at least one image or folder") }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be a number") }
        if shard != nil && shardSpec == nil { throw ValidationError("--shard takes I/N with 1 <= I <= N, e.g. 2/3") }
    }

    func run() throws {
        setComputeThreads(runOptions.threads)
        var anomalies = 0, failures = 0, count = 0
        var stoppedBy: Int32?
        var total = 0
        let start = Date()
        let interruption = Interruption()
        try exitOnFailure {
            // Outputs mirror each input below its own name (a folder "good" -> out/good/...), and
            // a stem that two inputs would share gets a numeric suffix instead of being overwritten.
            var inputs = [(path: String, stem: String)]()
            var taken = Set<String>()
            for p in paths {
                let parent = ((p as NSString).standardizingPath as NSString).deletingLastPathComponent
                for file in try ImageFolder.images(in: [p]) {
                    var stem = InspectionWriter.relativeStem(for: file, under: parent)
                    if taken.contains(stem) {
                        var k = 2
                        while taken.contains("\(stem)-\(k)") { k += 1 }
                        stem = "\(stem)-\(k)"
                    }
                    taken.insert(stem)
                    inputs.append((file, stem))
                }
            }
            if let (index, count) = shardSpec {
                // Round-robin over the sorted paths: shards are balanced and every image lands in exactly one.
                inputs = inputs.sorted { $0.path < $1.path }.enumerated().filter { $0.offset % count == index }.map(\.element)
            }
            total = inputs.count
            let (network, sha) = try backbone.loadWithChecksum()
            var detector = try ModelBundle.read(model, extractor: PatchFeatureExtractor(backbone: network), backboneSHA256: sha)
            if let only { detector = try detector.selecting(try Component.list(only)) }
            if let threshold { detector.threshold = threshold }
            let writer = try InspectionWriter(root: out)
            let progress = ProgressReporter(quiet: runOptions.quiet)
            // Records by input path: earlier results when resuming, then this run's.
            var done = [String: InspectionRecord]()
            if resume { for r in try writer.readResults() where r.verdict != "error" { done[r.path] = r } }
            var sinceSave = 0
            func save() throws {
                try writer.writeResults(inputs.compactMap { done[$0.path] })
                sinceSave = 0
            }
            for (i, input) in inputs.enumerated() {
                progress.update("inspect", i, inputs.count)
                if let signal = interruption.received {
                    stoppedBy = signal
                    break
                }
                if let earlier = done[input.path] {
                    if earlier.verdict == "anomalous" { anomalies += 1 }
                    count += 1
                    continue
                }
                count += 1
                do {
                    let image = try ImageCodec.read(contentsOf: input.path)
                    let inspection = detector.inspect(image)
                    let outputs = noImages ? [] : try writer.writeImages(inspection, photo: image, stem: input.stem)
                    if inspection.isAnomalous { anomalies += 1 }
                    done[input.path] = InspectionRecord(path: input.path, inspection: inspection, outputs: outputs)
                } catch let error as PipelineError {
                    throw error  // an output that cannot be written ends the run
                } catch {
                    failures += 1
                    printError("error: \(error)")
                    done[input.path] = InspectionRecord(path: input.path, error: String(describing: error))
                }
                sinceSave += 1
                if sinceSave >= 25 { try save() }  // bounded loss even on SIGKILL
            }
            if stoppedBy == nil { progress.update("inspect", inputs.count, inputs.count) }
            try save()
        }
        if let stoppedBy {
            printError("interrupted: \(count) of \(total) images done, results saved in \(out)/results.csv; run again with --resume to finish")
            throw ExitCode(128 + stoppedBy)
        }
        let seconds = Date().timeIntervalSince(start)
        if json {
            let summary: [String: Any] = ["images": count, "anomalous": anomalies, "normal": count - anomalies - failures,
                                          "errors": failures, "seconds": (seconds * 1000).rounded() / 1000,
                                          "results": (out as NSString).appendingPathComponent("results.json")]
            if let data = try? JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys, .withoutEscapingSlashes]) {
                print(String(decoding: data, as: UTF8.self))
            }
        }
        if !runOptions.quiet {
            printError(String(format: "%d images: %d anomalous, %d normal, %d errors in %.1f s -> %@/results.csv",
                              count, anomalies, count - anomalies - failures, failures, seconds, out))
        }
        if failOnAnomaly && anomalies > 0 { throw ExitCode(1) }
    }
}
