import ArgumentParser
import Batch
import Detection
import Foundation
import Imaging
import Models
import Tensors

/// `anomap inspect`: score images and write heatmaps, overlays, masks and results files.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect images with a trained model; write heatmaps, overlays, masks and results.csv/json.")

    @Argument(
        help: ArgumentHelp("Image files or folders (searched recursively; PNG/JPEG by content).", valueName: "path"))
    var paths: [String] = []

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Watch this folder (recursively): inspect the images in it, then each new one once complete (closed or renamed into place), appending to results.jsonl and results.csv until Ctrl-C/SIGTERM; a restart goes on where it stopped.",
            valueName: "dir"))
    var watch: String?

    @Option(
        name: .long,
        help: "With --watch: seconds a file found by a scan must stay unchanged before it is read.")
    var settle = 2.0

    @Option(name: .long, help: "With --watch: seconds between scans when polling.")
    var pollInterval = 1.0

    @Flag(
        name: .long,
        help: "With --watch: scan the folder instead of using inotify (chosen by itself on network file systems).")
    var polling = false

    @Option(name: .long, help: ArgumentHelp("Model bundle from `anomap train`.", valueName: "model.safetensors"))
    var model: String

    @Option(name: .long, help: ArgumentHelp("Output folder (mirrors the input tree).", valueName: "dir"))
    var out: String

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Use only these components of the model, comma-separated (each keeps its stored calibration).",
            valueName: "components"))
    var only: String?

    @Option(name: .long, help: "Override the model's threshold (normalized score).")
    var threshold: Float?

    @Flag(name: .long, help: "Exit with 1 when any image is anomalous.")
    var failOnAnomaly = false

    @Flag(
        name: .long,
        help:
            "Exit with 1 when any image is shifted (looks unlike the training set as a whole: product, camera, lighting)."
    )
    var failOnShift = false

    @Flag(name: .long, help: "Only write results.csv/json, no images.")
    var noImages = false

    @Flag(name: .long, help: "Skip images already in the output folder's results.json (after an interrupted run).")
    var resume = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Process only share I of N of the inputs (1-based; deterministic by path).", valueName: "I/N"))
    var shard: String?

    @Flag(
        name: .long,
        help: "Print one JSON summary on stdout (images, anomalous, normal, errors, shifted, seconds, results).")
    var json = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Also write an offline HTML triage report (index.html and its pictures) into this folder.", valueName: "dir"
        ))
    var report: String?

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Images inspected side by side, sharing the --threads (default: one per thread, up to the cores, for untiled models; 1 for tiled ones, whose images are large); results do not change.",
            valueName: "n"))
    var inspections: Int?

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
        if let watch {
            if !paths.isEmpty { throw ValidationError("give either paths or --watch \(watch), not both") }
            for (given, flag) in [
                (resume, "--resume"), (shard != nil, "--shard"), (report != nil, "--report"),
                (failOnAnomaly, "--fail-on-anomaly"), (failOnShift, "--fail-on-shift"),
            ] where given {
                throw ValidationError("\(flag) does not go with --watch (a watch always resumes)")
            }
            if !(settle >= 0) || !(pollInterval > 0) {
                throw ValidationError("--settle must be 0 or more and --poll-interval positive")
            }
        } else if paths.isEmpty {
            throw ValidationError("give at least one image or folder, or --watch DIR")
        }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be a number") }
        if let inspections, inspections < 1 { throw ValidationError("--inspections must be at least 1") }
        if shard != nil && shardSpec == nil { throw ValidationError("--shard takes I/N with 1 <= I <= N, e.g. 2/3") }
    }

    func run() throws {
        setComputeThreads(runOptions.threads)
        if let watch { return try runWatch(watch) }
        let start = Date()
        let interruption = Interruption()
        var summary = BatchSummary()
        var total = 0
        try exitOnFailure {
            var inputs = try BatchInput.collect(paths)
            if let (index, count) = shardSpec { inputs = BatchInput.shard(inputs, index: index, count: count) }
            total = inputs.count
            let detector = try loadDetector()
            var batch = BatchInspection(detector: detector, writer: try InspectionWriter(root: out))
            batch.writesImages = !noImages
            batch.resume = resume
            batch.sideBySide = sideBySide(for: detector)
            let reportWriter = try report.map { try ReportWriter(root: $0, resume: resume) }
            batch.report = reportWriter
            let progress = ProgressReporter(quiet: runOptions.quiet)
            summary = try batch.run(
                inputs, stopRequest: { interruption.received }, progress: progress.handler,
                onError: { printError($0) })
            try reportWriter?.write(
                title: "anomap inspect: \(paths.joined(separator: " "))", threshold: Double(detector.threshold))
        }
        if let stoppedBy = summary.stoppedBy {
            printError(
                "interrupted: \(summary.images) of \(total) images done, results saved in \(out)/results.csv; run again with --resume to finish"
            )
            throw ExitCode(128 + stoppedBy)
        }
        let seconds = Date().timeIntervalSince(start)
        let normal = summary.images - summary.anomalous - summary.errors
        if json {
            var fields: [String: Any] = [
                "images": summary.images, "anomalous": summary.anomalous, "normal": normal,
                "errors": summary.errors, "shifted": summary.shifted, "seconds": (seconds * 1000).rounded() / 1000,
                "results": (out as NSString).appendingPathComponent("results.json"),
            ]
            if let report { fields["report"] = (report as NSString).appendingPathComponent("index.html") }
            printJSON(fields)
        }
        if !runOptions.quiet {
            var parts = [
                Summary.part("\(summary.images) images"),
                Summary.part("\(summary.anomalous) anomalous", summary.anomalous > 0 ? .red : .green),
                Summary.part("\(normal) normal"),
                Summary.part("\(summary.errors) errors", summary.errors > 0 ? .yellow : nil),
                Summary.part("\(summary.shifted) shifted", summary.shifted > 0 ? .yellow : nil),
                Summary.part(String(format: "%.1f s", seconds)),
                Summary.part("-> \(out)/results.csv"),
            ]
            if let report { parts.append(Summary.part("report \(report)/index.html")) }
            Summary.print(parts)
        }
        if (failOnAnomaly && summary.anomalous > 0) || (failOnShift && summary.shifted > 0) { throw ExitCode(1) }
    }

    /// --inspections, or its default (`RunOptions.sideBySide(for:)`).
    func sideBySide(for detector: Detector) -> Int { inspections ?? runOptions.sideBySide(for: detector) }

    /// Loads the model as --only and --threshold say.
    func loadDetector() throws -> Detector {
        let (network, sha) = try backbone.loadWithChecksum()
        var detector = try ModelBundle.read(
            model, extractor: PatchFeatureExtractor(backbone: network), backboneSHA256: sha)
        if let only { detector = try detector.selecting(try Component.list(only)) }
        if let threshold { detector.threshold = threshold }
        return detector
    }

    /// `--watch`: runs until Ctrl-C or SIGTERM, then exits 0 (1 only when an output fails).
    func runWatch(_ folder: String) throws {
        let start = Date()
        let interruption = Interruption()
        var summary = BatchSummary()
        try exitOnFailure {
            var watchRun = WatchInspection(detector: try loadDetector(), writer: try InspectionWriter(root: out))
            watchRun.writesImages = !noImages
            watchRun.settleSeconds = settle
            watchRun.pollSeconds = pollInterval
            watchRun.polling = polling
            let quiet = runOptions.quiet
            summary = try watchRun.run(
                folder: folder, stopRequest: { interruption.received },
                onStart: { if !quiet { printError($0) } },
                onImage: { record in
                    guard !quiet, record.verdict != "error" else { return }
                    printError(
                        "\(record.verdict) \(String(format: "%.3f", record.normalized_score ?? 0)) \(record.path)")
                }, onError: { printError($0) })
        }
        let seconds = Date().timeIntervalSince(start)
        if json {
            printJSON([
                "images": summary.images, "anomalous": summary.anomalous,
                "normal": summary.images - summary.anomalous - summary.errors, "errors": summary.errors,
                "shifted": summary.shifted, "seconds": (seconds * 1000).rounded() / 1000,
                "results": (out as NSString).appendingPathComponent("results.jsonl"),
            ])
        }
        if !runOptions.quiet {
            Summary.print([
                Summary.part("stopped after \(summary.images) new images"),
                Summary.part("\(summary.anomalous) anomalous", summary.anomalous > 0 ? .red : .green),
                Summary.part("\(summary.errors) errors", summary.errors > 0 ? .yellow : nil),
                Summary.part(String(format: "%.1f s", seconds)), Summary.part("-> \(out)/results.jsonl"),
            ])
        }
    }
}
