import Detection
import Foundation
import Models
import NeuralNet
import Tensors
import XCTest

/// The backbone's input gradient (ODIN's perturbation) on the pretrained weights: its forward
/// against the channels-last inference path, its gradient against finite differences of that
/// path's logits.
final class Lite0InputGradientTests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    /// ODIN's loss: log softmax(z / T) of the top class, in Double.
    static func logTop(_ z: [Float], temperature t: Double) -> Double {
        let scaled = z.map { Double($0) / t }
        let top = scaled.max() ?? 0
        return top - (top + log(scaled.reduce(0) { $0 + exp($1 - top) }))
    }

    func testGradientMatchesFiniteDifferencesOfTheInferencePath() throws {
        let network = try loadNetwork()
        let gradientNetwork = Lite0InputGradient(network)
        var g = SeededGenerator(seed: 41)
        func uniform() -> Float { Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 }
        // A smooth pattern plus noise, 70x52 (odd stride-2 sizes on the way down: 'SAME' padding).
        let (h, w) = (70, 52)
        var x = Tensor(shape: [1, 3, h, w])
        for c in 0..<3 {
            for y in 0..<h {
                for i in 0..<w {
                    x[0, c, y, i] = 0.6 * sin(Float(y * (c + 1)) / 9 + Float(i) / 7) + 0.2 * uniform()
                }
            }
        }
        let t = 10.0
        func loss(_ input: Tensor) -> Double { Self.logTop(network.logits(input).storage, temperature: t) }
        let (logits, gradient) = gradientNetwork.inputGradient(x) { z in
            let top = z.indices.max { z[$0] < z[$1] } ?? 0
            let scaled = z.map { Double($0) / t }, m = scaled.max() ?? 0
            let e = scaled.map { exp($0 - m) }, sum = e.reduce(0, +)
            let p = e.map { $0 / sum }
            return z.indices.map { Float(((($0 == top) ? 1 : 0) - p[$0]) / t) }
        }
        let reference = network.logits(x).storage
        let largest = reference.map { abs($0) }.max() ?? 1
        for k in reference.indices { XCTAssertEqual(logits[k], reference[k], accuracy: 1e-4 * largest, "logit \(k)") }
        XCTAssertEqual(gradient.shape, x.shape)
        XCTAssertGreaterThan(gradient.storage.map { abs($0) }.max() ?? 0, 0)

        // Directional derivatives along random directions. The network bends fast (ReLU6 kinks
        // everywhere): at a step of 1e-2 central differences are still 10-40% off, at 5e-4 they
        // agree within a few percent.
        for direction in 0..<3 {
            let v = (0..<x.count).map { _ in uniform() }
            let step: Float = 5e-4
            var up = x, down = x
            for i in v.indices {
                up.storage[i] += step * v[i]
                down.storage[i] -= step * v[i]
            }
            let numeric = (loss(up) - loss(down)) / (2 * Double(step))
            let analytic = zip(gradient.storage, v).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            XCTAssertEqual(analytic, numeric, accuracy: 0.06 * abs(numeric) + 1e-3, "direction \(direction)")
        }
        // The pixels with the largest gradient, one at a time.
        let strongest = gradient.storage.indices.sorted { abs(gradient.storage[$0]) > abs(gradient.storage[$1]) }
        for i in strongest.prefix(4) {
            let step: Float = 2e-3
            var up = x, down = x
            up.storage[i] += step
            down.storage[i] -= step
            let numeric = (loss(up) - loss(down)) / (2 * Double(step))
            XCTAssertEqual(
                Double(gradient.storage[i]), numeric, accuracy: 0.05 * abs(numeric) + 1e-4, "pixel \(i)")
        }
    }

    func testODINPerturbationRaisesTheTopClassScore() throws {
        // The perturbation moves every input value by epsilon along the sign of the gradient of
        // log S_top(x; 1000): to first order that raises it by epsilon |gradient|_1 (checked
        // here by central differences along that direction). The network bends fast along it
        // (the slope is 80% of the first-order one at 1e-4, 18% at 1e-3): on this smooth input
        // the smallest of ODIN's magnitudes still raises the score, the larger ones lower it.
        let network = try loadNetwork()
        let gradientNetwork = Lite0InputGradient(network)
        var x = Tensor(shape: [1, 3, 64, 64])
        for i in x.storage.indices { x.storage[i] = 0.5 * sin(Float(i % 64) / 5 + Float(i / 4096)) }
        let t = Double(ODINShift.perturbationTemperature)
        func loss(_ input: Tensor) -> Double { Self.logTop(network.logits(input).storage, temperature: t) }
        let (_, gradient) = gradientNetwork.inputGradient(x) { z in
            let scaled = z.map { Double($0) / t }, m = scaled.max() ?? 0
            let e = scaled.map { exp($0 - m) }, sum = e.reduce(0, +)
            let top = z.indices.max { z[$0] < z[$1] } ?? 0
            return z.indices.map { Float(((($0 == top) ? 1 : 0) - e[$0] / sum) / t) }
        }
        let sign = gradient.storage.map { $0 > 0 ? Float(1) : $0 < 0 ? -1 : 0 }
        func moved(_ epsilon: Float) -> Tensor {
            var y = x
            for i in y.storage.indices { y.storage[i] += epsilon * sign[i] }
            return y
        }
        let l1 = gradient.storage.reduce(0.0) { $0 + Double(abs($1)) }
        let h: Float = 1e-5
        XCTAssertEqual((loss(moved(h)) - loss(moved(-h))) / (2 * Double(h)), l1, accuracy: 0.05 * l1)
        let perturbed = ODINShift.perturbedLogits(backbone: network, gradient: gradientNetwork, input: x)
        XCTAssertEqual(perturbed.count, ODINShift.magnitudes.count)
        let before = loss(x)
        for (k, epsilon) in ODINShift.magnitudes.enumerated() {
            let reference = network.logits(moved(epsilon)).storage
            for c in reference.indices { XCTAssertEqual(perturbed[k][c], reference[c], accuracy: 1e-4) }
        }
        XCTAssertGreaterThan(Self.logTop(perturbed[0], temperature: t), before)
    }
}
