import Foundation
import Models
import NeuralNet
import Tensors

extension Component {
    /// The adversarially trained one-class model's discriminator.
    public static let gan = AdversarialComponent.name
}

/// `gan`: an adversarially trained one-class model over the teacher's standardized embeddings
/// ("Old is Gold", Zaheer et al., CVPR 2020): its discriminator judges every feature cell, and
/// by default the generator's reconstruction residual is added (`AdversarialOneClass`).
public struct AdversarialComponent: ScoringComponent {
    /// The name.
    public static let name = Component(declaring: "gan")
    /// For `--help`.
    public static let summary = "adversarial one-class discriminator"
    /// Trained by gradient descent.
    public static let isLearned = true

    /// The model.
    public let model: AdversarialOneClass

    /// Wraps a trained model.
    public init(model: AdversarialOneClass) { self.model = model }

    /// The generator halves the grid twice: one fixed size, a multiple of 32 pixels.
    public static func refusal(for settings: DetectorSettings) -> String? {
        if let refusal = settings.quarterGridRefusal(name) { return refusal }
        let l = settings.learning
        if l.ganOldEpoch < 1 || l.ganOldEpoch > l.ganEpochs {
            return "the gan component keeps its old generator after an epoch of phase 1: --gan-old-epoch must be "
                + "in 1...\(l.ganEpochs), got \(l.ganOldEpoch)"
        }
        return nil
    }

    /// Trains the model on the standardized teacher features.
    public static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter {
        Fitter(settings: settings)
    }

    /// The model of a bundle: `teacher.mean`/`teacher.scale`, `gan.generator.*`,
    /// `gan.discriminator.*` and `gan.residualScale` (1).
    public static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> AdversarialComponent {
        let d = settings.featureDimension, l = settings.learning
        let standardization = try FeatureStandardization.load(bundle, dimension: d)
        guard l.ganLatentChannels > 0, l.ganDiscriminatorWidth > 0,
            let generator = ConvStack(
                inChannels: d, specs: AdversarialOneClass.generatorSpecs(channels: d, latent: l.ganLatentChannels),
                tensors: bundle.tensors, prefix: "gan.generator"),
            let discriminator = ConvStack(
                inChannels: d,
                specs: AdversarialOneClass.discriminatorSpecs(channels: d, width: l.ganDiscriminatorWidth),
                tensors: bundle.tensors, prefix: "gan.discriminator"),
            let scale = bundle.tensors["gan.residualScale"], scale.shape == [1], scale.storage[0] > 0,
            scale.storage[0].isFinite
        else {
            throw BundleError("adversarial model tensors or settings are missing or malformed")
        }
        return AdversarialComponent(
            model: AdversarialOneClass(
                generator: generator, discriminator: discriminator, standardization: standardization,
                residualScale: scale.storage[0], mapSource: l.ganMap))
    }

    /// Standardization, generator, discriminator and the residual's scale.
    public var tensors: [String: Tensor] {
        var all = model.standardization.tensors
        all.merge(model.generator.namedTensors(prefix: "gan.generator")) { a, _ in a }
        all.merge(model.discriminator.namedTensors(prefix: "gan.discriminator")) { a, _ in a }
        all["gan.residualScale"] = Tensor(shape: [1], storage: [model.residualScale])
        return all
    }

    /// The discriminator's abnormality map, (h * w).
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        model.map(teacher: input.teacher, singleThreaded: singleThreaded)
    }

    struct Fitter: ComponentFitter {
        let settings: DetectorSettings
        var phase: String { "adversarial" }
        var needs: TrainingNeeds { .teacherFeatures }

        mutating func fit(
            _ data: TrainingData, generator: inout SeededGenerator,
            progress: ProgressHandler
        ) throws -> any ScoringComponent {
            let (standardization, targets) = data.teacherTargets()
            return AdversarialComponent(
                model: AdversarialTraining.train(
                    targets: targets, standardization: standardization, settings: settings.learning,
                    seed: settings.seed, progress: progress))
        }
    }
}

/// The two training phases of `AdversarialOneClass` (OGNet, Zaheer et al., CVPR 2020).
///
/// Phase 1 trains the generator G to reconstruct noisy inputs, x + n -> x, against the patch
/// discriminator D: D learns real cells (label 1 - smoothing) from reconstructed ones (0); G
/// minimizes the mean squared error plus `ganAdversarialWeight` times the non-saturating
/// adversarial loss -log D(G(x + n)), each network with its own AdamW rate
/// (`ganGeneratorLearningRate`, `ganLearningRate`). The generator after epoch `ganOldEpoch`
/// is kept as G_old. Phase 2 freezes G and trains D alone, each side half of the loss: real
/// x and the good reconstruction G(x) labelled normal; as abnormal, `ganNegatives` chooses
/// OGNet's poor reconstruction G_old(x) and pseudo-anomaly (x_i + x_j) / 2, and/or x plus
/// Gaussian noise (measured on magnetic_tile: OGNet's negatives teach D that blurred,
/// low-contrast features are abnormal, and it then calls sharp defects normal; noise negatives
/// do not). Each abnormal input covers a random rectangle of cells, labelled cell by cell, so
/// D learns local decisions (`ganRegionalAnomalies`). Step counts are fixed (no early
/// stopping on a metric that would need defects). Each batch is split in two fixed halves
/// computed on two threads and summed, and every random choice comes from generators derived
/// from `seed`, so the same seed gives the same bytes.
enum AdversarialTraining {
    /// The fewest images an epoch passes over.
    static let minimumEpochImages = 640

    /// Per-thread sums of one batch.
    struct Partial: @unchecked Sendable {
        var generator: ConvStack.Gradients
        var discriminator: ConvStack.Gradients
        var dLoss = 0.0, gLoss = 0.0, reconstruction = 0.0
    }

    static func train(
        targets: [Tensor], standardization: FeatureStandardization, settings: LearningSettings, seed: UInt64,
        progress: ProgressHandler
    ) -> AdversarialOneClass {
        var random = SeededGenerator(seed: seed &+ 0x6A40_0000)
        let d = standardization.mean.count
        var g = ConvStack(
            inChannels: d, specs: AdversarialOneClass.generatorSpecs(channels: d, latent: settings.ganLatentChannels),
            generator: &random)
        var rawD = ConvStack(
            inChannels: d,
            specs: AdversarialOneClass.discriminatorSpecs(channels: d, width: settings.ganDiscriminatorWidth),
            generator: &random)
        var spectral = SpectralNormalization(for: rawD, generator: &random)
        let poolSize = 1 << 20
        // Unit Gaussian noise from a fixed pool read at a random offset per image (as the
        // autoencoder's): it needs to vary, not to be fresh for every value.
        let pool = (0..<poolSize).map { _ in random.nextGaussian() }
        @Sendable func noisy(_ x: Tensor, std: Float, seed: UInt64) -> Tensor {
            var out = x
            var noise = SeededGenerator(seed: seed)
            let offset = Int(noise.next() % UInt64(poolSize))
            for j in 0..<out.count { out.storage[j] += std * pool[(offset + j) & (poolSize - 1)] }
            return out
        }
        // One optimizer per network: the generator takes the larger step (two time-scale updates,
        // Heusel et al. 2017; measured on magnetic_tile, see `ganGeneratorLearningRate`).
        var adam = AdamW(learningRate: settings.ganLearningRate, weightDecay: settings.weightDecay)
        adam.beta1 = 0.5  // the DCGAN setting (Radford et al. 2016): less momentum, steadier adversaries
        var generatorAdam = adam
        generatorAdam.learningRate = settings.ganGeneratorLearningRate
        let real = 1 - settings.ganLabelSmoothing
        let batches = (targets.count + settings.batchSize - 1) / settings.batchSize
        // An epoch counts at least `minimumEpochImages` images: a small training set is passed
        // over several times per epoch, so the number of steps does not collapse with it
        // (measured: 20 good images gave an unusable discriminator at 3 steps per epoch).
        let repeats = max(1, (minimumEpochImages + targets.count - 1) / max(targets.count, 1))
        let (epochs, oldEpoch, discriminatorEpochs) = (
            settings.ganEpochs * repeats, settings.ganOldEpoch * repeats, settings.ganDiscriminatorEpochs * repeats
        )
        let total = batches * (epochs + discriminatorEpochs)
        var order = Array(targets.indices), step = 0
        var old = g

        /// D as the networks see it this step, and what its backward needs.
        func discriminator() -> (ConvStack, SpectralNormalization.Factors?) {
            guard settings.ganSpectralNorm else { return (rawD, nil) }
            let (stack, factors) = spectral.normalize(rawD)
            return (stack, factors)
        }
        func runHalves(
            _ batch: [Int], _ work: @Sendable (Int, UnsafeMutablePointer<Partial>) -> Void
        )
            -> Partial
        {
            let partials = inTwoHalves(
                batch,
                starting: Partial(generator: .init(for: g), discriminator: .init(for: rawD))
            ) { _, images, slot in
                for i in images { work(i, slot) }
            }
            var sum = partials[0]
            sum.generator.add(partials[1].generator)
            sum.discriminator.add(partials[1].discriminator)
            sum.dLoss += partials[1].dLoss
            sum.gLoss += partials[1].gLoss
            sum.reconstruction += partials[1].reconstruction
            return sum
        }
        func updateDiscriminator(
            _ sum: inout Partial, _ normalizedD: ConvStack, _ factors: SpectralNormalization.Factors?, scale: Float
        ) {
            if let factors {
                SpectralNormalization.backward(&sum.discriminator, normalized: normalizedD, factors: factors)
            }
            adam.update(&rawD, gradients: sum.discriminator, scale: scale, slot: 1)
        }

        // Phase 1.
        for epoch in stride(from: 1, through: epochs, by: 1) {
            order.shuffle(using: &random)
            var sums = (d: 0.0, g: 0.0, r: 0.0), seen = 0
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                let batch = Array(order[start..<min(start + settings.batchSize, order.count)])
                let noiseSeed = random.next()
                let (dNet, factors) = discriminator()
                let gNet = g, weight = settings.ganAdversarialWeight
                var sum = runHalves(batch) { i, slot in
                    let target = targets[i]
                    let input =
                        settings.inputNoise > 0
                        ? noisy(target, std: settings.inputNoise, seed: noiseSeed &+ UInt64(i)) : target
                    let (fake, gTape) = gNet.trainingForward(input)
                    let (zReal, realTape) = dNet.trainingForward(target)
                    let (lossReal, dReal) = binaryCrossEntropy(logits: zReal, target: real)
                    _ = dNet.backward(
                        dReal, tape: realTape, gradients: &slot.pointee.discriminator, needsInputGradient: false)
                    let (zFake, fakeTape) = dNet.trainingForward(fake)
                    let (lossFake, dFake) = binaryCrossEntropy(logits: zFake, target: 0)
                    _ = dNet.backward(
                        dFake, tape: fakeTape, gradients: &slot.pointee.discriminator, needsInputGradient: false)
                    // The generator's adversarial loss -log D(G) through the same forward pass.
                    let (lossAdversarial, dAdversarial) = binaryCrossEntropy(logits: zFake, target: 1)
                    let dThroughD = dNet.inputGradient(dAdversarial, tape: fakeTape)
                    let (lossReconstruction, dReconstruction) = meanSquaredError(fake, target)
                    var dFakeTotal = dReconstruction
                    for j in 0..<dFakeTotal.count { dFakeTotal.storage[j] += weight * dThroughD.storage[j] }
                    _ = gNet.backward(
                        dFakeTotal, tape: gTape, gradients: &slot.pointee.generator, needsInputGradient: false)
                    slot.pointee.dLoss += Double(lossReal + lossFake) / 2
                    slot.pointee.gLoss += Double(lossAdversarial)
                    slot.pointee.reconstruction += Double(lossReconstruction)
                }
                let scale = 1 / Float(batch.count)
                generatorAdam.beginStep()
                generatorAdam.update(&g, gradients: sum.generator, scale: scale, slot: 0)
                adam.beginStep()
                updateDiscriminator(&sum, dNet, factors, scale: scale)
                sums = (sums.d + sum.dLoss, sums.g + sum.gLoss, sums.r + sum.reconstruction)
                seen += batch.count
                step += 1
                let n = Double(max(seen, 1))
                progress(
                    String(
                        format: "adversarial phase 1 (D %.3f, G %.3f, reconstruction %.3f)", sums.d / n, sums.g / n,
                        sums.r / n), step, total)
            }
            if epoch == oldEpoch { old = g }
        }

        // Phase 2: G frozen; D learns {x, G(x)} = normal, the chosen negatives = abnormal.
        for _ in 0..<discriminatorEpochs {
            order.shuffle(using: &random)
            var dSum = 0.0, seen = 0
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                let batch = Array(order[start..<min(start + settings.batchSize, order.count)])
                let partners = batch.map { _ in order[Int(random.next() % UInt64(order.count))] }
                let partnerOf = Dictionary(zip(batch, partners)) { a, _ in a }
                let noiseSeed = random.next()
                let (dNet, factors) = discriminator()
                let (gNet, oldNet) = (g, old)
                let perturbation = settings.ganPerturbation, regional = settings.ganRegionalAnomalies
                let negatives = settings.ganNegatives
                var sum = runHalves(batch) { i, slot in
                    let x = targets[i], other = targets[partnerOf[i] ?? i]
                    var draw = SeededGenerator(seed: noiseSeed &+ UInt64(i))
                    let cells = x.height * x.width
                    let everywhere = [Float](repeating: 1, count: cells)
                    // Each abnormal kind covers a random rectangle of cells (or the whole map).
                    func region() -> [Float] {
                        guard regional else { return everywhere }
                        return randomRectangle(height: x.height, width: x.width, generator: &draw)
                    }
                    var abnormal: [(source: Tensor, mask: [Float])] = []
                    if negatives != .perturbed {
                        abnormal.append((oldNet.forward(x, singleThreaded: true), region()))
                        abnormal.append(
                            (
                                Tensor(shape: x.shape, storage: zip(x.storage, other.storage).map { ($0 + $1) / 2 }),
                                region()
                            )
                        )
                    }
                    if negatives != .ognet {
                        // Scales spread log-uniformly over perturbation / 4 ... 4 x perturbation:
                        // noise-contrastive negatives at every distance from the normal manifold,
                        // so the discriminator does not extrapolate "normal" far from it.
                        let u = Float(draw.next() >> 40) / Float(1 << 24)
                        let std = perturbation * Float(Foundation.pow(2.0, Double(4 * u - 2)))
                        abnormal.append((noisy(x, std: std, seed: draw.next()), region()))
                    }
                    // Each side weighs half: its kinds share it equally. A cell of an abnormal
                    // input is labelled abnormal where its mask is, real elsewhere.
                    var inputs: [(Tensor, [Float], Float)] = [
                        (x, [Float](repeating: real, count: cells), 0.25),
                        (gNet.forward(x, singleThreaded: true), [Float](repeating: real, count: cells), 0.25),
                    ]
                    for (source, mask) in abnormal {
                        var mixed = x
                        for c in 0..<x.channels {
                            for p in 0..<cells where mask[p] > 0 {
                                mixed.storage[c * cells + p] = source.storage[c * cells + p]
                            }
                        }
                        inputs.append((mixed, mask.map { $0 > 0 ? 0 : real }, 0.5 / Float(abnormal.count)))
                    }
                    for (input, labels, weight) in inputs {
                        let (z, tape) = dNet.trainingForward(input)
                        let (loss, dLoss) = binaryCrossEntropy(logits: z, targets: labels)
                        var dz = dLoss
                        for j in 0..<dz.count { dz.storage[j] *= 2 * weight }
                        _ = dNet.backward(
                            dz, tape: tape, gradients: &slot.pointee.discriminator, needsInputGradient: false)
                        slot.pointee.dLoss += Double(loss * weight)
                    }
                }
                adam.beginStep()
                updateDiscriminator(&sum, dNet, factors, scale: 1 / Float(batch.count))
                dSum += sum.dLoss
                seen += batch.count
                step += 1
                progress(String(format: "adversarial phase 2 (D %.3f)", dSum / Double(max(seen, 1))), step, total)
            }
        }

        let (finalD, _) = discriminator()
        var model = AdversarialOneClass(
            generator: g, discriminator: finalD, standardization: standardization, residualScale: 1,
            mapSource: settings.ganMap)
        model.residualScale = model.balancedResidualScale(over: targets, weight: settings.ganResidualWeight)
        return model
    }
}

/// A mask (h * w) of 1 inside a random axis-aligned rectangle of cells, each side between an
/// eighth and a half of the grid's, and 0 elsewhere.
func randomRectangle(height: Int, width: Int, generator: inout SeededGenerator) -> [Float] {
    func span(_ n: Int) -> (start: Int, length: Int) {
        let lo = max(1, n / 8), hi = max(lo, n / 2)
        let length = lo + Int(generator.next() % UInt64(hi - lo + 1))
        return (Int(generator.next() % UInt64(n - length + 1)), length)
    }
    let (y0, h) = span(height), (x0, w) = span(width)
    var mask = [Float](repeating: 0, count: height * width)
    for y in y0..<(y0 + h) { for x in x0..<(x0 + w) { mask[y * width + x] = 1 } }
    return mask
}
