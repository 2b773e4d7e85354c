import Detection
import Foundation
import SafeFiles

/// The optional shared secret of `--token-file`, checked against `Authorization: Bearer ...`.
public struct BearerToken: Sendable {
    private let digest: [UInt8]

    /// The token read from `path` (surrounding whitespace and newlines dropped); throws when
    /// the file cannot be read or holds no token.
    public init(file path: String) throws {
        let text = String(decoding: try readFile(path, maxBytes: 64 << 10), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else { throw PipelineError.input("\(path): the token file is empty") }
        self.init(text)
    }

    /// A token given as text.
    public init(_ token: String) { digest = Array(sha256Hex(Array(token.utf8)).utf8) }

    /// Whether an Authorization header value carries the token. The comparison runs over the
    /// SHA-256 of both, byte by byte without an early exit, so its time tells nothing of how
    /// much of a guess was right, nor of the token's length.
    public func accepts(_ authorization: String?) -> Bool {
        guard let authorization, authorization.count > 7,
            authorization.prefix(7).lowercased() == "bearer "
        else { return false }
        let offered = Array(sha256Hex(Array(authorization.dropFirst(7).utf8)).utf8)
        var difference: UInt8 = 0
        for (a, b) in zip(offered, digest) { difference |= a ^ b }
        return difference == 0
    }
}
