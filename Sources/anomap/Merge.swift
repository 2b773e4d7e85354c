import ArgumentParser
import Batch
import Detection
import Foundation

/// `anomap merge`: join the output folders of sharded inspect runs.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Join the output folders of `anomap inspect --shard I/N` runs into one results file (and report).")

    @Argument(help: ArgumentHelp("Output folders of the shards (their --out).", valueName: "shard-dir"))
    var shards: [String]

    @Option(name: .long, help: ArgumentHelp("Folder for the merged results.csv/json and pictures.", valueName: "dir"))
    var out: String

    @Option(
        name: .long,
        help: ArgumentHelp("Also write an offline HTML triage report of all shards into this folder.", valueName: "dir")
    )
    var report: String?

    @Flag(name: .long, help: "Print one JSON summary on stdout.")
    var json = false

    @Flag(name: .long, help: "No progress output.")
    var quiet = false

    func validate() throws {
        if shards.isEmpty { throw ValidationError("give the output folders of the shards") }
    }

    func run() throws {
        var records = [InspectionRecord]()
        try exitOnFailure {
            let reportWriter = try report.map { try ReportWriter(root: $0) }
            records = try ResultsMerge.merge(
                shards, into: out, report: reportWriter,
                progress: ProgressReporter(quiet: quiet).handler)
            let threshold = records.compactMap(\.threshold).first ?? 1
            try reportWriter?.write(title: "anomap inspect: \(shards.count) shards merged", threshold: threshold)
        }
        let anomalous = records.filter { $0.verdict == "anomalous" }.count,
            errors = records.filter { $0.verdict == "error" }.count
        if json {
            var fields: [String: Any] = [
                "images": records.count, "anomalous": anomalous, "errors": errors,
                "normal": records.count - anomalous - errors,
                "results": (out as NSString).appendingPathComponent("results.json"),
            ]
            if let report { fields["report"] = (report as NSString).appendingPathComponent("index.html") }
            printJSON(fields)
        }
        if !quiet {
            var parts = [
                Summary.part("\(records.count) images from \(shards.count) shards"),
                Summary.part("\(anomalous) anomalous", anomalous > 0 ? .red : .green),
                Summary.part("\(errors) errors", errors > 0 ? .yellow : nil),
                Summary.part("-> \(out)/results.csv"),
            ]
            if let report { parts.append(Summary.part("report \(report)/index.html")) }
            Summary.print(parts)
        }
    }
}
