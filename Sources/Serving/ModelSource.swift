import Batch
import Detection
import Foundation
import SafeFiles

#if canImport(Glibc)
    import Glibc
#endif

/// A loaded model and the SHA-256 of its file's bytes (which model answered a request).
public struct LoadedModel: Sendable {
    /// The detector.
    public var detector: Detector
    /// Hex SHA-256 of the bundle file.
    public var sha256: String
}

/// The model the service answers with, and its hot reload: `reload` reads the file again when
/// it changed (or when forced, on SIGHUP), loads and validates it off the request path, and
/// swaps it in between requests; a file that does not load is refused with one line and the
/// model before it keeps serving.
public final class ModelSource: @unchecked Sendable {
    /// Builds a detector from a bundle's bytes (`path` names it in errors); throws a one-line error.
    public typealias Loader = @Sendable (_ bytes: [UInt8], _ path: String) throws -> Detector

    /// The bundle file.
    public let path: String
    private let loader: Loader
    private let lock = NSLock()
    private var loaded: LoadedModel
    private var seen: FileSignature?
    private var counts = (reloaded: 0, refused: 0)

    /// Loads `path` once; throws when it does not load (the service cannot start without it).
    public init(path: String, loader: @escaping Loader) throws {
        self.path = path
        self.loader = loader
        seen = FileSignature(path)
        let bytes = try Self.bytes(path)
        loaded = LoadedModel(detector: try loader(bytes, path), sha256: sha256Hex(bytes))
    }

    /// The model serving now.
    public var current: LoadedModel {
        lock.lock()
        defer { lock.unlock() }
        return loaded
    }

    /// Reloads done and new files refused so far.
    public var reloadCounts: (reloaded: Int, refused: Int) {
        lock.lock()
        defer { lock.unlock() }
        return counts
    }

    /// Loads the file again when its size, time or inode changed since last looked at, or
    /// always when `force`; returns one line saying what happened, nil when nothing did.
    /// A refused file is not retried until it changes again (or the next `force`).
    public func reload(force: Bool) -> String? {
        let signature = FileSignature(path)
        lock.lock()
        let changed = signature != seen
        seen = signature
        let before = loaded.sha256
        lock.unlock()
        guard force || changed else { return nil }
        do {
            let bytes = try Self.bytes(path)
            let sha = sha256Hex(bytes)
            guard sha != before else { return nil }
            let detector = try loader(bytes, path)
            lock.lock()
            loaded = LoadedModel(detector: detector, sha256: sha)
            counts.reloaded += 1
            lock.unlock()
            return "reloaded model \(path) (sha256 \(sha.prefix(12)))"
        } catch {
            lock.lock()
            counts.refused += 1
            lock.unlock()
            return "error: refused new model: \(error); still serving sha256 \(before.prefix(12))"
        }
    }

    static func bytes(_ path: String) throws -> [UInt8] {
        do {
            return try readFile(path, maxBytes: 4 << 30)
        } catch {
            throw PipelineError.model("\(error)")
        }
    }
}
