import Foundation
import NeuralNet
import Tensors
import XCTest

/// Every backward pass against central finite differences of its own forward pass (in
/// Double where it matters), plus adjoint identities for the linear resamplers.
final class GradientTests: XCTestCase {
    /// Random values in -1...1.
    func noise(_ count: Int, _ g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 }
    }

    /// L(y) = sum r_i y_i in Double: a loss whose gradient wrt y is exactly r.
    func projected(_ y: Tensor, _ r: [Float]) -> Double {
        zip(y.storage, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
    }

    /// Checks `analytic` against (f(x + e) - f(x - e)) / 2e at `probes` coordinates of `values`.
    func checkGradient(
        _ name: String, values: inout [Float], analytic: [Float], probes: [Int], epsilon: Float = 1e-2,
        tolerance: Double = 2e-2, file: StaticString = #filePath, line: UInt = #line,
        loss: ([Float]) -> Double
    ) {
        let scale = max(analytic.map { Double(abs($0)) }.max() ?? 0, 1e-3)
        for i in probes {
            let saved = values[i]
            values[i] = saved + epsilon
            let up = loss(values)
            values[i] = saved - epsilon
            let down = loss(values)
            values[i] = saved
            let numeric = (up - down) / (2 * Double(epsilon))
            XCTAssertEqual(
                numeric, Double(analytic[i]), accuracy: tolerance * scale,
                "\(name)[\(i)]: numeric \(numeric) analytic \(analytic[i])", file: file, line: line)
        }
    }

    func probes(_ count: Int, _ n: Int, _ g: inout SeededGenerator) -> [Int] {
        (0..<n).map { _ in Int(g.next() % UInt64(count)) }
    }

    func testConvolutionForwardMatchesNaiveAndBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 11)
        let geometry = ConvGeometry.symmetric(inChannels: 3, outChannels: 4, kernel: 3, stride: 2, pad: 1)
        var x = Tensor(shape: [1, 3, 9, 8], storage: noise(216, &g))
        var weight = Tensor(shape: geometry.weightShape, storage: noise(108, &g))
        var bias = noise(4, &g)
        var columns = [Float]()
        let y = convolutionForward(x, weight: weight, bias: bias, geometry: geometry, columns: &columns)
        XCTAssertLessThan(y.maxAbsDifference(naiveConv2d(x, weight: weight, bias: bias, geometry: geometry)), 1e-5)
        let r = noise(y.count, &g)
        var dW = [Float](repeating: 0, count: weight.count), dB = [Float](repeating: 0, count: 4)
        let dy = Tensor(shape: y.shape, storage: r)
        guard
            let dx = convolutionBackward(
                dy, weight: weight, geometry: geometry, columns: columns, inputShape: x.shape,
                weightGradient: &dW, biasGradient: &dB, needsInputGradient: true)
        else {
            return XCTFail("no input gradient")
        }
        // The loss is linear in each argument, so finite differences are exact up to rounding.
        func loss(_ x: Tensor, _ w: Tensor, _ b: [Float]) -> Double {
            projected(naiveConv2d(x, weight: w, bias: b, geometry: geometry), r)
        }
        checkGradient("dx", values: &x.storage, analytic: dx.storage, probes: Array(0..<x.count)) { v in
            loss(Tensor(shape: x.shape, storage: v), weight, bias)
        }
        checkGradient("dW", values: &weight.storage, analytic: dW, probes: Array(0..<weight.count)) { v in
            loss(x, Tensor(shape: weight.shape, storage: v), bias)
        }
        checkGradient("db", values: &bias, analytic: dB, probes: Array(0..<4)) { v in loss(x, weight, v) }
    }

    func testDepthwiseForwardMatchesNaiveAndItsInputGradientMatchesFiniteDifferences() {
        // 'SAME' geometries of Lite0's depthwise layers: 3x3 and 5x5, stride 1 and 2, odd sizes
        // (asymmetric padding).
        var g = SeededGenerator(seed: 23)
        for (kernel, stride) in [(3, 1), (3, 2), (5, 2), (5, 1)] {
            let (c, h, w) = (3, 9, 8)
            let geometry = ConvGeometry.same(
                inChannels: c, outChannels: c, kernel: kernel, stride: stride, height: h, width: w, groups: c)
            var x = Tensor(shape: [1, c, h, w], storage: noise(c * h * w, &g))
            let weight = Tensor(shape: geometry.weightShape, storage: noise(c * kernel * kernel, &g))
            let bias = noise(c, &g)
            let y = depthwiseForward(x, weight: weight, bias: bias, geometry: geometry)
            let naive = naiveConv2d(x, weight: weight, bias: bias, geometry: geometry)
            XCTAssertEqual(y.shape, naive.shape)
            XCTAssertLessThan(y.maxAbsDifference(naive), 1e-5, "forward, kernel \(kernel) stride \(stride)")
            let r = noise(y.count, &g)
            let dx = depthwiseInputGradient(
                Tensor(shape: y.shape, storage: r), weight: weight, geometry: geometry, inputShape: x.shape)
            checkGradient(
                "dx, kernel \(kernel) stride \(stride)", values: &x.storage, analytic: dx.storage,
                probes: Array(0..<x.count)
            ) { v in
                projected(
                    naiveConv2d(Tensor(shape: x.shape, storage: v), weight: weight, bias: bias, geometry: geometry), r)
            }
        }
    }

    func testResamplersAreAdjointOfTheirBackward() {
        // <A x, y> = <x, A^T y> for the linear maps im2col and bilinear upsampling.
        var g = SeededGenerator(seed: 5)
        let geometry = ConvGeometry(inChannels: 2, outChannels: 1, kernel: 3, stride: 2, padding: (1, 0, 2, 1))
        let x = noise(2 * 7 * 6, &g)
        let (oh, ow) = geometry.outputSize(height: 7, width: 6)
        var columns = [Float](repeating: 0, count: 18 * oh * ow)
        im2col(x, channels: 2, height: 7, width: 6, geometry: geometry, columns: &columns)
        let y = noise(columns.count, &g)
        var back = [Float](repeating: 0, count: x.count)
        col2im(y, channels: 2, height: 7, width: 6, geometry: geometry, input: &back)
        let lhs = zip(columns, y).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        let rhs = zip(x, back).reduce(0.0) { $0 + Double($1.0 * $1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4)

        let small = Tensor(shape: [1, 2, 5, 4], storage: noise(40, &g))
        let up = upsampleBilinear(small, height: 10, width: 9)
        let dy = Tensor(shape: up.shape, storage: noise(up.count, &g))
        let dx = upsampleBilinearBackward(dy, height: 5, width: 4)
        XCTAssertEqual(projected(up, dy.storage), projected(small, dx.storage), accuracy: 1e-4)
    }

    func testConvStackBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 3)
        let specs = [
            LayerSpec(outChannels: 4, kernel: 3, stride: 2), LayerSpec(outChannels: 5, kernel: 3, upsample: 2),
            LayerSpec(outChannels: 4, kernel: 1, activation: .leakyRelu),
            LayerSpec(outChannels: 3, kernel: 1, relu: false),
        ]
        var stack = ConvStack(inChannels: 2, specs: specs, generator: &g)
        for i in stack.biases.indices { stack.biases[i] = noise(stack.biases[i].count, &g).map { $0 * 0.1 } }
        var x = Tensor(shape: [1, 2, 8, 6], storage: noise(96, &g))
        let (y, tape) = stack.trainingForward(x)
        XCTAssertEqual(y.shape, [1, 3, 8, 6])
        XCTAssertLessThan(y.maxAbsDifference(stack.forward(x)), 1e-5, "training and inference forward agree")
        let target = Tensor(shape: y.shape, storage: noise(y.count, &g))
        let (_, dy) = meanSquaredError(y, target)
        var gradients = ConvStack.Gradients(for: stack)
        guard let dx = stack.backward(dy, tape: tape, gradients: &gradients, needsInputGradient: true) else {
            return XCTFail("no input gradient")
        }
        func loss(_ s: ConvStack, _ x: Tensor) -> Double {
            let out = s.forward(x)
            var total = 0.0
            for i in 0..<out.count { let d = Double(out.storage[i]) - Double(target.storage[i]); total += d * d }
            return total / Double(out.count)
        }
        // Steps of 1e-4: at 1e-3 a probe of this seed crosses a (leaky) ReLU's kink, where the
        // central difference averages the two slopes.
        checkGradient("dx", values: &x.storage, analytic: dx.storage, probes: probes(x.count, 24, &g), epsilon: 1e-4) {
            v in
            loss(stack, Tensor(shape: x.shape, storage: v))
        }
        for layer in specs.indices {
            var w = stack.weights[layer].storage
            checkGradient(
                "dW\(layer)", values: &w, analytic: gradients.weights[layer], probes: probes(w.count, 16, &g),
                epsilon: 1e-4
            ) { v in
                var s = stack
                s.weights[layer].storage = v
                return loss(s, x)
            }
            var b = stack.biases[layer]
            checkGradient(
                "db\(layer)", values: &b, analytic: gradients.biases[layer], probes: Array(b.indices),
                epsilon: 1e-4
            ) { v in
                var s = stack
                s.biases[layer] = v
                return loss(s, x)
            }
        }
    }

    func testLinearBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 12)
        var weight = Tensor(shape: [5, 4], storage: noise(20, &g))
        var bias = noise(5, &g)
        var x = Tensor(shape: [3, 4], storage: noise(12, &g))
        let r = noise(15, &g)
        func loss(_ w: Tensor, _ b: [Float], _ x: Tensor) -> Double {
            projected(Linear(weight: w, bias: b).forward(x), r)
        }
        let grads = Linear(weight: weight, bias: bias).backward(
            input: x, outputGradient: Tensor(shape: [3, 5], storage: r))
        checkGradient(
            "dweight", values: &weight.storage, analytic: grads.weight.storage, probes: Array(0..<20),
            epsilon: 1e-2, tolerance: 1e-3
        ) { v in loss(Tensor(shape: [5, 4], storage: v), bias, x) }
        checkGradient(
            "dbias", values: &bias, analytic: grads.bias, probes: Array(0..<5), epsilon: 1e-2, tolerance: 1e-3
        ) { v in loss(weight, v, x) }
        checkGradient(
            "dinput", values: &x.storage, analytic: grads.input.storage, probes: Array(0..<12), epsilon: 1e-2,
            tolerance: 1e-3
        ) { v in loss(weight, bias, Tensor(shape: [3, 4], storage: v)) }
    }

    func testMemoryReadoutBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 9)
        let readout = MemoryReadout(temperature: 0.5, shrinkage: 0.5)
        var queries = Tensor(shape: [1, 4, 3, 2], storage: noise(24, &g))
        var memory = Tensor(shape: [5, 4], storage: noise(20, &g))
        let r = noise(24, &g)
        let entropyWeight: Float = 0.3
        func loss(_ q: Tensor, _ m: Tensor) -> Double {
            let (out, cache) = readout.forward(q, memory: m)
            return projected(out, r) + Double(entropyWeight * readout.entropy(cache))
        }
        let (out, cache) = readout.forward(queries, memory: memory)
        // Each output is a convex combination of memory items.
        let sums = (0..<6).map { q in (0..<5).reduce(Float(0)) { $0 + cache.addressing[$1 * 6 + q] } }
        for s in sums { XCTAssertEqual(s, 1, accuracy: 1e-5) }
        XCTAssertEqual(out.shape, queries.shape)
        var dMemory = [Float](repeating: 0, count: 20)
        let dq = readout.backward(
            Tensor(shape: out.shape, storage: r), memory: memory, cache: cache,
            entropyWeight: entropyWeight, memoryGradient: &dMemory)
        checkGradient(
            "dqueries", values: &queries.storage, analytic: dq.storage, probes: Array(0..<24), epsilon: 1e-3,
            tolerance: 1e-2
        ) { v in loss(Tensor(shape: queries.shape, storage: v), memory) }
        checkGradient(
            "dmemory", values: &memory.storage, analytic: dMemory, probes: Array(0..<20), epsilon: 1e-3,
            tolerance: 1e-2
        ) { v in loss(queries, Tensor(shape: memory.shape, storage: v)) }
    }

    func testBinaryCrossEntropyMatchesItsDefinitionAndFiniteDifferences() {
        var g = SeededGenerator(seed: 21)
        // Logits up to +-40: the stable softplus must not overflow where exp(z) would.
        var z = Tensor(shape: [1, 1, 3, 4], storage: noise(12, &g).map { $0 * 40 })
        let targets = noise(12, &g).map { ($0 + 1) / 2 }
        func loss(_ v: [Float]) -> Double {
            // -t log s(z) - (1 - t) log(1 - s(z)), in Double, as the definition reads.
            zip(v, targets).reduce(0.0) { sum, p in
                let (z, t) = (Double(p.0), Double(p.1))
                let logS = -Foundation.log1p(Foundation.exp(-z)), logNotS = -Foundation.log1p(Foundation.exp(z))
                return sum - t * logS - (1 - t) * logNotS
            } / Double(v.count)
        }
        let (value, gradient) = binaryCrossEntropy(logits: z, targets: targets)
        XCTAssertEqual(Double(value), loss(z.storage), accuracy: 1e-4)
        XCTAssertTrue(gradient.storage.allSatisfy(\.isFinite))
        checkGradient(
            "dz", values: &z.storage, analytic: gradient.storage, probes: Array(0..<12), epsilon: 1e-2, tolerance: 1e-3,
            loss: loss)
        let (constant, _) = binaryCrossEntropy(logits: z, target: 0.9)
        XCTAssertEqual(
            constant, binaryCrossEntropy(logits: z, targets: [Float](repeating: 0.9, count: 12)).loss, accuracy: 1e-7)
    }

    func testSpectralNormalizationDividesByTheLargestSingularValueAndBackwardMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 23)
        var stack = ConvStack(
            inChannels: 3, specs: [LayerSpec(outChannels: 4, kernel: 3, activation: .leakyRelu)], generator: &g)
        // sigma by power iteration on W W^T in Double, many steps from a fixed start: an oracle
        // apart from the code's own iteration.
        func sigma(_ w: [Float]) -> Double {
            let o = 4, k = w.count / o
            var u = [Double](repeating: 1, count: o)
            var value = 0.0
            for _ in 0..<500 {
                var v = [Double](repeating: 0, count: k)
                for r in 0..<o { for j in 0..<k { v[j] += Double(w[r * k + j]) * u[r] } }
                var next = [Double](repeating: 0, count: o)
                for r in 0..<o { for j in 0..<k { next[r] += Double(w[r * k + j]) * v[j] } }
                value = next.reduce(0) { $0 + $1 * $1 }.squareRoot()
                u = next.map { $0 / value }
            }
            return value.squareRoot()  // the largest eigenvalue of W W^T is sigma^2
        }
        var spectral = SpectralNormalization(for: stack, generator: &g)
        let (normalized, factors) = spectral.normalize(stack, iterations: 200)
        XCTAssertEqual(Double(factors.sigma[0]), sigma(stack.weights[0].storage), accuracy: 1e-4)
        XCTAssertEqual(sigma(normalized.weights[0].storage), 1, accuracy: 1e-4)
        // L(W) = <r, W / sigma(W)>: the gradient of the normalization alone.
        let r = noise(stack.weights[0].count, &g)
        var gradients = ConvStack.Gradients(for: stack)
        gradients.weights[0] = r
        SpectralNormalization.backward(&gradients, normalized: normalized, factors: factors)
        checkGradient(
            "dW", values: &stack.weights[0].storage, analytic: gradients.weights[0], probes: Array(0..<r.count),
            epsilon: 1e-3, tolerance: 1e-2
        ) { w in
            let s = sigma(w)
            return zip(w, r).reduce(0.0) { $0 + Double($1.0) / s * Double($1.1) }
        }
    }

    func testDiscriminatorLossThroughLeakyLayersMatchesFiniteDifferences() {
        // The adversarial model's pieces together: leaky ReLU layers, a per-cell logit, binary
        // cross-entropy against a label map; the input gradient is what the generator receives.
        var g = SeededGenerator(seed: 25)
        let specs = [
            LayerSpec(outChannels: 6, kernel: 1, activation: .leakyRelu),
            LayerSpec(outChannels: 6, kernel: 3, activation: .leakyRelu),
            LayerSpec(outChannels: 1, kernel: 1, relu: false),
        ]
        let stack = ConvStack(inChannels: 4, specs: specs, generator: &g)
        var x = Tensor(shape: [1, 4, 5, 6], storage: noise(120, &g))
        let labels = (0..<30).map { $0 % 3 == 0 ? Float(0) : 0.9 }
        func loss(_ s: ConvStack, _ x: Tensor) -> Double {
            let z = s.forward(x)
            return zip(z.storage, labels).reduce(0.0) { sum, p in
                let (z, t) = (Double(p.0), Double(p.1))
                return sum + Foundation.log1p(Foundation.exp(z)) - t * z
            } / Double(z.count)
        }
        let (z, tape) = stack.trainingForward(x)
        let (_, dz) = binaryCrossEntropy(logits: z, targets: labels)
        var gradients = ConvStack.Gradients(for: stack)
        guard let dx = stack.backward(dz, tape: tape, gradients: &gradients, needsInputGradient: true) else {
            return XCTFail("no input gradient")
        }
        checkGradient("dx", values: &x.storage, analytic: dx.storage, probes: Array(0..<120), epsilon: 1e-3) { v in
            loss(stack, Tensor(shape: x.shape, storage: v))
        }
        // The generator's path: dx alone, without the parameters' gradients.
        let inputOnly = stack.inputGradient(dz, tape: tape)
        checkGradient(
            "dx alone", values: &x.storage, analytic: inputOnly.storage, probes: Array(0..<120), epsilon: 1e-3
        ) { v in
            loss(stack, Tensor(shape: x.shape, storage: v))
        }
        for layer in specs.indices {
            var w = stack.weights[layer].storage
            checkGradient(
                "dW\(layer)", values: &w, analytic: gradients.weights[layer], probes: probes(w.count, 24, &g),
                epsilon: 1e-3
            ) { v in
                var s = stack
                s.weights[layer].storage = v
                return loss(s, x)
            }
        }
    }

    func testHardMeanSquaredErrorKeepsOnlyTheLargestErrors() {
        let prediction = Tensor(shape: [1, 1, 1, 4], storage: [0, 1, 3, -2])
        let target = Tensor(shape: [1, 1, 1, 4], storage: [0, 0, 0, 0])
        let (plain, g1) = meanSquaredError(prediction, target)
        XCTAssertEqual(plain, (0 + 1 + 9 + 4) / 4, accuracy: 1e-6)
        XCTAssertEqual(g1.storage, [0, 0.5, 1.5, -1])
        let (hard, g2) = meanSquaredError(prediction, target, hardShare: 0.5)
        XCTAssertEqual(hard, (9 + 4) / 2, accuracy: 1e-6)
        XCTAssertEqual(g2.storage, [0, 0, 3, -2])
    }

    func testAdamWFirstStepMovesEachWeightByTheLearningRate() {
        // With bias correction, Adam's first step is lr * g / (|g| + eps): the sign of g.
        var adam = AdamW(learningRate: 0.1, weightDecay: 0)
        var w: [Float] = [1, -2, 3]
        adam.beginStep()
        adam.update(0, value: &w, gradient: [4, -0.01, 0])
        XCTAssertEqual(w[0], 0.9, accuracy: 1e-5)
        XCTAssertEqual(w[1], -1.9, accuracy: 1e-4)
        XCTAssertEqual(w[2], 3, accuracy: 1e-6)
        // Decoupled decay shrinks a weight with zero gradient by lr * decay.
        var decayed = AdamW(learningRate: 0.1, weightDecay: 0.5)
        var v: [Float] = [2]
        decayed.beginStep()
        decayed.update(0, value: &v, gradient: [0])
        XCTAssertEqual(v[0], 2 - 0.1 * 0.5 * 2, accuracy: 1e-6)
        // It minimizes a quadratic.
        var q: [Float] = [5, -3]
        var opt = AdamW(learningRate: 0.05)
        for _ in 0..<2000 {
            opt.beginStep()
            opt.update(0, value: &q, gradient: q.map { 2 * $0 })
        }
        XCTAssertLessThan(abs(q[0]) + abs(q[1]), 1e-2)
    }
}
