/// An image could not be read or written; names the file (when there is one) and the reason.
public struct ImageError: Error, CustomStringConvertible, Equatable, Sendable {
    /// Why an image operation failed.
    public enum Reason: Equatable, Sendable {
        /// The bytes are neither PNG nor JPEG.
        case notAnImage(String)
        /// The codec library reported corrupt or truncated data.
        case corrupt(String)
        /// The declared size exceeds the configured pixel limit.
        case tooLarge(String)
        /// The file could not be read or written.
        case io(String)
        /// The codec ran out of memory.
        case outOfMemory
        /// A caller passed unusable arguments.
        case invalidArgument(String)
    }

    /// The file concerned, if any.
    public var path: String?
    /// What went wrong.
    public var reason: Reason

    /// Creates an error for `path`.
    public init(path: String?, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    /// One line: the file and the reason.
    public var description: String {
        let what: String
        switch reason {
        case .notAnImage(let m): what = "not a PNG or JPEG image (\(m))"
        case .corrupt(let m): what = "corrupt image: \(m)"
        case .tooLarge(let m): what = m
        case .io(let m): what = m
        case .outOfMemory: what = "out of memory while decoding"
        case .invalidArgument(let m): what = m
        }
        return path.map { "\($0): \(what)" } ?? what
    }
}
