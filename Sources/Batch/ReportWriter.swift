import Detection
import Foundation
import Imaging
import SafeFiles

/// Writes a self-contained triage report: `index.html` (data, style and script inline, no
/// network), `report.json`, and the pictures under `img/` named by number, so no input file
/// name ever becomes part of a URL. Safe to call from several threads.
public final class ReportWriter: @unchecked Sendable {
    /// The report folder.
    public let root: String
    /// Longest side of a gallery thumbnail, in pixels.
    public var thumbnailSide = 256
    private let lock = NSLock()
    private var items: [String: ReportItem] = [:]
    private var nextNumber = 0

    /// Creates the report folder; with `resume`, keeps the items of the `report.json` already there.
    public init(root: String, resume: Bool = false) throws {
        self.root = root
        try InspectionWriter.prepareFolder(
            (root as NSString).appendingPathComponent("img"), holding: root, kind: "report")
        let existing = (root as NSString).appendingPathComponent("report.json")
        if resume, FileManager.default.fileExists(atPath: existing) {
            let earlier = try Self.read(existing)
            for item in earlier.items { items[item.path] = item }
            nextNumber =
                earlier.items.compactMap { $0.images.values.compactMap(Self.number).max() }.max().map { $0 + 1 } ?? 0
        }
    }

    /// Reads a report's `report.json`.
    public static func read(_ path: String) throws -> ReportData {
        do {
            return try JSONDecoder().decode(ReportData.self, from: Data(readFile(path, maxBytes: 256 << 20)))
        } catch {
            throw PipelineError.input("\(path): not a report.json of anomap (\(error))")
        }
    }

    /// The number in a picture name `img/<n>_<kind>.<ext>`.
    static func number(_ file: String) -> Int? {
        Int(((file as NSString).lastPathComponent).prefix { $0.isNumber })
    }

    static func absolute(_ path: String) -> String {
        let full =
            path.hasPrefix("/")
            ? path : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(path)
        return (full as NSString).standardizingPath
    }

    /// Adds an inspected image: writes its thumbnail, photo, heatmap, overlay, mask and (when
    /// given) ground-truth pictures. `group` defaults to the parent folder's name.
    public func add(
        _ record: InspectionRecord, group: String? = nil, rendered: RenderedInspection, photo: Image?,
        truth: Image? = nil
    ) throws {
        lock.lock()
        let n = nextNumber
        nextNumber += 1
        lock.unlock()
        var images = [String: String]()
        func save(_ kind: String, _ image: Image, jpeg: Bool) throws {
            let name = "img/\(n)_\(kind).\(jpeg ? "jpg" : "png")"
            let bytes =
                jpeg
                ? try ImageCodec.encodeJPEG(image, quality: 88)
                : try ImageCodec.encodePNG(image, compressionLevel: 1)
            try writeFileAtomically(bytes, to: (root as NSString).appendingPathComponent(name))
            images[kind] = name
        }
        do {
            let overlay = rendered.overlay
            let scale = Double(thumbnailSide) / Double(max(overlay.width, overlay.height))
            let thumb =
                scale < 1
                ? overlay.resized(
                    width: max(1, Int((Double(overlay.width) * scale).rounded())),
                    height: max(1, Int((Double(overlay.height) * scale).rounded())), method: .area)
                : overlay
            try save("thumb", thumb, jpeg: true)
            if let photo { try save("photo", photo, jpeg: true) }
            try save("heatmap", rendered.heatmap, jpeg: false)
            try save("overlay", overlay, jpeg: true)
            try save("mask", rendered.mask, jpeg: false)
            if let truth { try save("truth", truth, jpeg: false) }
        } catch {
            throw PipelineError.output("\(root): cannot write report pictures for \(record.path): \(error)")
        }
        insert(record, group: group, images: images)
    }

    /// Adds an image that could not be inspected (or whose pictures are not available).
    public func add(_ record: InspectionRecord, group: String? = nil) {
        insert(record, group: group, images: [:])
    }

    private func insert(_ record: InspectionRecord, group: String?, images: [String: String]) {
        let path = Self.absolute(record.path)
        let item = ReportItem(
            path: path, name: (path as NSString).lastPathComponent,
            group: group ?? ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent,
            score: record.normalized_score, raw_score: record.score, verdict: record.verdict,
            defect_area: record.defect_area, error: record.error, shift_score: record.shift_score,
            shifted: record.shifted, images: images)
        lock.lock()
        items[path] = item
        lock.unlock()
    }

    /// The items so far, most suspicious first, errors last, ties by path.
    public var sortedItems: [ReportItem] {
        lock.lock()
        defer { lock.unlock() }
        return items.values.sorted { a, b in
            switch (a.score, b.score) {
            case let (x?, y?) where x != y: return x > y
            case (.some, nil): return true
            case (nil, .some): return false
            default: return a.path < b.path
            }
        }
    }

    /// Writes `report.json` and `index.html` (atomically), and for an evaluation its metrics
    /// table and ROC/PR plots. Call it again to refresh the page after more images.
    public func write(title: String, threshold: Double, evaluation: EvaluationReport? = nil) throws {
        var data = ReportData(
            title: title, kind: evaluation == nil ? "inspect" : "eval",
            generated: ISO8601DateFormatter().string(from: Date()), threshold: threshold,
            items: sortedItems, metrics: nil, plots: nil)
        do {
            if let evaluation {
                func row(_ name: String, _ g: GroupMetrics) -> ReportMetricsRow {
                    ReportMetricsRow(
                        name: name, images: g.images, image_auroc: g.image_auroc, pixel_auroc: g.pixel_auroc,
                        aupro: g.aupro, f1_max: g.f1_max, average_precision: g.average_precision)
                }
                data.metrics =
                    [row("overall", evaluation.overall)]
                    + evaluation.per_type.sorted { $0.key < $1.key }.map { row($0.key, $0.value) }
                data.plots = try EvaluationOutput.writePlots(evaluation, to: root)
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let json = try encoder.encode(data)
            try writeFileAtomically(Array(json), to: (root as NSString).appendingPathComponent("report.json"))
            try writeFileAtomically(
                Array(ReportPage.html(embedding: json).utf8),
                to: (root as NSString).appendingPathComponent("index.html"))
        } catch let error as PipelineError {
            throw error
        } catch {
            throw PipelineError.output("\(root): cannot write the report (\(error))")
        }
    }
}
