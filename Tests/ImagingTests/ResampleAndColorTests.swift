import Imaging
import Tensors
import XCTest

final class ResampleAndColorTests: XCTestCase {
    /// `planes()` against the subscript, sample by sample, for every channel count (odd sizes,
    /// the full 0...255 range).
    func testPlanesHoldEachChannelsSamples() throws {
        var g = SeededGenerator(seed: 40)
        for channels in 1...4 {
            let (w, h) = (37, 5)
            let pixels = (0..<(w * h * channels)).map { _ in UInt8.random(in: 0...255, using: &g) }
            let image = try Image(width: w, height: h, channels: channels, pixels: pixels)
            let planes = image.planes()
            XCTAssertEqual(planes.count, w * h * channels)
            for c in 0..<channels {
                for y in 0..<h {
                    for x in 0..<w {
                        XCTAssertEqual(planes[c * w * h + y * w + x], Float(image[x, y, c]), "\(channels) channels")
                    }
                }
            }
        }
    }

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

    /// Bands of rows on several threads give the same values as one thread, shrinking and
    /// enlarging, one and three planes.
    func testResizingInBandsGivesTheSameValues() {
        var g = SeededGenerator(seed: 52)
        for (c, w, h, tw, th, method) in [
            (1, 373, 248, 256, 256, ResizeMethod.area), (3, 97, 61, 200, 150, .bilinear),
            (1, 128, 128, 373, 248, .bilinear),
        ] {
            let planes = [Float].random(c * w * h, in: 0...255, using: &g)
            let one = resizePlanes(planes, channels: c, width: w, height: h, toWidth: tw, toHeight: th, method: method)
            for threads in [2, 3] {
                let banded = resizePlanes(
                    planes, channels: c, width: w, height: h, toWidth: tw, toHeight: th, method: method,
                    threads: threads)
                XCTAssertEqual(banded, one, "\(c)x\(w)x\(h) -> \(tw)x\(th) on \(threads) threads")
            }
        }
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
    /// The separable blur equals the 2-D convolution with a normalized Gaussian and edge
    /// replication, on rows narrower and wider than its 16-lane vectors.
    func testBlurMatchesDirectTwoDimensionalSum() {
        var g = SeededGenerator(seed: 51)
        for (w, h, sigma) in [(13, 9, Float(1.5)), (37, 6, Float(1))] {
            checkBlur(w, h, sigma, &g)
        }
    }

    func checkBlur(_ w: Int, _ h: Int, _ sigma: Float, _ g: inout SeededGenerator) {
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

/// The synthetic shifts of `eval-shift`, each against what it must do to a picture.
final class ImageShiftTests: XCTestCase {
    /// A gray test card: a gradient with a bright dot at (x, y).
    func card(_ w: Int, _ h: Int, dot: (Int, Int)? = nil) throws -> Image {
        var pixels = (0..<(w * h)).map { UInt8(60 + ($0 % w) * 100 / w) }
        if let (x, y) = dot { pixels[y * w + x] = 255 }
        return try Image(width: w, height: h, channels: 1, pixels: pixels)
    }

    func testEverySynthesizedShiftKeepsTheSizeAndChangesThePicture() throws {
        var g = SeededGenerator(seed: 1)
        let image = try card(60, 40, dot: (30, 20))
        for kind in ImageShift.allCases {
            let shifted = try kind.apply(image, generator: &g)
            XCTAssertEqual([shifted.width, shifted.height, shifted.channels], [60, 40, 1], kind.rawValue)
            XCTAssertNotEqual(shifted.pixels, image.pixels, kind.rawValue)
        }
    }

    func testPhotometricShiftsScaleValuesAsNamed() throws {
        var g = SeededGenerator(seed: 2)
        let image = try card(50, 10)
        let darker = try ImageShift.darker.apply(image, generator: &g)
        let brighter = try ImageShift.brighter.apply(image, generator: &g)
        for i in image.pixels.indices {
            XCTAssertEqual(Int(darker.pixels[i]), Int((Double(image.pixels[i]) * 0.6).rounded()))
            XCTAssertEqual(Int(brighter.pixels[i]), min(255, Int((Double(image.pixels[i]) * 1.4).rounded())))
        }
        func stats(_ v: [UInt8]) -> (mean: Double, deviation: Double) {
            let m = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            return (m, (v.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) } / Double(v.count)).squareRoot())
        }
        let low = stats(try ImageShift.lowContrast.apply(image, generator: &g).pixels), base = stats(image.pixels)
        XCTAssertEqual(low.mean, base.mean, accuracy: 0.6)
        XCTAssertEqual(low.deviation, base.deviation / 2, accuracy: 0.6)
        // Noise on mid-grey: zero mean, a deviation near 0.38 * 255 less what clipping takes.
        let grey = try Image(width: 100, height: 100, channels: 1, pixels: [UInt8](repeating: 128, count: 10_000))
        let noisy = stats(try ImageShift.gaussianNoise.apply(grey, generator: &g).pixels)
        XCTAssertEqual(noisy.mean, 128, accuracy: 3)
        XCTAssertGreaterThan(noisy.deviation, 70)
        XCTAssertLessThan(noisy.deviation, 97)
    }

    func testGeometricShiftsMoveADotWhereTheyShould() throws {
        var g = SeededGenerator(seed: 3)
        func brightest(_ image: Image) -> (Int, Int) {
            let i = image.pixels.indices.max { image.pixels[$0] < image.pixels[$1] } ?? 0
            return (i % image.width, i / image.width)
        }
        // Translation by 10% of each side: (30, 20) -> (36, 24) on 60x40.
        let moved = try ImageShift.translation.apply(try card(60, 40, dot: (30, 20)), generator: &g)
        XCTAssertEqual(brightest(moved).0, 36)
        XCTAssertEqual(brightest(moved).1, 24)
        // Rotation by 10 degrees about the centre (29.5, 19.5), image y pointing down: a dot 20
        // pixels right of the centre lands at (29.5 + 20 cos 10, 19.5 + 20 sin 10) = (49.2, 23.0).
        let turned = try ImageShift.rotation.apply(try card(60, 40, dot: (50, 20)), generator: &g)
        let (x, y) = brightest(turned)
        XCTAssertEqual(Double(x), 29.5 + 20.5 * cos(10 * Double.pi / 180), accuracy: 1.01)
        XCTAssertEqual(
            Double(y), 19.5 + 0.5 * cos(10 * Double.pi / 180) + 20.5 * sin(10 * Double.pi / 180), accuracy: 1.01)
    }

    func testDefocusSpreadsADotOverADiskOfRadiusTen() {
        var plane = [Float](repeating: 0, count: 41 * 41)
        plane[20 * 41 + 20] = 1000
        let out = ImageShift.defocus(plane, width: 41, height: 41, radius: 10, alias: 0.5)
        XCTAssertEqual(out.reduce(0, +), 1000, accuracy: 0.5)
        for y in 0..<41 {
            for x in 0..<41 {
                let r = (Double((x - 20) * (x - 20) + (y - 20) * (y - 20))).squareRoot()
                if r <= 8 { XCTAssertGreaterThan(out[y * 41 + x], 1, "inside the disk at r = \(r)") }
                if r >= 12 { XCTAssertLessThan(out[y * 41 + x], 0.01, "outside the disk at r = \(r)") }
            }
        }
    }
}
