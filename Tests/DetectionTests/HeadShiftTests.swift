import Detection
import Foundation
import NeuralNet
import Tensors
import XCTest

/// The ImageNet-head shift detectors on a small hand-made head, against finite differences and
/// closed forms.
final class HeadShiftTests: XCTestCase {
    /// A head of 6 classes over 4 features, random but seeded.
    func head(seed: UInt64, scale: Float = 1) -> HeadOutput {
        var g = SeededGenerator(seed: seed)
        func noise(_ n: Int) -> [Float] { (0..<n).map { _ in Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 } }
        let classifier = Linear(
            weight: Tensor(shape: [6, 4], storage: noise(24).map { $0 * scale }), bias: noise(6).map { $0 * scale })
        let features = noise(4).map { abs($0) + 0.1 }
        let logits = classifier.forward(Tensor(shape: [1, 4], storage: features)).storage
        guard let head = HeadOutput(features: features, logits: logits, classifier: classifier) else {
            preconditionFailure("the head's sizes disagree")
        }
        return head
    }

    /// KL(uniform || softmax(W h + b)) in Double: the loss GradNorm differentiates.
    func kl(_ w: [Float], _ head: HeadOutput) -> Double {
        let c = head.classifier.weight.shape[0], d = head.features.count
        let z = (0..<c).map { k in
            Double(head.classifier.bias[k])
                + (0..<d).reduce(0.0) { $0 + Double(w[k * d + $1]) * Double(head.features[$1]) }
        }
        let top = z.max() ?? 0
        let logSum = top + log(z.reduce(0) { $0 + exp($1 - top) })
        return z.reduce(0) { $0 - ($1 - logSum) / Double(c) } - log(Double(c))
    }

    func testGradientNormIsTheNormOfTheFiniteDifferenceGradientAndFactors() {
        for seed in [1, 2, 3] as [UInt64] {
            let h = head(seed: seed, scale: 2)
            let analytic = GradientNormShift.weightGradient(h).storage
            var w = h.classifier.weight.storage
            for i in w.indices {
                let keep = w[i]
                w[i] = keep + 1e-2
                let up = kl(w, h)
                w[i] = keep - 1e-2
                let down = kl(w, h)
                w[i] = keep
                XCTAssertEqual(Double(analytic[i]), (up - down) / 2e-2, accuracy: 1e-3, "weight \(i)")
            }
            // The score is minus the L1 norm, which factors into softmax part times feature part.
            let z = h.logits.map(Double.init), top = z.max() ?? 0
            let p = z.map { exp($0 - top) }, total = p.reduce(0, +)
            let softmaxPart = p.reduce(0) { $0 + abs($1 / total - 1 / 6) }
            let featurePart = h.features.reduce(0) { $0 + Double(abs($1)) }
            let score = GradientNormShift().score(ShiftInput(pooled: [], head: h))
            XCTAssertEqual(Double(score), -softmaxPart * featurePart, accuracy: 1e-5)
        }
    }

    func testGradientThroughTheLastBlockMatchesFiniteDifferences() throws {
        // A last layer of 4 outputs (ReLU6) over 3 inputs at 5 pixels, averaged, then the
        // classifier: KL(u || softmax) differentiated by the layer's weights.
        var g = SeededGenerator(seed: 9)
        func noise(_ n: Int) -> [Double] { (0..<n).map { _ in Double(g.next() >> 11) / Double(1 << 53) * 2 - 1 } }
        let (inputs, features, pixels) = (3, 4, 5)
        let x = noise(pixels * inputs).map { $0 * 3 }
        var w = noise(features * inputs).map { $0 * 2 }
        let bias = noise(features).map { $0 + 1.5 }
        let fcWeight = noise(6 * features), fcBias = noise(6)
        let classifier = Linear(
            weight: Tensor(shape: [6, features], storage: fcWeight.map { Float($0) }), bias: fcBias.map { Float($0) })
        func forward(_ w: [Double]) -> (activations: [Double], kl: Double) {
            var a = [Double](repeating: 0, count: pixels * features)
            for q in 0..<pixels {
                for o in 0..<features {
                    let z = bias[o] + (0..<inputs).reduce(0.0) { $0 + w[o * inputs + $1] * x[q * inputs + $1] }
                    a[q * features + o] = min(max(z, 0), 6)
                }
            }
            let pooled = (0..<features).map { o in (0..<pixels).reduce(0.0) { $0 + a[$1 * features + o] } / 5 }
            let z = (0..<6).map { k in
                fcBias[k] + (0..<features).reduce(0.0) { $0 + fcWeight[k * features + $1] * pooled[$1] }
            }
            let top = z.max() ?? 0
            let logSum = top + log(z.reduce(0) { $0 + exp($1 - top) })
            return (a, z.reduce(0) { $0 - ($1 - logSum) / 6 } - log(6))
        }
        let (a, _) = forward(w)
        XCTAssertTrue(a.contains(0) && a.contains { $0 > 0 && $0 < 6 }, "the test should cover both sides of ReLU6")
        let pooled = (0..<features).map { o in Float((0..<pixels).reduce(0.0) { $0 + a[$1 * features + o] } / 5) }
        let logits = classifier.forward(Tensor(shape: [1, features], storage: pooled)).storage
        let head = try XCTUnwrap(
            HeadOutput(
                features: pooled, logits: logits, classifier: classifier,
                lastBlock: (x.map { Float($0) }, a.map { Float($0) }, pixels)))
        let analytic = try XCTUnwrap(GradientNormBlockShift.lastBlockWeightGradient(head))
        var l1 = 0.0
        for i in w.indices {
            let keep = w[i]
            w[i] = keep + 1e-4
            let up = forward(w).kl
            w[i] = keep - 1e-4
            let down = forward(w).kl
            w[i] = keep
            let numeric = (up - down) / 2e-4
            XCTAssertEqual(Double(analytic[i]), numeric, accuracy: 1e-4 + 1e-3 * abs(numeric), "weight \(i)")
            l1 += abs(numeric)
        }
        // The score adds the classifier's part to it.
        let classifierPart = GradientNormShift.weightGradient(head).storage.reduce(0) { $0 + Double(abs($1)) }
        let score = GradientNormBlockShift().score(ShiftInput(pooled: [], head: head))
        XCTAssertEqual(Double(score), -(classifierPart + l1), accuracy: 1e-4)
        // Without the block's maps there is no score.
        XCTAssertTrue(GradientNormBlockShift().score(ShiftInput(pooled: [], head: self.head(seed: 1))).isNaN)
    }

    func testSoftmaxScoresAndTheTemperatureSearch() throws {
        let confident = head(seed: 4, scale: 20), unsure = head(seed: 4, scale: 0.01)
        let msp = MaximumSoftmaxShift()
        // -max softmax lies in [-1, -1/C]; a flat head is near -1/C, a sharp one near -1.
        for h in [confident, unsure] {
            let s = msp.score(ShiftInput(pooled: [], head: h))
            XCTAssertTrue((-1...(-1 / 6 + 1e-6)).contains(s), "\(s)")
        }
        XCTAssertLessThan(msp.score(ShiftInput(pooled: [], head: confident)), -0.9)
        XCTAssertGreaterThan(msp.score(ShiftInput(pooled: [], head: unsure)), -0.2)
        // The grid search returns a grid temperature, and ODIN at T = 1 is MSP.
        let data = ShiftFitData(
            training: [], count: 0, dimension: 0,
            validation: (10..<20).map { ShiftInput(pooled: [], head: head(seed: UInt64($0), scale: 5)) },
            shiftedValidation: (20..<30).map { ShiftInput(pooled: [], head: head(seed: UInt64($0), scale: 0.5)) })
        var g = SeededGenerator(seed: 0)
        let odin = try XCTUnwrap(ODINShift.fit(data, generator: &g))
        XCTAssertTrue(ODINShift.temperatures.contains(odin.temperature))
        XCTAssertEqual(
            ODINShift(temperature: 1).score(ShiftInput(pooled: [], head: confident)),
            msp.score(ShiftInput(pooled: [], head: confident)), accuracy: 1e-6)
    }

    func testODINPerturbationIsSearchedWithTheTemperatureAndStored() throws {
        // Unperturbed, the good and the shifted heads are alike (the temperature grid cannot
        // separate them); moved by the third magnitude, the good ones turn confident and the
        // shifted ones flat: the search must pick that magnitude, at T = 1000.
        let chosen = 2
        func input(_ seed: Int, good: Bool) -> ShiftInput {
            var h = head(seed: UInt64(seed))
            h.perturbedLogits = ODINShift.magnitudes.indices.map { k in
                k == chosen ? h.logits.map { $0 * (good ? 100 : 0.01) } : h.logits
            }
            return ShiftInput(pooled: [], head: h)
        }
        let data = ShiftFitData(
            training: [], count: 0, dimension: 0, validation: (40..<60).map { input($0, good: true) },
            shiftedValidation: (60..<80).map { input($0, good: false) })
        var g = SeededGenerator(seed: 0)
        let odin = try XCTUnwrap(ODINShift.fit(data, generator: &g))
        XCTAssertEqual(odin.magnitude, ODINShift.magnitudes[chosen])
        XCTAssertEqual(odin.temperature, ODINShift.perturbationTemperature)
        XCTAssertTrue(odin.readsPerturbedHead)
        // Its score reads the perturbed logits; a head without them has none.
        let probe = input(41, good: true)
        let perturbedHead = try XCTUnwrap(probe.head)
        let expected = -(softmaxTop(perturbedHead.perturbedLogits[chosen], temperature: 1000))
        XCTAssertEqual(Double(odin.score(probe)), expected, accuracy: 1e-6)
        XCTAssertTrue(odin.score(ShiftInput(pooled: [], head: head(seed: 41))).isNaN)
        // Without perturbed logits, no magnitude is tried.
        let plain = ShiftFitData(
            training: [], count: 0, dimension: 0,
            validation: data.validation.map {
                ShiftInput(
                    pooled: [],
                    head: $0.head.map {
                        var h = $0; h.perturbedLogits = []; return h
                    })
            },
            shiftedValidation: data.shiftedValidation)
        XCTAssertEqual(try XCTUnwrap(ODINShift.fit(plain, generator: &g)).magnitude, 0)
        // Stored and read back; a bundle without the magnitude (older) reads as none, and a
        // magnitude this build does not try is refused.
        let back = try ODINShift.load(odin.tensors, dimension: 0)
        XCTAssertEqual(back.magnitude, odin.magnitude)
        XCTAssertEqual(back.temperature, odin.temperature)
        XCTAssertNil(ODINShift(temperature: 5).tensors["shift.odin.magnitude"])
        XCTAssertEqual(try ODINShift.load(ODINShift(temperature: 5).tensors, dimension: 0).magnitude, 0)
        var bad = odin.tensors
        bad["shift.odin.magnitude"] = Tensor(shape: [1], storage: [0.3])
        XCTAssertThrowsError(try ODINShift.load(bad, dimension: 0))
    }

    /// max softmax(z / T), in Double.
    func softmaxTop(_ z: [Float], temperature t: Double) -> Double {
        let scaled = z.map { Double($0) / t }
        let top = scaled.max() ?? 0
        return 1 / scaled.reduce(0) { $0 + exp($1 - top) }
    }
}
