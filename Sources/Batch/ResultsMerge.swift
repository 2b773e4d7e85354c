import Detection
import Foundation
import Imaging
import SafeFiles

/// Joins the output folders of sharded `anomap inspect` runs (`--shard I/N`) into one.
public enum ResultsMerge {
    /// Merges the shard folders' results.json into `out` (results.csv/json, records ordered by
    /// input path as a single run orders a folder) and copies their heatmap/overlay/mask PNGs
    /// there. An image in two shards, or an output path two shards both wrote, is an error.
    /// With `report`, fills it from the copied pictures and the original photos.
    public static func merge(
        _ shards: [String], into out: String, report: ReportWriter? = nil,
        progress: ProgressHandler = { _, _, _ in }
    ) throws -> [InspectionRecord] {
        var records = [InspectionRecord](), source = [String: String](), owner = [String: String]()
        for shard in shards {
            let file = (shard as NSString).appendingPathComponent("results.json")
            guard FileManager.default.fileExists(atPath: file) else {
                throw PipelineError.input(
                    "\(shard): no results.json — give the --out folders of `anomap inspect --shard` runs")
            }
            for record in try InspectionWriter.readResults(file) {
                if let other = source[record.path] {
                    throw PipelineError.input(
                        "\(record.path) is in the results of both \(other) and \(shard): the shards overlap")
                }
                for output in record.outputs {
                    let parts = output.split(separator: "/")
                    guard !output.hasPrefix("/"), !parts.contains(".."), !parts.isEmpty else {
                        throw PipelineError.input("\(file): output path '\(output)' leaves the folder")
                    }
                    if let other = owner[output] {
                        throw PipelineError.input("\(output) was written by both \(other) and \(shard)")
                    }
                    owner[output] = shard
                }
                source[record.path] = shard
                records.append(record)
            }
        }
        records.sort { $0.path < $1.path }
        let writer = try InspectionWriter(root: out)
        let outRoot = (out as NSString).standardizingPath
        for (i, record) in records.enumerated() {
            progress("merge", i, records.count)
            guard let shard = source[record.path] else { continue }
            if (shard as NSString).standardizingPath != outRoot {
                for output in record.outputs {
                    let from = (shard as NSString).appendingPathComponent(output),
                        to = (out as NSString).appendingPathComponent(output)
                    do {
                        try FileManager.default.createDirectory(
                            atPath: (to as NSString).deletingLastPathComponent,
                            withIntermediateDirectories: true)
                        try writeFileAtomically(try readFile(from, maxBytes: 1 << 30), to: to)
                    } catch {
                        throw PipelineError.output("cannot copy \(from) to \(to): \(error)")
                    }
                }
            }
            if let report { try addToReport(report, record, root: out) }
        }
        progress("merge", records.count, records.count)
        try writer.writeResults(records)
        return records
    }

    /// Adds one merged record to a report, with its pictures when they were written.
    static func addToReport(_ report: ReportWriter, _ record: InspectionRecord, root: String) throws {
        func picture(_ suffix: String) -> Image? {
            guard let name = record.outputs.first(where: { $0.hasSuffix("_\(suffix).png") }) else { return nil }
            return try? ImageCodec.read(contentsOf: (root as NSString).appendingPathComponent(name))
        }
        guard record.verdict != "error", let heatmap = picture("heatmap"), let overlay = picture("overlay"),
            let mask = picture("mask")
        else {
            report.add(record)
            return
        }
        let photo = try? ImageCodec.read(contentsOf: record.path)
        try report.add(
            record, rendered: RenderedInspection(heatmap: heatmap, overlay: overlay, mask: mask), photo: photo)
    }
}
