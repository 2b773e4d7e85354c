import Detection
import Foundation
import Imaging
import SafeFiles

#if canImport(Glibc)
    import Glibc
#endif

/// `results.jsonl` of a watch: one record per line, appended as each image is done. A line is
/// written with one `write` after the image's pictures, so a record means the image is done;
/// a line cut short by a kill is dropped on the next start and that image done again.
public struct ResultsLog {
    /// The file.
    public let path: String

    /// The log in `folder`.
    public init(folder: String) { path = (folder as NSString).appendingPathComponent("results.jsonl") }

    /// The records written so far; an incomplete last line is cut off the file. Throws when a
    /// complete line is not a record (the file is not one of ours).
    public func load() throws -> [InspectionRecord] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, maxBytes: 8 << 30)
        } catch {
            throw PipelineError.input("\(error)")
        }
        let complete = (bytes.lastIndex(of: 10).map { $0 + 1 }) ?? 0
        var records = [InspectionRecord]()
        let decoder = JSONDecoder()
        var lineNumber = 0
        for line in bytes[0..<complete].split(separator: 10) {
            lineNumber += 1
            do {
                records.append(try decoder.decode(InspectionRecord.self, from: Data(line)))
            } catch {
                throw PipelineError.input("\(path) line \(lineNumber): not a record of `anomap inspect --watch`")
            }
        }
        if complete < bytes.count && truncate(path, off_t(complete)) != 0 {
            throw PipelineError.output("\(path): cannot cut off its incomplete last line")
        }
        return records
    }

    /// Appends one line to `file` with a single write (O_APPEND).
    static func append(_ line: String, to file: String) throws {
        let fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw PipelineError.output("\(file): cannot open (\(String(cString: strerror(errno))))") }
        defer { close(fd) }
        let bytes = Array(line.utf8)
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        guard written == bytes.count else {
            throw PipelineError.output("\(file): cannot append (\(String(cString: strerror(errno))))")
        }
    }

    /// Appends a record.
    public func append(_ record: InspectionRecord) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(record) else { throw PipelineError.output("cannot encode a record") }
        try Self.append(String(decoding: data, as: UTF8.self) + "\n", to: path)
    }
}

/// `anomap inspect --watch`: inspects every image already in a folder tree, then each new one
/// once it is complete (see `FolderWatcher`), writing the batch's pictures and one line per
/// image to results.jsonl and results.csv; results.json is rewritten at start and at stop. A
/// restart skips the images its results.jsonl already holds, so none is lost or done twice.
public struct WatchInspection {
    /// The detector.
    public var detector: Detector
    /// Writes the pictures and results files.
    public var writer: InspectionWriter
    /// Whether to write heatmap/overlay/mask PNGs.
    public var writesImages = true
    /// See `FolderWatcher.settleSeconds`.
    public var settleSeconds = 2.0
    /// See `FolderWatcher.pollSeconds`.
    public var pollSeconds = 1.0
    /// Scan instead of inotify.
    public var polling = false

    /// A watch with `detector`, writing with `writer`.
    public init(detector: Detector, writer: InspectionWriter) {
        self.detector = detector
        self.writer = writer
    }

    /// Watches `folder` until `stopRequest` returns a signal; `onImage` gets each finished
    /// record, `onError` one line per image that vanished or could not be read, and `onStart`
    /// how the folder is watched. An output that cannot be written ends the watch with
    /// `PipelineError.output`.
    public func run(
        folder: String, stopRequest: () -> Int32?, onStart: (String) -> Void = { _ in },
        onImage: (InspectionRecord) -> Void = { _ in }, onError: (String) -> Void = { _ in }
    ) throws -> BatchSummary {
        let log = ResultsLog(folder: writer.root)
        var records = try log.load()
        var summary = BatchSummary()
        var stems = StemAssigner(root: folder)
        var failed = [String: FileSignature]()
        for record in records { _ = stems.stem(for: record.path) }
        try writer.writeResults(records)
        let csv = (writer.root as NSString).appendingPathComponent("results.csv")
        let watcher = try FolderWatcher(
            root: folder, settleSeconds: settleSeconds, pollSeconds: pollSeconds, polling: polling,
            excluding: [writer.root], alreadyReported: Set(records.map(\.path)))
        onStart(
            watcher.usesInotify
                ? "watching \(folder) (inotify; \(records.count) images done before)"
                : "watching \(folder) (polling every \(pollSeconds) s; \(records.count) images done before)")
        while true {
            if let signal = stopRequest() {
                summary.stoppedBy = signal
                break
            }
            for path in watcher.next(timeout: 0.2) {
                if stopRequest() != nil { break }  // the rest is found again on the next start
                guard FileManager.default.fileExists(atPath: path) else {
                    onError("warning: \(path): vanished before it could be read; skipped")
                    continue
                }
                let record = try inspect(path, stem: stems.stem(for: path))
                // A file that does not decode may still be in the writer's hands (closed once
                // empty, reopened, appended to): it is read again once complete, and recorded as
                // an error only when it fails twice unchanged.
                if record.verdict == "error", let signature = FileSignature(path), failed[path] != signature {
                    failed[path] = signature
                    stems.forget(path)
                    watcher.retry(path)
                    continue
                }
                failed[path] = nil
                if record.verdict == "error" {
                    summary.errors += 1
                    onError("error: \(record.error ?? path)")
                }
                if record.verdict == "anomalous" { summary.anomalous += 1 }
                if record.shifted == true { summary.shifted += 1 }
                summary.images += 1
                try log.append(record)
                try ResultsLog.append(InspectionWriter.csvRow(record), to: csv)
                records.append(record)
                onImage(record)
            }
        }
        try writer.writeResults(records)
        return summary
    }

    /// One image: decoded, inspected, drawn and written; an unreadable one is an error record.
    private func inspect(_ path: String, stem: String) throws -> InspectionRecord {
        let decoded: (image: Image, size: (width: Int, height: Int), photo: Image)
        do {
            if writesImages {
                decoded = try detector.readWithPhoto(contentsOf: path)
            } else {
                let (image, size) = try detector.read(contentsOf: path)
                decoded = (image, size, image)
            }
        } catch {
            return InspectionRecord(path: path, error: "\(error)")
        }
        let inspection = detector.inspect(decoded.image, size: decoded.size)
        var outputs = [String]()
        if writesImages {
            let rendered: RenderedInspection
            do {
                rendered = try writer.render(inspection, photo: decoded.photo)
            } catch {
                throw PipelineError.output("cannot draw outputs for \(stem): \(error)")
            }
            outputs = try writer.write(rendered, stem: stem)
        }
        return InspectionRecord(path: path, inspection: inspection, outputs: outputs)
    }
}

/// Output stems for watched files: the path below the watched folder's parent (as a batch
/// names them), made unique by `UniqueStems`. Replaying the records in order gives the same
/// stems after a restart.
struct StemAssigner {
    let parent: String
    var byPath = [String: String]()
    var stems = UniqueStems()

    init(root: String) { parent = InspectionWriter.parent(of: InspectionWriter.lexicallyNormalized(root)) }

    mutating func stem(for path: String) -> String {
        if let known = byPath[path] { return known }
        let stem = stems.claim(InspectionWriter.relativeStem(for: path, under: parent))
        byPath[path] = stem
        return stem
    }

    /// Gives back the stem of a file that was not recorded after all.
    mutating func forget(_ path: String) {
        if let stem = byPath.removeValue(forKey: path) { stems.release(stem) }
    }
}

/// What `stat` says of a file, to notice that it changed (while it was read, or was replaced).
public struct FileSignature: Equatable, Sendable {
    /// Size in bytes.
    public var size: Int
    /// Modification time, whole seconds.
    public var seconds: Int
    /// Modification time, nanoseconds past `seconds`.
    public var nanoseconds: Int
    /// Inode number (a file renamed into place has a new one).
    public var inode: UInt64

    /// The file's signature, or nil when it cannot be read.
    public init?(_ path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        size = Int(info.st_size)
        seconds = Int(info.st_mtim.tv_sec)
        nanoseconds = Int(info.st_mtim.tv_nsec)
        inode = UInt64(info.st_ino)
    }
}
