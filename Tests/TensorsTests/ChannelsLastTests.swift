import NeuralNet
import Tensors
import XCTest

/// The channels-last inference kernels against `naiveConv2d` (nested loops in Double, NCHW).
final class ChannelsLastTests: XCTestCase {
    override func tearDown() { setComputeThreads(2) }

    func randomTensor(_ shape: [Int], _ g: inout SeededGenerator) -> Tensor {
        Tensor(shape: shape, storage: .random(shape.reduce(1, *), using: &g))
    }

    func assertClose(_ a: Tensor, _ b: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
        guard a.shape == b.shape else { return }
        let worst = zip(a.storage, b.storage).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThan(worst, 2e-5, message, file: file, line: line)
    }

    /// Dense k x k convolutions (1x1 included) through patches and the packed product, with
    /// channel counts on and off the 8/16-lane blocks, pixel counts below and above a tile.
    func testPackedProductMatchesNaiveConvolution() {
        var g = SeededGenerator(seed: 11)
        for (cin, cout, k, s, h, w, act) in [
            (16, 24, 1, 1, 3, 5, Activation.relu6), (40, 40, 1, 1, 1, 1, .none), (3, 32, 3, 2, 9, 14, .relu6),
            (7, 19, 3, 1, 6, 7, .relu), (24, 144, 1, 1, 4, 4, .relu6), (5, 3, 5, 2, 11, 8, .none),
            // Wide rows (8-pixel tiles and a shifted last one), a 16-channel rest after full panels,
            // a long reduction, a 24-channel product (16 + 8 lanes in one pass) over many pixels.
            (112, 80, 1, 1, 2, 29, .none), (1152, 112, 1, 1, 2, 13, .relu6), (96, 24, 1, 1, 3, 21, .none),
        ] {
            let x = randomTensor([1, cin, h, w], &g), weight = randomTensor([cout, cin, k, k], &g)
            let bias = [Float].random(cout, using: &g)
            let geo = ConvGeometry.same(inChannels: cin, outChannels: cout, kernel: k, stride: s, height: h, width: w)
            let expected = naiveConv2d(x, weight: weight, bias: bias, geometry: geo, activation: act)
            let (oh, ow) = geo.outputSize(height: h, width: w)
            let packed = PackedConvolution(weight: weight, bias: bias, depthwise: false, activation: act)
            let input = channelsLast(x)
            var out = [Float](repeating: .nan, count: oh * ow * cout)
            var patches = [Float](repeating: 0, count: ow * k * k * cin)
            input.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBufferPointer { yp in
                    patches.withUnsafeMutableBufferPointer { pp in
                        for y in 0..<oh {
                            gatherPatches(
                                xp.baseAddress!, height: h, width: w, channels: cin, kernel: k, stride: s,
                                padTop: geo.padding.top, padLeft: geo.padding.left, outputRow: y, outWidth: ow,
                                into: pp.baseAddress!)
                            packedProduct(
                                pp.baseAddress!, ldx: k * k * cin, pixels: ow, weights: packed,
                                into: yp.baseAddress! + y * ow * cout, ldy: cout)
                        }
                    }
                }
            }
            let got = channelsFirst(out, batch: 1, height: oh, width: ow, channels: cout)
            assertClose(got, expected, "dense \(cin)->\(cout) k\(k) s\(s) \(h)x\(w)")
        }
    }

    /// `denseRow` (a dense convolution read in place from zero-padded channels-last rows, the
    /// stem's path) against the naive convolution, and bit for bit against the patches and the
    /// packed product it replaces; rows narrower than a tile, channels past the full panels.
    func testDenseRowMatchesNaiveConvolutionAndThePatchProduct() {
        var g = SeededGenerator(seed: 16)
        for (cin, cout, k, s, h, w) in [
            (3, 32, 3, 2, 9, 14), (3, 32, 3, 2, 7, 5), (3, 40, 3, 2, 12, 31), (4, 19, 5, 1, 6, 7), (3, 64, 3, 1, 3, 2),
            // The students' and the autoencoder's layers: a 16-channel output (one vector, whole
            // rows and a shifted last tile summed over three kernel rows), 16 + 8 lanes, a full
            // panel with a vector rest, odd widths.
            (3, 16, 3, 2, 10, 29), (16, 32, 3, 1, 5, 13), (32, 24, 3, 2, 9, 19), (8, 27, 3, 1, 4, 11),
            (64, 96, 3, 1, 3, 17),
        ] {
            let x = randomTensor([1, cin, h, w], &g), weight = randomTensor([cout, cin, k, k], &g)
            let bias = [Float].random(cout, using: &g)
            let geo = ConvGeometry.same(inChannels: cin, outChannels: cout, kernel: k, stride: s, height: h, width: w)
            let expected = naiveConv2d(x, weight: weight, bias: bias, geometry: geo, activation: .relu6)
            let (oh, ow) = geo.outputSize(height: h, width: w)
            let packed = PackedConvolution(weight: weight, bias: bias, depthwise: false, activation: .relu6)
            let line = (geo.padding.left + w + geo.padding.right) * cin
            let input = channelsLast(x)
            var padded = [Float](repeating: 0, count: (h + 1) * line)
            for y in 0..<h {
                for i in 0..<(w * cin) { padded[y * line + geo.padding.left * cin + i] = input[y * w * cin + i] }
            }
            var out = [Float](repeating: .nan, count: oh * ow * cout)
            var viaPatches = [Float](repeating: .nan, count: oh * ow * cout)
            var patches = [Float](repeating: 0, count: ow * k * k * cin)
            padded.withUnsafeBufferPointer { xp in
                let base = xp.baseAddress!
                for y in 0..<oh {
                    let taps = (0..<k).map { i -> UnsafePointer<Float> in
                        let iy = y * s + i - geo.padding.top
                        return base + (iy >= 0 && iy < h ? iy : h) * line
                    }
                    out.withUnsafeMutableBufferPointer {
                        denseRow(
                            taps, channels: cin, stride: s, outWidth: ow, weights: packed,
                            into: $0.baseAddress! + y * ow * cout)
                    }
                    input.withUnsafeBufferPointer { ip in
                        patches.withUnsafeMutableBufferPointer { pp in
                            gatherPatches(
                                ip.baseAddress!, height: h, width: w, channels: cin, kernel: k, stride: s,
                                padTop: geo.padding.top, padLeft: geo.padding.left, outputRow: y, outWidth: ow,
                                into: pp.baseAddress!)
                            viaPatches.withUnsafeMutableBufferPointer {
                                packedProduct(
                                    pp.baseAddress!, ldx: k * k * cin, pixels: ow, weights: packed,
                                    into: $0.baseAddress! + y * ow * cout, ldy: cout)
                            }
                        }
                    }
                }
            }
            let got = channelsFirst(out, batch: 1, height: oh, width: ow, channels: cout)
            assertClose(got, expected, "dense row \(cin)->\(cout) k\(k) s\(s) \(h)x\(w)")
            XCTAssertEqual(out, viaPatches, "dense row \(cin)->\(cout) k\(k) s\(s) \(h)x\(w) vs patches")
        }
    }

    /// `Linear.forward` (one dot product per output, split by output blocks) against the
    /// definition in Double; the bytes do not depend on the thread count.
    func testLinearMatchesNaiveDotProducts() {
        var g = SeededGenerator(seed: 17)
        for (n, inputs, outputs) in [(1, 1280, 1000), (3, 37, 70), (2, 200, 129)] {
            let x = randomTensor([n, inputs], &g), weight = randomTensor([outputs, inputs], &g)
            let bias = [Float].random(outputs, using: &g)
            var results = [Tensor]()
            for threads in [1, 2, 3] {
                setComputeThreads(threads)
                let y = Linear(weight: weight, bias: bias).forward(x)
                XCTAssertEqual(y.shape, [n, outputs])
                for b in 0..<n {
                    for o in 0..<outputs {
                        var acc = Double(bias[o])
                        for c in 0..<inputs { acc += Double(x[b, c]) * Double(weight[o, c]) }
                        XCTAssertEqual(
                            Double(y[b, o]), acc, accuracy: 1e-5 * max(1, abs(acc)), "\(n)x\(inputs)->\(outputs)")
                    }
                }
                results.append(y)
            }
            XCTAssertEqual(results[0], results[1], "1 and 2 threads differ")
            XCTAssertEqual(results[0], results[2], "1 and 3 threads differ")
        }
    }

    /// The product written in rows with gaps (an expansion straight into padded rows): each
    /// pixel's outputs against a Double loop, activation included, and the gaps untouched.
    /// Rows narrower than a tile (a tile spans several rows), a tile crossing one row's end, every
    /// output kernel (pairs, a 16- or 8-lane rest, 16 + 8 lanes, single channels) and a reduction
    /// of several blocks (the weights fetched ahead).
    func testPackedProductWritesRowsAcrossGaps() {
        var g = SeededGenerator(seed: 16)
        for (cin, cout, rowPixels, rows, gap, act) in [
            (16, 96, 8, 4, 64, Activation.relu6), (9, 80, 3, 5, 7, .relu), (12, 24, 7, 3, 48, .none),
            (5, 19, 13, 2, 1, .relu6), (600, 72, 8, 3, 32, .relu6), (40, 40, 1, 6, 40, .none),
        ] {
            let pixels = rowPixels * rows - (rows > 2 ? 1 : 0)  // a last row short of full, sometimes
            let x = [Float].random(pixels * cin, using: &g)
            let weight = randomTensor([cout, cin, 1, 1], &g), bias = [Float].random(cout, using: &g)
            let packed = PackedConvolution(weight: weight, bias: bias, depthwise: false, activation: act)
            let line = rowPixels * cout + gap
            var y = [Float](repeating: .nan, count: rows * line)
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    packedProduct(
                        xp.baseAddress!, ldx: cin, pixels: pixels, weights: packed, into: yp.baseAddress!, ldy: cout,
                        gaps: OutputGaps(pixels: rowPixels, floats: gap))
                }
            }
            var written = Set<Int>()
            for p in 0..<pixels {
                for o in 0..<cout {
                    var acc = Double(bias[o])
                    for c in 0..<cin { acc += Double(x[p * cin + c]) * Double(weight[o, c, 0, 0]) }
                    switch act {
                    case .relu6: acc = min(max(acc, 0), 6)
                    case .relu: acc = max(acc, 0)
                    default: break
                    }
                    let at = p / rowPixels * line + p % rowPixels * cout + o
                    written.insert(at)
                    XCTAssertEqual(
                        Double(y[at]), acc, accuracy: 1e-4, "\(cin)->\(cout) rows of \(rowPixels), pixel \(p)")
                }
            }
            for i in y.indices where !written.contains(i) {
                XCTAssert(y[i].isNaN, "\(cin)->\(cout) rows of \(rowPixels): gap float \(i) written")
            }
        }
    }

    /// A residual added to the packed product lands on the right pixels and channels.
    func testPackedProductAddsTheResidual() {
        var g = SeededGenerator(seed: 12)
        let pixels = 13, cin = 9, cout = 24
        let x = [Float].random(pixels * cin, using: &g), r = [Float].random(pixels * cout, using: &g)
        let weight = randomTensor([cout, cin, 1, 1], &g)
        let packed = PackedConvolution(weight: weight, bias: [], depthwise: false, activation: .none)
        var y = [Float](repeating: 0, count: pixels * cout)
        x.withUnsafeBufferPointer { xp in
            r.withUnsafeBufferPointer { rp in
                y.withUnsafeMutableBufferPointer { yp in
                    packedProduct(
                        xp.baseAddress!, ldx: cin, pixels: pixels, weights: packed, into: yp.baseAddress!, ldy: cout,
                        residual: rp.baseAddress!, ldr: cout)
                }
            }
        }
        for p in 0..<pixels {
            for o in 0..<cout {
                var acc = Double(r[p * cout + o])
                for c in 0..<cin { acc += Double(x[p * cin + c]) * Double(weight[o, c, 0, 0]) }
                XCTAssertEqual(Double(y[p * cout + o]), acc, accuracy: 1e-5)
            }
        }
    }

    /// `channelsLast` against its definition, element by element, for 1-5 channels (three take
    /// their own interleaving loop) on a batch of two.
    func testChannelsLastReordersEveryElement() {
        var g = SeededGenerator(seed: 15)
        for c in 1...5 {
            let (n, h, w) = (2, 3, 7), hw = 3 * 7
            let t = randomTensor([n, c, h, w], &g)
            let out = channelsLast(t)
            XCTAssertEqual(out.count, t.count)
            for b in 0..<n {
                for ch in 0..<c {
                    for p in 0..<hw {
                        XCTAssertEqual(out[(b * hw + p) * c + ch], t.storage[(b * c + ch) * hw + p], "c \(c)")
                    }
                }
            }
        }
    }

    /// Depthwise 3x3 and 5x5, stride 1 and 2, 'SAME' padding on odd and even sizes, rows and
    /// columns narrower than the kernel, channel counts on and off the lane blocks; one or
    /// several output rows a call.
    func testDepthwiseRowMatchesNaiveConvolution() {
        var g = SeededGenerator(seed: 13)
        for (c, k, s, h, w) in [
            (32, 3, 1, 9, 13), (96, 3, 2, 8, 10), (144, 5, 2, 7, 9), (240, 5, 1, 6, 12), (8, 5, 1, 3, 2),
            (20, 3, 2, 5, 1),
            // Stride 1 in two full tiles and a tail, with 16 + 8 channels (registers per row).
            (24, 3, 1, 4, 17), (40, 5, 1, 5, 16),
        ] {
            let x = randomTensor([1, c, h, w], &g), weight = randomTensor([c, 1, k, k], &g)
            let bias = [Float].random(c, using: &g)
            let geo = ConvGeometry.same(
                inChannels: c, outChannels: c, kernel: k, stride: s, height: h, width: w, groups: c)
            let expected = naiveConv2d(x, weight: weight, bias: bias, geometry: geo, activation: .relu6)
            let (oh, ow) = geo.outputSize(height: h, width: w)
            let packed = PackedConvolution(weight: weight, bias: bias, depthwise: true, activation: .relu6)
            // Zero-padded rows, as the kernel expects them: padding columns on both sides, and one
            // zero row for the rows above and below the image.
            let line = (geo.padding.left + w + geo.padding.right) * c
            let input = channelsLast(x)
            var padded = [Float](repeating: 0, count: (h + 1) * line)
            for y in 0..<h {
                for i in 0..<(w * c) { padded[y * line + geo.padding.left * c + i] = input[y * w * c + i] }
            }
            // One row a call, two, and all rows in one call (each channel vector down the rows).
            for perCall in [1, 2, oh] {
                var out = [Float](repeating: .nan, count: oh * ow * c)
                padded.withUnsafeBufferPointer { xp in
                    let base = xp.baseAddress!
                    out.withUnsafeMutableBufferPointer { yp in
                        for y0 in stride(from: 0, to: oh, by: perCall) {
                            let count = min(perCall, oh - y0)
                            let taps = (y0..<(y0 + count)).flatMap { y in
                                (0..<k).map { i -> UnsafePointer<Float> in
                                    let iy = y * s + i - geo.padding.top
                                    return base + (iy >= 0 && iy < h ? iy : h) * line
                                }
                            }
                            depthwiseRows(
                                taps, count: count, stride: s, outWidth: ow, weights: packed,
                                into: yp.baseAddress! + y0 * ow * c)
                        }
                    }
                }
                let got = channelsFirst(out, batch: 1, height: oh, width: ow, channels: c)
                assertClose(got, expected, "depthwise c\(c) k\(k) s\(s) \(h)x\(w), \(perCall) rows a call")
            }
        }
    }

    /// The fused block against the three naive convolutions and the residual, on a batch; the
    /// bytes are the same with 1 and 2 threads (the rows split differently).
    func testInvertedResidualMatchesNaiveLayers() {
        var g = SeededGenerator(seed: 14)
        for (cin, e, cout, k, s, h, w, n) in [
            (24, 6, 24, 3, 1, 10, 9, 1), (24, 6, 40, 5, 2, 11, 12, 2), (32, 1, 16, 3, 1, 8, 8, 1),
            (40, 6, 40, 5, 1, 7, 5, 3),
            // Maps whose rows take several chunks of about 128 pixels in the two-phase forward.
            (24, 6, 24, 3, 1, 24, 20, 1), (16, 6, 24, 5, 2, 30, 26, 2),
        ] {
            let mid = cin * e
            let expand =
                e == 1
                ? nil
                : Conv2d(
                    weight: randomTensor([mid, cin, 1, 1], &g), bias: .random(mid, using: &g), padding: .same,
                    activation: .relu6)
            let depthwise = Conv2d(
                weight: randomTensor([mid, 1, k, k], &g), bias: .random(mid, using: &g), stride: s, padding: .same,
                groups: mid, activation: .relu6)
            let project = Conv2d(
                weight: randomTensor([cout, mid, 1, 1], &g), bias: .random(cout, using: &g), padding: .same)
            let residual = s == 1 && cin == cout
            let x = randomTensor([n, cin, h, w], &g)
            func naive(_ layer: Conv2d, _ t: Tensor) -> Tensor {
                naiveConv2d(
                    t, weight: layer.weight, bias: layer.bias,
                    geometry: layer.geometry(height: t.height, width: t.width),
                    activation: layer.activation)
            }
            var expected = naive(project, naive(depthwise, expand.map { naive($0, x) } ?? x))
            if residual { for i in expected.storage.indices { expected.storage[i] += x.storage[i] } }
            let block = InvertedResidual(expand: expand, depthwise: depthwise, project: project, residual: residual)
            let (oh, ow) = block.geometry(height: h, width: w).outputSize(height: h, width: w)
            var bytes = [[Float]]()
            for threads in [1, 2] {
                setComputeThreads(threads)
                let out = channelsLastLayer(
                    channelsLast(x), batch: n, inputPerImage: h * w * cin, outputRows: oh, outputPerRow: ow * cout
                ) { _, xp, rows, yp in block.forward(xp, height: h, width: w, rows: rows, into: yp) }
                let got = channelsFirst(out, batch: n, height: oh, width: ow, channels: cout)
                assertClose(got, expected, "block \(cin)x\(e)->\(cout) k\(k) s\(s) \(h)x\(w) threads \(threads)")
                bytes.append(out)
            }
            XCTAssertEqual(bytes[0], bytes[1], "1 and 2 threads differ")
            // The two-phase forward (whole expansion first, as small maps run) gives the same bytes.
            guard expand != nil else { continue }
            let input = channelsLast(x)
            // Split across 1 and 2 threads: the same bytes.
            let expanded = input.withUnsafeBufferPointer {
                block.expandAll($0.baseAddress!, images: n, height: h, width: w, threads: 1)!
            }
            let split = input.withUnsafeBufferPointer {
                block.expandAll($0.baseAddress!, images: n, height: h, width: w, threads: 2)!
            }
            XCTAssertEqual(split.padded, expanded.padded, "expansion split between threads")
            // The expansion alone (the product written into padded rows) against the naive
            // layer, and its padding columns and zero row: zeros.
            assertClose(
                channelsFirst(expanded.unpadded, batch: n, height: h, width: w, channels: mid),
                naive(expand!, x), "expansion \(cin)x\(e) \(h)x\(w)")
            let padding = block.geometry(height: h, width: w).padding
            for (index, value) in expanded.padded.enumerated() {
                let row = index / expanded.line, column = index % expanded.line / mid
                guard row == n * h || column < padding.left || column >= padding.left + w else { continue }
                XCTAssertEqual(value, 0, "padding at row \(row), column \(column)")
            }
            let twoPhase = channelsLastLayer(
                input, batch: n, inputPerImage: h * w * cin, outputRows: oh, outputPerRow: ow * cout
            ) { image, xp, rows, yp in
                block.forward(xp, height: h, width: w, rows: rows, into: yp, expanded: split, image: image)
            }
            XCTAssertEqual(twoPhase, bytes[0], "two-phase forward differs")
        }
    }
}

/// The channels-last `ConvStack.forward` (students, autoencoder) against the naive layers.
final class ConvStackInferenceTests: XCTestCase {
    override func tearDown() { setComputeThreads(2) }

    func testForwardMatchesNaiveLayersOnEveryLayerKind() {
        var g = SeededGenerator(seed: 15)
        // A strided first layer on planar input, a leaky one, an upsampled one, a 1x1 without
        // ReLU, odd sizes.
        let specs = [
            LayerSpec(outChannels: 12, kernel: 3, stride: 2),
            LayerSpec(outChannels: 20, kernel: 3, activation: .leakyRelu),
            LayerSpec(outChannels: 16, kernel: 3, upsample: 2), LayerSpec(outChannels: 9, kernel: 1, relu: false),
        ]
        let stack = ConvStack(inChannels: 3, specs: specs, generator: &g)
        let x = Tensor(shape: [2, 3, 13, 10], storage: .random(2 * 3 * 13 * 10, using: &g))
        var expected = x
        for (i, spec) in specs.enumerated() {
            if spec.upsample > 1 {
                expected = upsampleBilinear(
                    expected, height: expected.height * spec.upsample, width: expected.width * spec.upsample)
            }
            let geo = ConvGeometry.symmetric(
                inChannels: expected.channels, outChannels: spec.outChannels, kernel: spec.kernel, stride: spec.stride,
                pad: spec.padding)
            expected = naiveConv2d(
                expected, weight: stack.weights[i], bias: stack.biases[i], geometry: geo,
                activation: spec.activation)
        }
        var outputs = [Tensor]()
        for threads in [1, 2] {
            setComputeThreads(threads)
            let y = stack.forward(x)
            XCTAssertEqual(y.shape, expected.shape)
            let worst = zip(y.storage, expected.storage).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 1
            XCTAssertLessThan(worst, 2e-5, "threads \(threads)")
            outputs.append(y)
        }
        XCTAssertEqual(outputs[0], outputs[1], "1 and 2 threads differ")
        XCTAssertEqual(stack.forward(x, singleThreaded: true), outputs[1])
    }
}
