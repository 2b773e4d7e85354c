import Foundation
import Models
import NeuralNet
import Tensors
import XCTest

/// The two-scale student and the memory autoencoder against finite differences and
/// hand-computed maps.
final class LearnedModelTests: XCTestCase {
    func noise(_ count: Int, _ g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 }
    }

    func testStudentBackwardThroughConcatenationAndUpsamplingMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 21)
        var student = StudentNetwork(width: 8, outChannels: 5, generator: &g)
        for i in student.head.biases.indices { student.head.biases[i] = noise(5, &g) }
        let x = Tensor(shape: [1, 3, 40, 32], storage: noise(3 * 40 * 32, &g))
        let (y, tape) = student.trainingForward(x)
        XCTAssertEqual(y.shape, [1, 5, 5, 4])
        XCTAssertLessThan(y.maxAbsDifference(student.forward(x)), 1e-5)
        let r = noise(y.count, &g)
        func loss(_ s: StudentNetwork) -> Double {
            zip(s.forward(x).storage, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var gradients = StudentNetwork.Gradients(for: student)
        student.backward(Tensor(shape: y.shape, storage: r), tape: tape, gradients: &gradients)
        // Probe weights of every part: the trunk's gradient flows through both the direct
        // path and the branch (concatenation + upsampling).
        let parts: [(String, WritableKeyPath<StudentNetwork, ConvStack>, ConvStack.Gradients)] =
            [
                ("trunk", \.trunk, gradients.trunk), ("branch", \.branch, gradients.branch),
                ("head", \.head, gradients.head),
            ]
        for (name, path, grads) in parts {
            for layer in student[keyPath: path].weights.indices {
                let scale = max(grads.weights[layer].map { abs($0) }.max() ?? 0, 1e-3)
                for _ in 0..<6 {
                    let i = Int(g.next() % UInt64(grads.weights[layer].count))
                    var up = student, down = student
                    up[keyPath: path].weights[layer].storage[i] += 1e-3
                    down[keyPath: path].weights[layer].storage[i] -= 1e-3
                    let numeric = (loss(up) - loss(down)) / 2e-3
                    XCTAssertEqual(
                        numeric, Double(grads.weights[layer][i]), accuracy: 0.03 * Double(scale),
                        "\(name) layer \(layer) weight \(i)")
                }
            }
        }
    }

    /// `maps(outputs:teacher:)` on random pixel rows of two students (a power of two) and of
    /// three, 37 channels (two vectors of 16 and a tail) and 35 pixels (two blocks of 16 and a
    /// tail), on one and two threads, against the definition in Double over planar arrays.
    func testStudentMapsMatchTheirDefinitionOnManyChannels() {
        for (k, threads) in [(2, 1), (2, 2), (3, 1), (3, 2)] {
            setComputeThreads(threads)
            checkStudentMaps(students: k)
        }
        setComputeThreads(2)
    }

    private func checkStudentMaps(students k: Int) {
        var g = SeededGenerator(seed: 3)
        let (d, h, w) = (37, 5, 7), p = 5 * 7
        func random(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -2...2, using: &g) } }
        let mean = random(d), scale = (0..<d).map { _ in Float.random(in: 0.5...2, using: &g) }
        let teacher = Tensor(shape: [1, d, h, w], storage: random(d * p))
        let outputs = (0..<k).map { _ in Tensor(shape: [p, d], storage: random(p * d)) }
        let ensemble = StudentEnsemble(students: [], standardization: FeatureStandardization(mean: mean, scale: scale))
        let maps = ensemble.maps(outputs: outputs, teacher: teacher)
        for i in 0..<p {
            var discrepancy = 0.0, variance = 0.0
            for c in 0..<d {
                let target = (Double(teacher.storage[c * p + i]) - Double(mean[c])) / Double(scale[c])
                let values = outputs.map { Double($0.storage[i * d + c]) }
                let average = values.reduce(0, +) / Double(k)
                discrepancy += values.map { ($0 - target) * ($0 - target) }.reduce(0, +) / Double(k)
                variance += values.map { ($0 - average) * ($0 - average) }.reduce(0, +) / Double(k)
            }
            XCTAssertEqual(Double(maps.discrepancy[i]), discrepancy / Double(d), accuracy: 1e-4, "pixel \(i)")
            XCTAssertEqual(Double(maps.variance[i]), variance / Double(d), accuracy: 1e-4, "pixel \(i)")
        }
    }

    func testStudentMapsAreMeanDiscrepancyAndVariance() {
        // Two "students" that are exact constants: a 1x1 head with zero weights and biases a and b.
        var g = SeededGenerator(seed: 2)
        var students = [
            StudentNetwork(width: 4, outChannels: 2, generator: &g),
            StudentNetwork(width: 4, outChannels: 2, generator: &g),
        ]
        for (k, value) in [Float(1), 3].enumerated() {
            students[k].head.weights[0].storage = [Float](repeating: 0, count: students[k].head.weights[0].count)
            students[k].head.biases[0] = [value, value]
        }
        let ensemble = StudentEnsemble(
            students: students, standardization: FeatureStandardization(mean: [0, 0], scale: [1, 1]))
        let teacher = Tensor(shape: [1, 2, 1, 1], storage: [0, 2])
        let maps = ensemble.maps(input: Tensor(shape: [1, 3, 8, 8]), teacher: teacher)
        // Channel 0: errors 1, 9 -> 5; channel 1: errors 1, 1 -> 1; mean 3. Variance 1 per channel.
        XCTAssertEqual(maps.discrepancy, [3])
        XCTAssertEqual(maps.variance, [1])
    }
}

/// The one-class gradient signal of the memory autoencoder against finite differences.
final class AutoencoderGradientTests: XCTestCase {
    func testLastLayerGradientNormMatchesFiniteDifferences() {
        var g = SeededGenerator(seed: 17)
        let d = 6, latent = 4
        var ae = MemoryAutoencoder(
            encoder: ConvStack(
                inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: latent), generator: &g),
            decoder: ConvStack(
                inChannels: latent, specs: MemoryAutoencoder.decoderSpecs(latent: latent, outChannels: d), generator: &g
            ),
            memory: Tensor(shape: [5, latent], storage: (0..<(5 * latent)).map { _ in g.nextGaussian() }),
            readout: MemoryReadout(temperature: 0.5, shrinkage: 0.5),
            standardization: FeatureStandardization(
                mean: [Float](repeating: 0.1, count: d), scale: [Float](repeating: 2, count: d)))
        let teacher = Tensor(shape: [1, d, 8, 8], storage: (0..<(d * 64)).map { _ in g.nextGaussian() })
        func loss(_ model: MemoryAutoencoder) -> Double {
            let target = model.standardization.apply(teacher)
            let out = model.reconstruct(target)
            return zip(out.storage, target.storage).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
                / Double(out.count)
        }
        let last = ae.decoder.weights.count - 1
        var squares = 0.0
        for i in ae.decoder.weights[last].storage.indices {
            let keep = ae.decoder.weights[last].storage[i]
            ae.decoder.weights[last].storage[i] = keep + 1e-2
            let up = loss(ae)
            ae.decoder.weights[last].storage[i] = keep - 1e-2
            let down = loss(ae)
            ae.decoder.weights[last].storage[i] = keep
            squares += ((up - down) / 2e-2) * ((up - down) / 2e-2)
        }
        let norm = Double(ae.lastLayerGradientNorm(teacher: teacher))
        XCTAssertGreaterThan(norm, 0)
        XCTAssertEqual(norm, squares.squareRoot(), accuracy: 1e-3 * squares.squareRoot())
    }

    func testStudentsLastLayerGradientNormMatchesFiniteDifferences() {
        // The ensemble's loss: the mean over students of each one's mean squared error to the
        // standardized teacher; its gradient norm over both students' last layers.
        var g = SeededGenerator(seed: 23)
        let d = 3
        var ensemble = StudentEnsemble(
            students: [
                StudentNetwork(width: 4, outChannels: d, generator: &g),
                StudentNetwork(width: 4, outChannels: d, generator: &g),
            ],
            standardization: FeatureStandardization(
                mean: [Float](repeating: -0.2, count: d), scale: [Float](repeating: 1.5, count: d)))
        let x = Tensor(shape: [1, 3, 32, 24], storage: (0..<(3 * 32 * 24)).map { _ in g.nextGaussian() })
        let teacher = Tensor(shape: [1, d, 4, 3], storage: (0..<(d * 12)).map { _ in g.nextGaussian() })
        func loss(_ e: StudentEnsemble) -> Double {
            let target = e.standardization.apply(teacher)
            return e.students.reduce(0.0) { sum, student in
                let y = student.forward(x)
                return sum + zip(y.storage, target.storage).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
                    / Double(y.count)
            } / Double(e.students.count)
        }
        var squares = 0.0
        for k in ensemble.students.indices {
            let last = ensemble.students[k].head.weights.count - 1
            for i in ensemble.students[k].head.weights[last].storage.indices {
                let keep = ensemble.students[k].head.weights[last].storage[i]
                ensemble.students[k].head.weights[last].storage[i] = keep + 1e-2
                let up = loss(ensemble)
                ensemble.students[k].head.weights[last].storage[i] = keep - 1e-2
                let down = loss(ensemble)
                ensemble.students[k].head.weights[last].storage[i] = keep
                squares += ((up - down) / 2e-2) * ((up - down) / 2e-2)
            }
        }
        let norm = Double(ensemble.lastLayerGradientNorm(input: x, teacher: teacher))
        XCTAssertGreaterThan(norm, 0)
        XCTAssertEqual(norm, squares.squareRoot(), accuracy: 1e-3 * squares.squareRoot())
    }

}

/// The adversarial one-class model's maps against naive layers.
final class AdversarialModelTests: XCTestCase {
    func noise(_ count: Int, _ g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float(Double(g.next() >> 11) / Double(1 << 53)) * 2 - 1 }
    }

    func testAdversarialMapsAreMinusLogDiscriminatorAndTheScaledResidual() {
        var g = SeededGenerator(seed: 19)
        let d = 6
        let generator = ConvStack(
            inChannels: d, specs: AdversarialOneClass.generatorSpecs(channels: d, latent: 3), generator: &g)
        var discriminator = ConvStack(
            inChannels: d, specs: AdversarialOneClass.discriminatorSpecs(channels: d, width: 5), generator: &g)
        for i in discriminator.biases.indices { discriminator.biases[i] = noise(discriminator.biases[i].count, &g) }
        let standardization = FeatureStandardization(
            mean: noise(d, &g), scale: noise(d, &g).map { 1.5 + $0 })
        let teacher = Tensor(shape: [1, d, 8, 12], storage: noise(d * 96, &g).map { $0 * 3 })
        let x = standardization.apply(teacher)
        // The discriminator by the naive convolution, layer by layer; -log sigmoid(z) in Double.
        func naiveJudged(_ input: Tensor) -> [Float] {
            var z = input
            for (i, spec) in discriminator.specs.enumerated() {
                let geometry = ConvGeometry.symmetric(
                    inChannels: z.channels, outChannels: spec.outChannels, kernel: spec.kernel, pad: spec.padding)
                z = naiveConv2d(
                    z, weight: discriminator.weights[i], bias: discriminator.biases[i], geometry: geometry,
                    activation: spec.activation)
            }
            XCTAssertEqual(z.shape, [1, 1, 8, 12])
            return z.storage.map { Float(Foundation.log1p(Foundation.exp(-Double($0)))) }
        }
        let judged = naiveJudged(x)
        // The residual of the generator's training forward (im2col), per cell over channels.
        let (reconstruction, _) = generator.trainingForward(x)
        var residual = [Float](repeating: 0, count: 96)
        for c in 0..<d {
            for p in 0..<96 {
                let e = reconstruction.storage[c * 96 + p] - x.storage[c * 96 + p]
                residual[p] += e * e / Float(d)
            }
        }
        var model = AdversarialOneClass(
            generator: generator, discriminator: discriminator, standardization: standardization, residualScale: 0.25,
            mapSource: .input)
        for (a, b) in zip(model.map(teacher: teacher), judged) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, b)) }
        model.mapSource = .combined
        for (i, a) in model.map(teacher: teacher).enumerated() {
            XCTAssertEqual(a, judged[i] + residual[i] / 0.25, accuracy: 1e-3 * max(1, a))
        }
        model.mapSource = .reconstruction
        for (a, b) in zip(model.map(teacher: teacher), naiveJudged(reconstruction)) {
            XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, b))
        }
        model.mapSource = .residual
        for (a, b) in zip(model.map(teacher: teacher), residual) { XCTAssertEqual(a, b, accuracy: 1e-4 * max(1, b)) }
        XCTAssertTrue(judged.allSatisfy { $0 > 0 }, "-log D is positive")

        // The balanced unit over two inputs: mean residual / (weight x mean -log D), from the
        // naive maps above and a second input's, in Double.
        let teacher2 = Tensor(shape: [1, d, 8, 12], storage: noise(d * 96, &g).map { $0 * 2 })
        let x2 = standardization.apply(teacher2)
        let judged2 = naiveJudged(x2)
        let reconstruction2 = generator.trainingForward(x2).0
        var residual2 = 0.0
        for j in 0..<(d * 96) {
            let e = Double(reconstruction2.storage[j] - x2.storage[j])
            residual2 += e * e / Double(d * 96)
        }
        let meanJudged = (judged + judged2).reduce(0.0) { $0 + Double($1) } / 192
        let meanResidual = (residual.reduce(0.0) { $0 + Double($1) } / 96 + residual2) / 2
        let scale = model.balancedResidualScale(over: [x, x2], weight: 0.5)
        XCTAssertEqual(Double(scale), meanResidual / (0.5 * meanJudged), accuracy: 1e-4 * meanResidual / meanJudged)
    }
}
