import Crypto

/// SHA-256 (FIPS 180-4) of a byte string, as lowercase hex (swift-crypto's). Used to pin
/// downloaded weights and to tie a model bundle to the exact backbone it was trained with.
public func sha256Hex(_ bytes: [UInt8]) -> String {
    SHA256.hash(data: bytes).map { byte in
        let hex = String(byte, radix: 16)
        return byte < 16 ? "0" + hex : hex
    }.joined()
}
