import Foundation
import SafeFiles
import XCTest

/// sha256Hex against the FIPS 180-2 example vectors and against coreutils' sha256sum.
final class SHA256Tests: XCTestCase {
    func testFIPSVectors() {
        XCTAssertEqual(sha256Hex([]), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(sha256Hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(
            sha256Hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(
            sha256Hex([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    func testMatchesSha256sumOnRandomBytes() throws {
        var state: UInt64 = 0x1234_5678
        let bytes = (0..<100_003).map { _ -> UInt8 in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return UInt8(truncatingIfNeeded: state >> 56)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("sha-\(getpid()).bin").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        process.arguments = [path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        process.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(sha256Hex(bytes), String(output.prefix(64)))
        // Piece by piece (uneven pieces, an empty one): the digest of the whole.
        var hasher = SHA256Hasher()
        for range in [0..<1, 1..<1, 1..<65, 65..<70_000, 70_000..<100_003] {
            bytes[range].withUnsafeBytes { hasher.update($0) }
        }
        XCTAssertEqual(hasher.hex, String(output.prefix(64)))
    }
}
