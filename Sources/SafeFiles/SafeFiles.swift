#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A file could not be read or written; names the file and the reason.
public struct FileError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file concerned.
    public var path: String
    /// Why it failed, in words.
    public var reason: String

    /// Creates an error for `path`.
    public init(path: String, reason: String) {
        self.path = path
        self.reason = reason
    }

    /// One line: the file and the reason.
    public var description: String { "\(path): \(reason)" }
}

private func errnoText() -> String { String(cString: strerror(errno)) }

/// Reads a whole regular file, refusing files over `maxBytes` before allocating.
public func readFile(_ path: String, maxBytes: Int = 1 << 30) throws -> [UInt8] {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw FileError(path: path, reason: errnoText()) }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw FileError(path: path, reason: errnoText()) }
    guard (info.st_mode & S_IFMT) == S_IFREG else {
        throw FileError(path: path, reason: "not a regular file")
    }
    let size = Int(info.st_size)
    guard size <= maxBytes else {
        throw FileError(path: path, reason: "file is \(size) bytes, over the limit of \(maxBytes) bytes")
    }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return read(fd, base + done, size - done)
        }
        if n < 0 {
            if errno == EINTR { continue }
            throw FileError(path: path, reason: errnoText())
        }
        if n == 0 { break }
        done += n
    }
    return done == size ? bytes : Array(bytes[0..<done])
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed to
/// disk, then renamed over the target, so readers never see a half-written file.
public func writeFileAtomically(_ bytes: [UInt8], to path: String) throws {
    let slash = path.lastIndex(of: "/")
    let folder = slash.map { String(path[..<$0]) } ?? "."
    let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    var template = Array("\(folder.isEmpty ? "/" : folder)/.\(name).XXXXXX".utf8CString)
    let fd = template.withUnsafeMutableBufferPointer { buffer -> Int32 in
        guard let base = buffer.baseAddress else { return -1 }
        return mkstemp(base)
    }
    guard fd >= 0 else { throw FileError(path: path, reason: "cannot create a file here: \(errnoText())") }
    let temporary = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    var ok = false
    defer {
        if !ok { unlink(temporary) }
    }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { buffer -> Int in
            guard let base = buffer.baseAddress else { return 0 }
            return write(fd, base + done, bytes.count - done)
        }
        if n < 0 {
            if errno == EINTR { continue }
            let reason = errnoText()
            close(fd)
            throw FileError(path: path, reason: "write failed: \(reason)")
        }
        done += n
    }
    // Readable like a normal new file (mkstemp creates 0600).
    let mask = umask(0)
    umask(mask)
    fchmod(fd, 0o666 & ~mask)
    if fsync(fd) != 0 {
        let reason = errnoText()
        close(fd)
        throw FileError(path: path, reason: "write failed: \(reason)")
    }
    guard close(fd) == 0 else { throw FileError(path: path, reason: "write failed: \(errnoText())") }
    guard rename(temporary, path) == 0 else {
        throw FileError(path: path, reason: "cannot replace file: \(errnoText())")
    }
    ok = true
}
