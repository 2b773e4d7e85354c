import CImageCodecs
import Imaging
import Tensors
import XCTest

/// Packs samples of `depth` bits MSB-first per row, as PNG stores them (16-bit big-endian).
func packRows(_ samples: [Int], perRow: Int, depth: Int) -> [UInt8] {
    var out = [UInt8]()
    for row in stride(from: 0, to: samples.count, by: perRow) {
        if depth == 16 {
            for v in samples[row..<(row + perRow)] { out += [UInt8(v >> 8), UInt8(v & 0xFF)] }
        } else if depth == 8 {
            out += samples[row..<(row + perRow)].map { UInt8($0) }
        } else {
            var byte = 0, bits = 0
            for v in samples[row..<(row + perRow)] {
                byte = byte << depth | v
                bits += depth
                if bits == 8 { out.append(UInt8(byte)); byte = 0; bits = 0 }
            }
            if bits > 0 { out.append(UInt8(byte << (8 - bits))) }
        }
    }
    return out
}

/// What an 8-bit decode of a `depth`-bit sample must give: exact replication for low
/// depths (1 -> 255, 2 -> x85, 4 -> x17), rounding for 16 bits.
func expand(_ v: Int, depth: Int) -> Int {
    depth == 16 ? Int((Double(v) * 255 / 65535).rounded()) : v * 255 / ((1 << depth) - 1)
}

final class PNGTests: XCTestCase {
    func testRoundTripEveryColourTypeAndBitDepth() throws {
        var g = SeededGenerator(seed: 11)
        let cases: [(type: Int32, depths: [Int], channels: Int)] = [
            (0, [1, 2, 4, 8, 16], 1), (2, [8, 16], 3), (3, [1, 2, 4, 8], 1), (4, [8, 16], 2), (6, [8, 16], 4),
        ]
        for c in cases {
            for depth in c.depths {
                for interlaced in [false, true] {
                    let (w, h) = (13, 9)  // odd sizes exercise partial bytes and Adam7 edges
                    let maxValue = c.type == 3 ? (1 << depth) - 1 : (1 << depth) - 1
                    let samples = (0..<(w * h * c.channels)).map { _ in Int.random(in: 0...maxValue, using: &g) }
                    var palette = [UInt8]()
                    if c.type == 3 { palette = (0..<(3 << depth)).map { _ in UInt8.random(in: 0...255, using: &g) } }
                    let png = try ImageCodec.encodePNGSamples(
                        packRows(samples, perRow: w * c.channels, depth: depth),
                        width: w, height: h, colorType: c.type,
                        bitDepth: Int32(depth), interlaced: interlaced,
                        palette: palette)
                    let image = try ImageCodec.decode(png)
                    let label = "type \(c.type) depth \(depth) interlaced \(interlaced)"
                    XCTAssertEqual(image.width, w, label)
                    XCTAssertEqual(image.height, h, label)
                    if c.type == 3 {
                        XCTAssertEqual(image.channels, 3, label)
                        let expected = samples.flatMap { palette[(3 * $0)..<(3 * $0 + 3)] }
                        XCTAssertEqual(image.pixels, expected, label)
                    } else {
                        XCTAssertEqual(image.channels, c.channels, label)
                        let expected = samples.map { expand($0, depth: depth) }
                        let worst = zip(image.pixels, expected).map { abs(Int($0) - $1) }.max() ?? 99
                        XCTAssertLessThanOrEqual(worst, depth == 16 ? 1 : 0, label)
                    }
                }
            }
        }
    }

    func testTransparencyBecomesAlpha() throws {
        // Palette with a tRNS table shorter than the palette: later entries are opaque.
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255]
        let png = try ImageCodec.encodePNGSamples(
            [0, 1, 2, 1], width: 4, height: 1, colorType: 3, bitDepth: 8,
            palette: palette, transparency: [10, 200])
        let image = try ImageCodec.decode(png)
        XCTAssertEqual(image.channels, 4)
        XCTAssertEqual(image.pixels, [255, 0, 0, 10, 0, 255, 0, 200, 0, 0, 255, 255, 0, 255, 0, 200])
        // Gray with a colour key: the key value is fully transparent.
        let gray = try ImageCodec.decode(
            ImageCodec.encodePNGSamples(
                [5, 7, 5], width: 3, height: 1, colorType: 0, bitDepth: 8,
                transparency: [0, 5]))
        XCTAssertEqual(gray.channels, 2)
        XCTAssertEqual(gray.pixels, [5, 0, 7, 255, 5, 0])
        // RGB with a colour key.
        let rgb = try ImageCodec.decode(
            ImageCodec.encodePNGSamples(
                [1, 2, 3, 4, 5, 6], width: 2, height: 1, colorType: 2,
                bitDepth: 8, transparency: [0, 4, 0, 5, 0, 6]))
        XCTAssertEqual(rgb.channels, 4)
        XCTAssertEqual(rgb.pixels, [1, 2, 3, 255, 4, 5, 6, 0])
    }

    func testEightBitEncoderRoundTripsExactly() throws {
        var g = SeededGenerator(seed: 12)
        for channels in 1...4 {
            let image = try Image(
                width: 31, height: 17, channels: channels,
                pixels: (0..<(31 * 17 * channels)).map { _ in UInt8.random(in: 0...255, using: &g) })
            XCTAssertEqual(try ImageCodec.decode(ImageCodec.encodePNG(image)), image)
        }
    }

    func testWritePNGLeavesNoTemporaryFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("png-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = try Image(width: 4, height: 3, channels: 3, fill: 77)
        let path = dir.appendingPathComponent("out.png").path
        try ImageCodec.writePNG(image, to: path)
        try ImageCodec.writePNG(image, to: path)  // overwrite in place
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["out.png"])
        XCTAssertEqual(try ImageCodec.read(contentsOf: path), image)
        XCTAssertThrowsError(try ImageCodec.writePNG(image, to: dir.path + "/missing/out.png")) { error in
            XCTAssertTrue(String(describing: error).hasPrefix(dir.path + "/missing/out.png: "), "\(error)")
        }
    }
}
