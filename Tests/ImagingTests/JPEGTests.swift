import CImageCodecs
import Foundation
import Imaging
import Tensors
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("Fixtures")

/// Reads a binary netpbm (P5 gray / P6 RGB) reference written by Scripts/make_jpeg_fixtures.py.
func readNetpbm(_ path: String) throws -> Image {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var fields = [String](), i = 0
    while fields.count < 4 {
        while bytes[i] == 0x20 || bytes[i] == 0x0A { i += 1 }
        var token = ""
        while bytes[i] != 0x20 && bytes[i] != 0x0A { token.append(Character(UnicodeScalar(bytes[i]))); i += 1 }
        fields.append(token)
    }
    i += 1
    let channels = fields[0] == "P5" ? 1 : 3
    return try Image(width: Int(fields[1])!, height: Int(fields[2])!, channels: channels, pixels: Array(bytes[i...]))
}

final class JPEGTests: XCTestCase {
    /// Every fixture decodes to what an independent decoder (Pillow) produced, EXIF orientation applied.
    func testDecodesMatchIndependentDecoder() throws {
        let names = [
            "baseline_420", "baseline_444", "progressive", "gray", "cmyk",
            "exif_orientation_3", "exif_orientation_6", "exif_orientation_8",
        ]
        for name in names {
            let image = try ImageCodec.read(contentsOf: fixtures.appendingPathComponent("jpeg/\(name).jpg").path)
            let reference = try readNetpbm(fixtures.appendingPathComponent("jpeg/\(name).ref").path)
            XCTAssertEqual(image.width, reference.width, name)
            XCTAssertEqual(image.height, reference.height, name)
            XCTAssertEqual(image.channels, reference.channels, name)
            let diffs = zip(image.pixels, reference.pixels).map { abs(Int($0) - Int($1)) }
            XCTAssertLessThanOrEqual(diffs.max() ?? 99, 2, name)
            XCTAssertLessThanOrEqual(Double(diffs.reduce(0, +)) / Double(diffs.count), 0.25, name)
        }
    }

    func testOrientationCanBeLeftAsStored() throws {
        let path = fixtures.appendingPathComponent("jpeg/exif_orientation_6.jpg").path
        let stored = try ImageCodec.read(contentsOf: path, options: DecodeOptions(appliesOrientation: false))
        XCTAssertEqual(stored.width, 56)
        XCTAssertEqual(stored.height, 40)
        let upright = try ImageCodec.read(contentsOf: path)
        XCTAssertEqual(upright, stored.oriented(.right))
    }

    func testDCTScaledDecodeCoversTheMinimumAndReportsTheFullSize() throws {
        // Smooth content at 1024x600: 1/2 is the smallest power-of-two scale with both sides
        // >= 256 (1/4 gives 256x150). The scaled decode must look like the full decode shrunk
        // by a 2x2 box filter (a different path to the same picture).
        let (w, h) = (1024, 600)
        var pixels = [UInt8]()
        for y in 0..<h {
            for x in 0..<w {
                let v = 128 + 60 * sin(Double(x) / 37) * cos(Double(y) / 23)
                pixels += [UInt8(v), UInt8(255 - v), UInt8((x + 2 * y) * 255 / (w + 2 * h))]
            }
        }
        let bytes = try ImageCodec.encodeJPEG(try Image(width: w, height: h, channels: 3, pixels: pixels), quality: 95)
        let full = try ImageCodec.decode(bytes)
        let scaled = try ImageCodec.decodeReporting(bytes, options: DecodeOptions(minimumSide: 256))
        XCTAssertEqual(
            [scaled.image.width, scaled.image.height, scaled.fullWidth, scaled.fullHeight], [512, 300, w, h])
        let box = full.resized(width: 512, height: 300, method: .area)
        let diffs = zip(scaled.image.pixels, box.pixels).map { abs(Int($0) - Int($1)) }
        XCTAssertLessThanOrEqual(Double(diffs.reduce(0, +)) / Double(diffs.count), 1.5)
        XCTAssertLessThanOrEqual(diffs.max() ?? 99, 12)
        // No minimum, or one the image cannot halve for: full size.
        for minimum in [nil, 301] {
            let same = try ImageCodec.decodeReporting(bytes, options: DecodeOptions(minimumSide: minimum))
            XCTAssertEqual(same.image, full)
            XCTAssertEqual([same.fullWidth, same.fullHeight], [w, h])
        }
        // 1/8 when even that covers the minimum.
        let eighth = try ImageCodec.decodeReporting(bytes, options: DecodeOptions(minimumSide: 64))
        XCTAssertEqual([eighth.image.width, eighth.image.height], [128, 75])
    }

    func testDCTScaledDecodeReportsTheOrientedFullSize() throws {
        // Stored 56x40 with orientation 6 (rotate right): upright 40x56. A minimum side of 10
        // allows 1/4 (14x10 stored, 10x14 upright), not 1/8 (7x5).
        let path = fixtures.appendingPathComponent("jpeg/exif_orientation_6.jpg").path
        let scaled = try ImageCodec.readReporting(contentsOf: path, options: DecodeOptions(minimumSide: 10))
        XCTAssertEqual(
            [scaled.image.width, scaled.image.height, scaled.fullWidth, scaled.fullHeight], [10, 14, 40, 56])
        let png = try ImageCodec.decodeReporting(
            try ImageCodec.encodePNG(try ImageCodec.read(contentsOf: path)), options: DecodeOptions(minimumSide: 10))
        XCTAssertEqual([png.image.width, png.image.height, png.fullWidth, png.fullHeight], [40, 56, 40, 56])
    }

    func testProgressiveAndGrayscaleRoundTrip() throws {
        var g = SeededGenerator(seed: 21)
        // Smooth content: JPEG is close to lossless on it at high quality.
        let (w, h) = (40, 24)
        var pixels = [UInt8]()
        for y in 0..<h { for x in 0..<w { pixels += [UInt8(x * 6), UInt8(y * 10), UInt8(128 + (x + y) % 7)] } }
        let image = try Image(width: w, height: h, channels: 3, pixels: pixels)
        _ = g.next()
        for progressive in [false, true] {
            let back = try ImageCodec.decode(ImageCodec.encodeJPEG(image, quality: 98, progressive: progressive))
            let worst = zip(back.pixels, image.pixels).map { abs(Int($0) - Int($1)) }.max() ?? 99
            XCTAssertLessThanOrEqual(worst, 8, "progressive \(progressive)")
        }
        let gray = try ImageCodec.decode(ImageCodec.encodeJPEG(image.gray(), quality: 98))
        XCTAssertEqual(gray.channels, 1)
    }

    /// CMYK and YCCK files with Adobe (inverted) samples become RGB = c * k / 255 per channel.
    func testCMYKAndYCCKBecomeRGB() throws {
        let (w, h) = (16, 16)
        var cmyk = [UInt8]()
        for y in 0..<h { for x in 0..<w { cmyk += [UInt8(255 - x * 8), UInt8(200), UInt8(100 + y * 8), UInt8(230)] } }
        for flags in [Int32(0), Int32(AC_JPEG_YCCK)] {
            let bytes = try ImageCodec.encodeJPEGSamples(
                cmyk, width: w, height: h, channels: 4, quality: 100, flags: flags)
            let image = try ImageCodec.decode(bytes)
            XCTAssertEqual(image.channels, 3)
            var worst = 0
            for i in 0..<(w * h) {
                for c in 0..<3 {
                    let expected = Int(cmyk[4 * i + c]) * Int(cmyk[4 * i + 3]) / 255
                    worst = max(worst, abs(Int(image.pixels[3 * i + c]) - expected))
                }
            }
            XCTAssertLessThanOrEqual(worst, 6, "flags \(flags)")
        }
    }

    func testExifOrientationParsing() {
        func tiff(bigEndian: Bool, orientation: Int, type: Int = 3) -> [UInt8] {
            func u16(_ v: Int) -> [UInt8] {
                bigEndian ? [UInt8(v >> 8), UInt8(v & 0xFF)] : [UInt8(v & 0xFF), UInt8(v >> 8)]
            }
            func u32(_ v: Int) -> [UInt8] {
                bigEndian ? u16(v >> 16) + u16(v & 0xFFFF) : u16(v & 0xFFFF) + u16(v >> 16)
            }
            let value = bigEndian ? u16(orientation) + [0, 0] : u16(orientation) + [0, 0]
            return (bigEndian ? [0x4D, 0x4D] : [0x49, 0x49]) + u16(42) + u32(8) + u16(2)
                + u16(0x010F) + u16(2) + u32(1) + u32(0)  // Make, ignored
                + u16(0x0112) + u16(type) + u32(1) + value + u32(0)
        }
        for o in 1...8 {
            XCTAssertEqual(ExifOrientation(tiff: tiff(bigEndian: true, orientation: o)).rawValue, o)
            XCTAssertEqual(ExifOrientation(tiff: tiff(bigEndian: false, orientation: o)).rawValue, o)
        }
        XCTAssertEqual(ExifOrientation(tiff: tiff(bigEndian: false, orientation: 9)), .up)
        XCTAssertEqual(ExifOrientation(tiff: tiff(bigEndian: false, orientation: 6, type: 4)), .up)
        XCTAssertEqual(ExifOrientation(tiff: Array(tiff(bigEndian: true, orientation: 6).prefix(20))), .up)
        XCTAssertEqual(ExifOrientation(tiff: [0x49, 0x49, 42, 0, 0xFF, 0xFF, 0xFF, 0x7F]), .up)
        XCTAssertEqual(ExifOrientation(tiff: []), .up)
    }

    func testOrientationTransformsAreTheEightDihedralMaps() throws {
        // 3x2 image with distinct values; compare each orientation with its definition.
        let image = try Image(width: 3, height: 2, channels: 1, pixels: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(image.oriented(.upMirrored).pixels, [3, 2, 1, 6, 5, 4])
        XCTAssertEqual(image.oriented(.down).pixels, [6, 5, 4, 3, 2, 1])
        XCTAssertEqual(image.oriented(.downMirrored).pixels, [4, 5, 6, 1, 2, 3])
        XCTAssertEqual(image.oriented(.leftMirrored).pixels, [1, 4, 2, 5, 3, 6])  // transpose
        XCTAssertEqual(image.oriented(.right).pixels, [4, 1, 5, 2, 6, 3])  // 90 degrees clockwise
        XCTAssertEqual(image.oriented(.rightMirrored).pixels, [6, 3, 5, 2, 4, 1])  // transverse
        XCTAssertEqual(image.oriented(.left).pixels, [3, 6, 2, 5, 1, 4])  // 90 degrees counter-clockwise
        XCTAssertEqual(image.oriented(.right).width, 2)
    }
}
