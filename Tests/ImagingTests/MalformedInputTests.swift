import Imaging
import Tensors
import XCTest

/// Recomputes a PNG chunk's CRC-32 (ISO 3309 polynomial), so a test can forge a chunk whose
/// CRC is right but whose content is hostile.
func crc32(_ bytes: ArraySlice<UInt8>) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return ~c
}

/// Byte offset of the first PNG chunk of `type`, or nil.
func chunkOffset(_ png: [UInt8], _ type: String) -> Int? {
    var i = 8
    while i + 8 <= png.count {
        let length = Int(png[i]) << 24 | Int(png[i + 1]) << 16 | Int(png[i + 2]) << 8 | Int(png[i + 3])
        if String(decoding: png[(i + 4)..<(i + 8)], as: UTF8.self) == type { return i }
        i += 12 + length
    }
    return nil
}

/// Rewrites the IHDR fields and fixes its CRC.
func forgeIHDR(
    _ png: [UInt8], width: UInt32? = nil, height: UInt32? = nil, depth: UInt8? = nil,
    colorType: UInt8? = nil
) -> [UInt8] {
    var p = png
    let o = 8 + 8  // IHDR data
    func put(_ v: UInt32, at i: Int) { for k in 0..<4 { p[i + k] = UInt8((v >> (24 - 8 * k)) & 0xFF) } }
    if let width { put(width, at: o) }
    if let height { put(height, at: o + 4) }
    if let depth { p[o + 8] = depth }
    if let colorType { p[o + 9] = colorType }
    put(crc32(p[12..<(o + 13)]), at: o + 13)
    return p
}

final class MalformedInputTests: XCTestCase {
    func validPNG() throws -> [UInt8] {
        var g = SeededGenerator(seed: 31)
        let image = try Image(
            width: 24, height: 16, channels: 3,
            pixels: (0..<(24 * 16 * 3)).map { _ in UInt8.random(in: 0...255, using: &g) })
        return try ImageCodec.encodePNG(image)
    }

    func validJPEG() throws -> [UInt8] {
        [UInt8](try Data(contentsOf: fixtures.appendingPathComponent("jpeg/baseline_420.jpg")))
    }

    /// Builds the corpus: every entry must be refused with a thrown ImageError, never a crash.
    func corpus() throws -> [(String, [UInt8])] {
        let png = try validPNG(), jpeg = try validJPEG()
        var g = SeededGenerator(seed: 32)
        var cases: [(String, [UInt8])] = [
            ("empty file", []),
            ("one byte", [0x89]),
            ("text named .png", Array("hello, this is not an image\n".utf8)),
            ("PNG signature only", Array(png.prefix(8))),
            ("JPEG SOI only", [0xFF, 0xD8, 0xFF]),
            ("wrong PNG signature", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x00] + png.dropFirst(8)),
            ("HTML", Array("<html><body>not an image</body></html>".utf8)),
        ]
        for seed in 0..<5 {
            cases.append(("random bytes \(seed)", (0..<(64 << seed)).map { _ in UInt8.random(in: 0...255, using: &g) }))
            cases.append(
                (
                    "random after PNG signature \(seed)",
                    Array(png.prefix(8)) + (0..<(100 << seed)).map { _ in UInt8.random(in: 0...255, using: &g) }
                ))
            cases.append(
                (
                    "random after JPEG SOI \(seed)",
                    [0xFF, 0xD8, 0xFF] + (0..<(100 << seed)).map { _ in UInt8.random(in: 0...255, using: &g) }
                ))
        }
        // Truncations at many offsets, including just before the last chunk / EOI marker.
        for fraction in [0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9] {
            cases.append(("PNG cut at \(fraction)", Array(png.prefix(Int(Double(png.count) * fraction)))))
            cases.append(("JPEG cut at \(fraction)", Array(jpeg.prefix(Int(Double(jpeg.count) * fraction)))))
        }
        for back in [1, 4, 12, 13] { cases.append(("PNG missing last \(back) bytes", Array(png.dropLast(back)))) }
        for back in [1, 2, 3] { cases.append(("JPEG missing last \(back) bytes", Array(jpeg.dropLast(back)))) }
        // Chunk and CRC corruption.
        var badIHDRCRC = png
        badIHDRCRC[29] ^= 0xFF
        cases.append(("IHDR CRC wrong", badIHDRCRC))
        if let idat = chunkOffset(png, "IDAT") {
            var badCRC = png
            let length = Int(png[idat]) << 24 | Int(png[idat + 1]) << 16 | Int(png[idat + 2]) << 8 | Int(png[idat + 3])
            badCRC[idat + 8 + length] ^= 0x55
            cases.append(("IDAT CRC wrong", badCRC))
            var badZlib = png
            for k in 0..<8 { badZlib[idat + 8 + k] = 0xFF }
            let crc = crc32(badZlib[(idat + 4)..<(idat + 8 + length)])
            for k in 0..<4 { badZlib[idat + 8 + length + k] = UInt8((crc >> (24 - 8 * UInt32(k))) & 0xFF) }
            cases.append(("IDAT zlib stream garbage, CRC fixed", badZlib))
            var renamed = png
            renamed[idat + 4] = UInt8(ascii: "X")
            cases.append(("IDAT renamed to unknown critical chunk", renamed))
        }
        // Hostile headers with correct CRCs.
        cases.append(("absurd dimensions 1e6 x 1e6", forgeIHDR(png, width: 1_000_000, height: 1_000_000)))
        cases.append(("dimensions 2^31-1 x 1", forgeIHDR(png, width: 0x7FFF_FFFF, height: 1)))
        cases.append(("zero width", forgeIHDR(png, width: 0)))
        cases.append(("declared larger than data", forgeIHDR(png, width: 240, height: 160)))
        cases.append(("bit depth 3", forgeIHDR(png, depth: 3)))
        cases.append(("colour type 5", forgeIHDR(png, colorType: 5)))
        cases.append(("palette image without PLTE", forgeIHDR(png, depth: 8, colorType: 3)))
        // JPEG marker damage.
        if let sof = (0..<(jpeg.count - 9)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 }) {
            var huge = jpeg
            huge[sof + 5] = 0xFF; huge[sof + 6] = 0xDC; huge[sof + 7] = 0xFF; huge[sof + 8] = 0xDC  // 65500 x 65500
            cases.append(("JPEG SOF 65500 x 65500", huge))
            var zero = jpeg
            zero[sof + 5] = 0; zero[sof + 6] = 0
            cases.append(("JPEG SOF height 0", zero))
            var components = jpeg
            components[sof + 9] = 7
            cases.append(("JPEG SOF 7 components", components))
        }
        if let sos = (0..<(jpeg.count - 1)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xDA }) {
            var noSOS = jpeg
            noSOS[sos + 1] = 0xD9
            cases.append(("JPEG EOI where SOS belongs", noSOS))
            var scrambled = jpeg
            for k in (sos + 20)..<min(jpeg.count - 2, sos + 220) { scrambled[k] = UInt8.random(in: 0...255, using: &g) }
            cases.append(("JPEG entropy data scrambled", scrambled))
        }
        if let dht = (0..<(jpeg.count - 1)).first(where: { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC4 }) {
            var badHuffman = jpeg
            for k in 5..<21 { badHuffman[dht + k] = 0xFF }  // code counts that overflow the code space
            cases.append(("JPEG Huffman table overfull", badHuffman))
        }
        return cases
    }

    func testEveryMalformedInputThrowsACleanError() throws {
        let cases = try corpus()
        XCTAssertGreaterThanOrEqual(cases.count, 40)
        for (name, bytes) in cases {
            XCTAssertThrowsError(try ImageCodec.decode(bytes, path: "bad/\(name).png"), name) { error in
                guard let e = error as? ImageError else { return XCTFail("\(name): \(error) is not an ImageError") }
                XCTAssertEqual(e.path, "bad/\(name).png")
                XCTAssertTrue(e.description.hasPrefix("bad/\(name).png: "), e.description)
                XCTAssertFalse(e.description.contains("\n"), "one line: \(e.description)")
            }
        }
    }

    func testCorpusThroughFilesNamesTheFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for (i, (_, bytes)) in try corpus().enumerated() {
            let path = dir.appendingPathComponent("case\(i).png").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            XCTAssertThrowsError(try ImageCodec.read(contentsOf: path)) { error in
                XCTAssertTrue(String(describing: error).hasPrefix(path + ": "))
            }
        }
        XCTAssertThrowsError(try ImageCodec.read(contentsOf: dir.path + "/does-not-exist.jpg")) { error in
            XCTAssertEqual(String(describing: error), dir.path + "/does-not-exist.jpg: No such file or directory")
        }
        XCTAssertThrowsError(try ImageCodec.read(contentsOf: dir.path)) { error in
            XCTAssertEqual(String(describing: error), dir.path + ": not a regular file")
        }
    }

    func testPixelLimitRefusesBeforeDecoding() throws {
        let png = try validPNG()  // 24 x 16 = 384 pixels
        XCTAssertNoThrow(try ImageCodec.decode(png, options: DecodeOptions(maxPixels: 384)))
        XCTAssertThrowsError(try ImageCodec.decode(png, options: DecodeOptions(maxPixels: 383))) { error in
            guard case .tooLarge(let m)? = (error as? ImageError)?.reason else { return XCTFail("\(error)") }
            XCTAssertTrue(m.contains("over the limit of 383 pixels"), m)
        }
        let jpeg = try validJPEG()  // 56 x 40
        XCTAssertThrowsError(try ImageCodec.decode(jpeg, options: DecodeOptions(maxPixels: 2000))) { error in
            guard case .tooLarge? = (error as? ImageError)?.reason else { return XCTFail("\(error)") }
        }
        // The default limit (100 MP) refuses the forged 1e6 x 1e6 header as too large, not as corrupt.
        XCTAssertThrowsError(try ImageCodec.decode(forgeIHDR(png, width: 1_000_000, height: 1_000_000))) { error in
            guard case .tooLarge? = (error as? ImageError)?.reason else { return XCTFail("\(error)") }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("limit-\(getpid()).png").path
        try Data(png).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        XCTAssertThrowsError(try ImageCodec.read(contentsOf: path, options: DecodeOptions(maxFileBytes: 10))) { error in
            XCTAssertTrue(String(describing: error).contains("over the limit of 10 bytes"), "\(error)")
        }
    }
}
