import Tensors
import XCTest

final class KernelTests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    func testSgemmMatchesNaiveLoop() {
        var g = SeededGenerator(seed: 1)
        for (ta, tb, m, n, k) in [
            (false, false, 7, 5, 3), (true, false, 16, 33, 9), (false, true, 1, 64, 40),
            (true, true, 13, 11, 17), (false, false, 64, 300, 27),
        ] {
            let a = [Float].random(m * k, using: &g), b = [Float].random(k * n, using: &g)
            let c0 = [Float].random(m * n, using: &g)
            var expected = c0
            naiveGemm(
                transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.7, a: a, lda: ta ? m : k, b: b,
                ldb: tb ? k : n, beta: 0.3, c: &expected, ldc: n)
            var c = c0
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        sgemm(
                            transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.7, a: ap.baseAddress!,
                            lda: ta ? m : k, b: bp.baseAddress!, ldb: tb ? k : n, beta: 0.3, c: cp.baseAddress!, ldc: n)
                    }
                }
            }
            for i in 0..<(m * n) {
                XCTAssertEqual(c[i], expected[i], accuracy: 1e-4, "gemm \(ta) \(tb) \(m)x\(n)x\(k)")
            }
        }
    }

    func testSamePaddingFollowsTensorFlow() {
        // TF: out = ceil(in / s), pad_total = max((out - 1) * s + k - in, 0), the extra pixel after.
        let cases: [(size: Int, k: Int, s: Int, before: Int, after: Int)] = [
            (224, 3, 2, 0, 1), (224, 5, 2, 1, 2), (7, 3, 2, 1, 1), (112, 3, 1, 1, 1), (14, 5, 1, 2, 2),
            (15, 5, 2, 2, 2),
        ]
        for c in cases {
            let geo = ConvGeometry.same(
                inChannels: 1, outChannels: 1, kernel: c.k, stride: c.s, height: c.size, width: c.size)
            XCTAssertEqual(geo.padding.top, c.before, "\(c)")
            XCTAssertEqual(geo.padding.bottom, c.after, "\(c)")
            XCTAssertEqual(geo.outputSize(height: c.size, width: c.size).h, (c.size + c.s - 1) / c.s)
        }
    }

    func testFoldedBatchNormEqualsConvolutionThenNormalization() {
        var g = SeededGenerator(seed: 4)
        let geo = ConvGeometry.symmetric(inChannels: 4, outChannels: 6, kernel: 3, pad: 1)
        let x = Tensor(shape: [1, 4, 6, 6], storage: .random(144, using: &g))
        let wt = Tensor(shape: geo.weightShape, storage: .random(216, using: &g))
        let gamma = [Float].random(6, in: 0.5...2, using: &g), beta = [Float].random(6, using: &g)
        let mean = [Float].random(6, using: &g), variance = [Float].random(6, in: 0.1...3, using: &g)
        let eps: Float = 1e-3
        let raw = naiveConv2d(x, weight: wt, geometry: geo)
        var expected = raw
        for c in 0..<6 {
            for i in 0..<36 {
                let v = raw.storage[c * 36 + i]
                expected.storage[c * 36 + i] = (v - mean[c]) / (variance[c] + eps).squareRoot() * gamma[c] + beta[c]
            }
        }
        let (fw, fb) = foldBatchNorm(
            weight: wt, bias: [], gamma: gamma, beta: beta, mean: mean, variance: variance,
            epsilon: eps)
        let folded = naiveConv2d(x, weight: fw, bias: fb, geometry: geo)
        XCTAssertLessThan(folded.maxAbsDifference(expected), 1e-4)
    }

    /// Average and max pooling against the window's definition; the 3x3 mean (the embeddings'
    /// fast path) also on planes of one or two rows or columns.
    func testPoolingMatchesWindowDefinition() {
        var g = SeededGenerator(seed: 5)
        for (k, s, p, h, w) in [
            (3, 1, 1, 7, 8), (2, 2, 0, 7, 8), (3, 2, 1, 7, 8), (3, 1, 1, 1, 5), (3, 1, 1, 4, 1),
            (3, 1, 1, 2, 2), (3, 1, 1, 1, 1), (3, 1, 1, 2, 9),
        ] {
            let x = Tensor(shape: [2, 3, h, w], storage: .random(2 * 3 * h * w, using: &g))
            let avg = pool2d(x, kind: .average, kernel: k, stride: s, padding: p)
            let mx = pool2d(x, kind: .max, kernel: k, stride: s, padding: p)
            for b in 0..<2 {
                for c in 0..<3 {
                    for oy in 0..<avg.height {
                        for ox in 0..<avg.width {
                            var values = [Float]()
                            for i in 0..<k {
                                for j in 0..<k {
                                    let y = oy * s + i - p, xx = ox * s + j - p
                                    if y >= 0 && y < h && xx >= 0 && xx < w { values.append(x[b, c, y, xx]) }
                                }
                            }
                            XCTAssertEqual(avg[b, c, oy, ox], values.reduce(0, +) / Float(values.count), accuracy: 1e-5)
                            XCTAssertEqual(mx[b, c, oy, ox], values.max()!)
                        }
                    }
                }
            }
        }
    }

    func testBilinearUpsamplingMatchesHalfPixelConvention() {
        // torch.nn.functional.interpolate([[1, 2], [3, 4]], size=4, mode="bilinear", align_corners=False)
        let x = Tensor(shape: [1, 1, 2, 2], storage: [1, 2, 3, 4])
        let y = upsampleBilinear(x, height: 4, width: 4)
        let expected: [Float] = [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]
        XCTAssertEqual(y.storage, expected)
        // Upsampling a constant keeps it constant; same size is the identity.
        var g = SeededGenerator(seed: 6)
        let r = Tensor(shape: [1, 2, 5, 3], storage: .random(30, using: &g))
        XCTAssertEqual(upsampleBilinear(r, height: 5, width: 3).storage, r.storage)
        XCTAssertTrue(
            upsampleBilinear(Tensor(shape: [1, 1, 3, 3], value: 2.5), height: 8, width: 7).storage.allSatisfy {
                $0 == 2.5
            })
    }

    /// Planar and channels-last upsampling, on sizes that take whole vectors and tails (the
    /// maps' 32 -> 128, 37 channels), equal to the half-pixel formula applied pixel by pixel.
    func testBilinearUpsamplingMatchesTheFormulaPixelByPixel() {
        var g = SeededGenerator(seed: 7)
        for (h, w, oh, ow, c) in [(5, 7, 37, 29, 1), (32, 32, 128, 128, 2), (4, 3, 8, 6, 37)] {
            let x = Tensor(shape: [1, c, h, w], storage: .random(c * h * w, using: &g))
            func source(_ ch: Int, _ y: Int, _ x0: Int) -> Float { x.storage[(ch * h + y) * w + x0] }
            var expected = [Float](repeating: 0, count: c * oh * ow)
            for ch in 0..<c {
                for oy in 0..<oh {
                    // The half-pixel source coordinate, clamped at the borders.
                    let sy = max(0, (Float(oy) + 0.5) * (Float(h) / Float(oh)) - 0.5)
                    let y0 = min(h - 1, Int(sy)), y1 = min(h - 1, y0 + 1), fy = sy - Float(y0)
                    for ox in 0..<ow {
                        let sx = max(0, (Float(ox) + 0.5) * (Float(w) / Float(ow)) - 0.5)
                        let x0 = min(w - 1, Int(sx)), x1 = min(w - 1, x0 + 1), fx = sx - Float(x0)
                        let top = source(ch, y0, x0) * (1 - fx) + source(ch, y0, x1) * fx
                        let bottom = source(ch, y1, x0) * (1 - fx) + source(ch, y1, x1) * fx
                        expected[(ch * oh + oy) * ow + ox] = top * (1 - fy) + bottom * fy
                    }
                }
            }
            XCTAssertEqual(upsampleBilinear(x, height: oh, width: ow).storage, expected, "\(h)x\(w) -> \(oh)x\(ow)")
            let last = ChannelsLastBatch(x).upsampled(height: oh, width: ow)
            XCTAssertEqual(last.planar.storage, expected, "channels-last, \(c) channels")
        }
    }

    func testConcatenationAndElementwise() {
        let a = Tensor(shape: [2, 1, 1, 2], storage: [1, 2, 3, 4])
        let b = Tensor(shape: [2, 2, 1, 2], storage: [5, 6, 7, 8, 9, 10, 11, 12])
        XCTAssertEqual(concatChannels([a, b]).storage, [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12])
        XCTAssertEqual(concatChannels([a, b]).shape, [2, 3, 1, 2])
        let v = Tensor(shape: [4], storage: [-1, 0.5, 7, 3])
        XCTAssertEqual(activate(v, .relu6).storage, [0, 0.5, 6, 3])
        XCTAssertEqual(activate(v, .relu).storage, [0, 0.5, 7, 3])
    }
}

/// `packedQuadraticForm` (the positional Gaussian's Mahalanobis form) against the full double
/// sum in Double, on sizes below, at and between the vector widths and the four-row blocks.
final class QuadraticFormTests: XCTestCase {
    func testPackedQuadraticFormMatchesTheFullSum() {
        var g = SeededGenerator(seed: 21)
        for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 16, 17, 20, 21, 24, 25, 28, 33, 100, 152] {
            let packed = [Float].random(n * (n + 1) / 2, using: &g), x = [Float].random(n, using: &g)
            let expected = naiveQuadraticForm(n: n, packed: packed, x: x)
            let got = packed.withUnsafeBufferPointer { s in
                x.withUnsafeBufferPointer { xp in
                    var scratch = [Float](repeating: .nan, count: n)
                    return packedQuadraticForm(n: n, packed: s.baseAddress!, x: xp.baseAddress!, scratch: &scratch)
                }
            }
            XCTAssertEqual(Double(got), expected, accuracy: 1e-4 * max(1, abs(expected)), "n = \(n)")
        }
    }
}

/// `orderStatistic` and `median` against sorting, with ties (ReLU6 features are often exactly 0 or 6),
/// sorted and reversed input, and sizes around the insertion-sort cut.
final class OrderStatisticTests: XCTestCase {
    func testEveryOrderStatisticMatchesSorting() {
        var g = SeededGenerator(seed: 22)
        var cases: [[Float]] = [[3], [2, 1], (0..<40).map(Float.init), (0..<40).reversed().map(Float.init)]
        for n in [15, 16, 17, 100, 1024] {
            cases.append(.random(n, using: &g))
            cases.append([Float].random(n, using: &g).map { min(max($0 * 8, 0), 6).rounded() })
        }
        for values in cases {
            let sorted = values.sorted()
            for k in values.indices {
                let got = values.withUnsafeBufferPointer { orderStatistic($0, k) }
                XCTAssertEqual(got, sorted[k], "k = \(k) of \(values.count)")
            }
            let n = values.count
            let middle = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
            XCTAssertEqual(values.withUnsafeBufferPointer { median($0) }, middle, "median of \(n)")
        }
    }

    /// `median` of many values (a shift feature's channel holds 1,024 or more) against sorting:
    /// random, ReLU6-like ties, few distinct values, sorted, reversed, constant, and arrays
    /// with extremes planted at regular places.
    func testMedianOfManyValuesMatchesSorting() {
        var g = SeededGenerator(seed: 23)
        var cases: [[Float]] = []
        for n in [256, 257, 1000, 1024, 4099] {
            cases.append(.random(n, using: &g))
            cases.append([Float].random(n, using: &g).map { min(max($0 * 8, 0), 6).rounded() })
            cases.append((0..<n).map { Float($0 % 3) })
            cases.append((0..<n).map(Float.init))
            cases.append((0..<n).reversed().map(Float.init))
            cases.append([Float](repeating: 2.5, count: n))
            var low = [Float].random(n, using: &g), high = low
            for i in 0..<64 {
                low[i * n / 64] = -1000 - Float(i)
                high[i * n / 64] = 1000 + Float(i)
            }
            cases += [low, high]
        }
        for values in cases {
            let sorted = values.sorted(), n = values.count
            let middle = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
            XCTAssertEqual(values.withUnsafeBufferPointer { median($0) }, middle, "median of \(n)")
        }
    }
}

/// The start-up CPU check knows what the Swift kernels were compiled for (the Makefile passes
/// the choice to both compilers), and this CPU, which runs them, passes it.
final class BuildInstructionsTests: XCTestCase {
    func testTheCheckAgreesWithTheSwiftBuild() {
        #if ANOMAP_AVX512
            XCTAssertEqual(BuildInstructions.name, "avx512")
        #else
            XCTAssertNotEqual(BuildInstructions.name, "avx512")
        #endif
        XCTAssertTrue(BuildInstructions.runHere)
    }
}
