import Crypto

/// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex (swift-crypto's). Used to pin
/// downloaded weights and to tie a model bundle to the exact backbone it was trained with.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    var hasher = SHA256Hasher()
    bytes.withUnsafeBytes { hasher.update($0) }
    return hasher.hex
}

/// SHA-256 over bytes given piece by piece: the digest of their concatenation, without
/// building it (a model bundle's checksum covers 50 MB of tensors).
public struct SHA256Hasher {
    private var state = SHA256()

    /// An empty hash.
    public init() {}

    /// Appends `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) { state.update(bufferPointer: bytes) }

    /// The digest of everything appended, as lowercase hex.
    public var hex: String {
        state.finalize().map { byte in
            let hex = String(byte, radix: 16)
            return byte < 16 ? "0" + hex : hex
        }.joined()
    }
}
