import Detection
import Foundation
import Imaging
import SafeFiles

/// Writes the per-image PNGs and the results files of `anomap inspect`.
public struct InspectionWriter {
    /// The output folder.
    public let root: String
    /// Colormap for heatmaps.
    public var colormap: Colormap = .inferno
    /// Normalized value drawn with the colormap's last colour.
    public var heatmapTop: Float = 2

    /// Creates the output folder if needed.
    public init(root: String) throws {
        self.root = root
        try Self.prepareFolder(root, holding: root, kind: "output")
    }

    /// Creates `folder` (and its parents) and checks that `root` can be written: one clear
    /// `PipelineError.output` naming the `kind` of folder otherwise.
    static func prepareFolder(_ folder: String, holding root: String, kind: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw PipelineError.output("\(root): cannot create \(kind) folder (\(error.localizedDescription))")
        }
        guard FileManager.default.isWritableFile(atPath: root) else {
            throw PipelineError.output("\(root): \(kind) folder is not writable")
        }
    }

    /// The relative output stem for an input: its path below the input root it was found in,
    /// without extension; never escapes the output folder.
    public static func relativeStem(for path: String, under inputRoot: String) -> String {
        let standardized = lexicallyNormalized(path)
        let base = lexicallyNormalized(inputRoot)
        var relative =
            standardized.hasPrefix(base + "/")
            ? String(standardized.dropFirst(base.count + 1))
            : (standardized as NSString).lastPathComponent
        relative = relative.split(separator: "/").filter { $0 != ".." && $0 != "." }.joined(separator: "/")
        return (relative as NSString).deletingPathExtension
    }

    /// `path` with "." and empty components removed and ".." applied to the text alone: unlike
    /// `standardizingPath` it never resolves a symlink, so a linked input keeps its own name.
    public static func lexicallyNormalized(_ path: String) -> String {
        var parts = [Substring]()
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            if part == "..", let last = parts.last, last != ".." { parts.removeLast() } else { parts.append(part) }
        }
        let joined = parts.joined(separator: "/")
        return path.hasPrefix("/") ? "/" + joined : (joined.isEmpty ? "." : joined)
    }

    /// `path` without its last component ("" for a bare name, "/" for a child of the root).
    /// Not NSString.deletingLastPathComponent: swift-corelibs-foundation traps on a
    /// one-character string ("0", the stem of `0.png`; a folder named "w").
    public static func parent(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "" }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// The heatmap, overlay and mask images of an inspection, in this writer's colours.
    public func render(_ inspection: Inspection, photo: Image) throws -> RenderedInspection {
        try RenderedInspection(inspection, photo: photo, colormap: colormap, heatmapTop: heatmapTop)
    }

    /// Writes rendered images as `<stem>_heatmap.png`, `_overlay.png` and `_mask.png`; returns
    /// their paths relative to the output folder. Any failure is a `PipelineError.output`: it
    /// ends the run (disk full, folder gone).
    public func write(_ rendered: RenderedInspection, stem: String) throws -> [String] {
        let parent = Self.parent(of: stem)
        let dir = parent.isEmpty ? root : (root as NSString).appendingPathComponent(parent)
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            var written = [String]()
            for (suffix, image) in [
                ("heatmap", rendered.heatmap), ("overlay", rendered.overlay), ("mask", rendered.mask),
            ] {
                let relative = "\(stem)_\(suffix).png"
                try ImageCodec.writePNG(
                    image, to: (root as NSString).appendingPathComponent(relative), compressionLevel: 1)
                written.append(relative)
            }
            return written
        } catch {
            throw PipelineError.output("cannot write outputs for \(stem): \(error)")
        }
    }

    /// The records of an earlier run's results.json in this folder (none if there is none).
    public func readResults() throws -> [InspectionRecord] {
        let path = (root as NSString).appendingPathComponent("results.json")
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        return try Self.readResults(path)
    }

    /// The records of a results.json file.
    public static func readResults(_ path: String) throws -> [InspectionRecord] {
        do {
            return try JSONDecoder().decode([InspectionRecord].self, from: Data(readFile(path, maxBytes: 1 << 30)))
        } catch {
            throw PipelineError.input("\(path): not a results.json of `anomap inspect` (\(error))")
        }
    }

    /// The first line of results.csv.
    public static let csvHeader = "path,score,normalized_score,verdict,defect_area,boxes,error,shift_score,shifted\n"

    /// One record's line of results.csv (with its newline).
    public static func csvRow(_ r: InspectionRecord) -> String {
        func field(_ s: String) -> String {
            s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
        }
        let boxes = r.boxes.map { "\($0.x) \($0.y) \($0.width) \($0.height)" }.joined(separator: ";")
        return [
            field(r.path), r.score.map { String(format: "%.6g", $0) } ?? "",
            r.normalized_score.map { String(format: "%.6g", $0) } ?? "", r.verdict,
            r.defect_area.map { String(format: "%.6g", $0) } ?? "", field(boxes), field(r.error ?? ""),
            r.shift_score.map { String(format: "%.6g", $0) } ?? "",
            r.shifted.map { $0 ? "true" : "false" } ?? "",
        ]
        .joined(separator: ",") + "\n"
    }

    /// Writes results.csv and results.json atomically.
    public func writeResults(_ records: [InspectionRecord]) throws {
        var csv = Self.csvHeader
        for r in records { csv += Self.csvRow(r) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        do {
            try writeFileAtomically(Array(csv.utf8), to: (root as NSString).appendingPathComponent("results.csv"))
            try writeFileAtomically(
                Array(try encoder.encode(records)), to: (root as NSString).appendingPathComponent("results.json"))
        } catch {
            throw PipelineError.output("cannot write results: \(error)")
        }
    }
}
