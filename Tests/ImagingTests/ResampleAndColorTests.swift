import Imaging
import Tensors
import XCTest

final class ResampleAndColorTests: XCTestCase {
    func testAreaDownscaleByIntegerFactorIsBlockMean() {
        var g = SeededGenerator(seed: 41)
        let (w, h) = (12, 9)
        let planes = [Float].random(2 * w * h, in: 0...255, using: &g)
        let out = resizePlanes(planes, channels: 2, width: w, height: h, toWidth: 4, toHeight: 3, method: .area)
        for c in 0..<2 {
            for y in 0..<3 {
                for x in 0..<4 {
                    var sum: Float = 0
                    for dy in 0..<3 { for dx in 0..<3 { sum += planes[c * w * h + (3 * y + dy) * w + 3 * x + dx] } }
                    XCTAssertEqual(out[c * 12 + y * 4 + x], sum / 9, accuracy: 1e-3)
                }
            }
        }
    }

    func testAreaDownscaleByFractionPreservesTheMean() {
        var g = SeededGenerator(seed: 42)
        let planes = [Float].random(17 * 13, in: 0...1, using: &g)
        let out = resizePlanes(planes, channels: 1, width: 17, height: 13, toWidth: 5, toHeight: 4, method: .area)
        // Each output pixel covers an equal share of the input, so means agree.
        XCTAssertEqual(out.reduce(0, +) / 20, planes.reduce(0, +) / Float(17 * 13), accuracy: 1e-4)
    }

    func testBilinearUpscaleUsesHalfPixelCentres() {
        let out = resizePlanes(
            [1, 2, 3, 4], channels: 1, width: 2, height: 2, toWidth: 4, toHeight: 4, method: .bilinear)
        XCTAssertEqual(out, [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4])
    }

    func testNearestKeepsLabels() throws {
        let mask = try Image(width: 4, height: 2, channels: 1, pixels: [0, 255, 255, 0, 0, 0, 255, 255])
        let big = mask.resized(width: 8, height: 4, method: .nearest)
        XCTAssertTrue(big.pixels.allSatisfy { $0 == 0 || $0 == 255 })
        XCTAssertEqual(Array(big.pixels[0..<8]), [0, 0, 255, 255, 255, 255, 0, 0])
        XCTAssertEqual(big.resized(width: 4, height: 2, method: .nearest), mask)
    }

    func testCenterCropAndConversions() throws {
        let image = try Image(width: 4, height: 3, channels: 1, pixels: Array(0..<12))
        XCTAssertEqual(image.centerCropped(width: 2, height: 1).pixels, [5, 6])
        XCTAssertEqual(image.rgb().pixels.prefix(6), [0, 0, 0, 1, 1, 1])
        let rgb = try Image(width: 1, height: 1, channels: 4, pixels: [255, 0, 0, 9])
        XCTAssertEqual(rgb.gray().pixels, [76])  // 0.299 * 255
        XCTAssertEqual(rgb.rgb().pixels, [255, 0, 0])
    }

    func testColormapsMatchPublishedEndpoints() {
        // matplotlib's inferno table: first entry (0.001462, 0.000466, 0.013866), last (0.988362, 0.998364, 0.644924).
        let lo = Colormap.inferno.rgb(0), hi = Colormap.inferno.rgb(1)
        XCTAssertEqual(lo.r, 0.0015, accuracy: 0.02); XCTAssertEqual(lo.g, 0.0005, accuracy: 0.02);
        XCTAssertEqual(lo.b, 0.0139, accuracy: 0.02)
        XCTAssertEqual(hi.r, 0.9884, accuracy: 0.02); XCTAssertEqual(hi.g, 0.9984, accuracy: 0.02);
        XCTAssertEqual(hi.b, 0.6449, accuracy: 0.02)
        // Inferno is perceptually ordered: luminance rises monotonically.
        var last: Float = -1
        for i in 0...64 {
            let c = Colormap.inferno.rgb(Float(i) / 64)
            let y = 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b
            XCTAssertGreaterThan(y, last - 1e-3)
            last = y
        }
        // Turbo runs from dark blue through green to dark red.
        let t0 = Colormap.turbo.rgb(0.1), tm = Colormap.turbo.rgb(0.5), t1 = Colormap.turbo.rgb(0.95)
        XCTAssertGreaterThan(t0.b, t0.r)
        XCTAssertGreaterThan(tm.g, max(tm.r, tm.b) - 0.2)
        XCTAssertGreaterThan(t1.r, t1.b)
        XCTAssertEqual(Colormap.turbo.table().count, 768)
    }

    func testColorizeAndOverlay() throws {
        let heat = try Colormap.inferno.colorize([0, 0.5, 1, 2], width: 2, height: 2)
        XCTAssertEqual(Array(heat.pixels[6..<9]), Array(heat.pixels[9..<12]))  // values above 1 clamp
        let photo = try Image(width: 2, height: 2, channels: 1, pixels: [10, 20, 30, 40])
        XCTAssertEqual(try photo.overlaid(with: heat, alpha: 0), photo.rgb())
        XCTAssertEqual(try photo.overlaid(with: heat, alpha: 1), heat)
        let weighted = try photo.overlaid(with: heat, alpha: 1, weights: [0, 0, 1, 1])
        XCTAssertEqual(Array(weighted.pixels[0..<3]), [10, 10, 10])
        XCTAssertEqual(Array(weighted.pixels[6..<12]), Array(heat.pixels[6..<12]))
        XCTAssertThrowsError(try photo.overlaid(with: try Image(width: 3, height: 2, channels: 3)))
    }
}

final class BlurTests: XCTestCase {
    /// The separable blur equals the 2-D convolution with a normalized Gaussian and edge replication.
    func testBlurMatchesDirectTwoDimensionalSum() {
        var g = SeededGenerator(seed: 51)
        let (w, h, sigma) = (13, 9, Float(1.5))
        let plane = [Float].random(w * h, in: 0...1, using: &g)
        let fast = gaussianBlur(plane, width: w, height: h, sigma: sigma)
        let r = Int((4 * sigma).rounded(.up))
        let weights = (-r...r).map { i in exp(-0.5 * Double(i * i) / Double(sigma * sigma)) }
        let total = weights.reduce(0, +)
        for y in 0..<h {
            for x in 0..<w {
                var acc = 0.0
                for dy in -r...r {
                    for dx in -r...r {
                        let yy = min(h - 1, max(0, y + dy)), xx = min(w - 1, max(0, x + dx))
                        acc += weights[dy + r] * weights[dx + r] / (total * total) * Double(plane[yy * w + xx])
                    }
                }
                XCTAssertEqual(Double(fast[y * w + x]), acc, accuracy: 1e-5)
            }
        }
        XCTAssertEqual(
            gaussianBlur([Float](repeating: 3, count: 20), width: 5, height: 4, sigma: 4).map {
                ($0 * 1e4).rounded() / 1e4
            },
            [Float](repeating: 3, count: 20))
    }
}
