import Foundation
import Models
import NeuralNet
import Tensors

extension Component {
    /// Reconstruction residual of the memory autoencoder.
    public static let ae = AutoencoderComponent.name
}

/// `ae`: the residual, per patch, of a convolutional autoencoder over the teacher's
/// standardized embeddings whose latent is rebuilt from a memory of normal items (MemAE,
/// Gong et al., ICCV 2019).
public struct AutoencoderComponent: ScoringComponent {
    /// The name.
    public static let name = Component(declaring: "ae")
    /// For `--help`.
    public static let summary = "memory autoencoder residual"
    /// Trained by gradient descent.
    public static let isLearned = true

    /// The autoencoder.
    public let autoencoder: MemoryAutoencoder

    /// Wraps a trained autoencoder.
    public init(autoencoder: MemoryAutoencoder) { self.autoencoder = autoencoder }

    /// The encoder halves the grid twice: one fixed size (the input, or a tile), a multiple of 32 pixels.
    public static func refusal(for settings: DetectorSettings) -> String? {
        if let refusal = settings.quarterGridRefusal(name) { return refusal }
        return nil
    }

    /// Trains the autoencoder on the standardized teacher features.
    public static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter {
        Fitter(settings: settings)
    }

    /// The autoencoder of a bundle: `teacher.mean`/`teacher.scale`, `ae.encoder.*`,
    /// `ae.decoder.*` and `ae.memory` (memorySize, latent).
    public static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> AutoencoderComponent {
        let d = settings.featureDimension, learning = settings.learning, l = learning.latentChannels
        let standardization = try FeatureStandardization.load(bundle, dimension: d)
        guard l > 0, learning.memorySize > 0, learning.temperature > 0, learning.temperature.isFinite,
            learning.shrinkage >= 0, learning.shrinkage.isFinite,
            let encoder = ConvStack(
                inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: l),
                tensors: bundle.tensors, prefix: "ae.encoder"),
            let decoder = ConvStack(
                inChannels: l, specs: MemoryAutoencoder.decoderSpecs(latent: l, outChannels: d),
                tensors: bundle.tensors, prefix: "ae.decoder"),
            let memory = bundle.tensors["ae.memory"], memory.shape == [learning.memorySize, l]
        else {
            throw BundleError("autoencoder tensors or settings are missing or malformed")
        }
        let readout = MemoryReadout(temperature: learning.temperature, shrinkage: learning.shrinkage)
        return AutoencoderComponent(
            autoencoder: MemoryAutoencoder(
                encoder: encoder, decoder: decoder, memory: memory,
                readout: readout, standardization: standardization))
    }

    /// Standardization, encoder, decoder and memory.
    public var tensors: [String: Tensor] {
        var all = autoencoder.standardization.tensors
        all.merge(autoencoder.encoder.namedTensors(prefix: "ae.encoder")) { a, _ in a }
        all.merge(autoencoder.decoder.namedTensors(prefix: "ae.decoder")) { a, _ in a }
        all["ae.memory"] = autoencoder.memory
        return all
    }

    /// Residual map, (h * w).
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        autoencoder.residual(teacher: input.teacher, singleThreaded: singleThreaded)
    }

    /// The decoder's last-layer gradient norm of the reconstruction loss.
    public func lossGradientNorm(_ input: ComponentInput) -> Float? {
        autoencoder.lastLayerGradientNorm(teacher: input.teacher)
    }

    struct Fitter: ComponentFitter {
        let settings: DetectorSettings
        var phase: String { "autoencoder" }
        var needs: TrainingNeeds { .teacherFeatures }

        mutating func fit(
            _ data: TrainingData, generator: inout SeededGenerator,
            progress: ProgressHandler
        ) throws -> any ScoringComponent {
            let (standardization, targets) = data.teacherTargets()
            return AutoencoderComponent(
                autoencoder: train(
                    targets: targets, standardization: standardization,
                    settings: settings.learning, seed: settings.seed,
                    progress: progress))
        }
    }

    /// Trains the memory autoencoder on standardized teacher embeddings: image by image,
    /// gradients accumulated over a batch, one AdamW step per batch. Each batch is split in two
    /// fixed halves whose gradients are computed on two threads and summed, and every random
    /// choice comes from generators derived from `seed`, so the same seed gives the same weights.
    static func train(
        targets: [Tensor], standardization: FeatureStandardization,
        settings: LearningSettings, seed: UInt64, progress: ProgressHandler
    ) -> MemoryAutoencoder {
        var generator = SeededGenerator(seed: seed &+ 0xAE00_0000)
        let d = standardization.mean.count
        var encoder = ConvStack(
            inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: settings.latentChannels),
            generator: &generator)
        var decoder = ConvStack(
            inChannels: settings.latentChannels,
            specs: MemoryAutoencoder.decoderSpecs(latent: settings.latentChannels, outChannels: d),
            generator: &generator)
        let n = settings.memorySize, l = settings.latentChannels
        var memory = Tensor(shape: [n, l], storage: (0..<(n * l)).map { _ in generator.nextGaussian() })
        let readout = MemoryReadout(temperature: settings.temperature, shrinkage: settings.shrinkage)
        // Denoising noise comes from a fixed pool read at a random offset per image: it needs
        // to vary, not to be fresh for every value (measured: drawing every value took a third
        // of the autoencoder's training time).
        let poolSize = 1 << 20
        let pool =
            settings.inputNoise > 0 ? (0..<poolSize).map { _ in settings.inputNoise * generator.nextGaussian() } : []
        var adam = AdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        var order = Array(targets.indices)
        let batches = (targets.count + settings.batchSize - 1) / settings.batchSize
        // The targets are at stride 8: each cell stands for 8 x 8 input pixels.
        let cell = PatchFeatureExtractor.stride * PatchFeatureExtractor.stride
        let epochs =
            settings.autoencoderEpochs
            * settings.passesPerEpoch(
                examples: targets.count, pixels: (targets.first?.height ?? 0) * (targets.first?.width ?? 0) * cell)
        let total = batches * epochs
        var step = 0

        struct Partial: @unchecked Sendable {
            var encoder: ConvStack.Gradients, decoder: ConvStack.Gradients, memory: [Float], loss = 0.0
        }
        for _ in 0..<epochs {
            order.shuffle(using: &generator)
            var epochLoss = 0.0
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                let batch = Array(order[start..<min(start + settings.batchSize, order.count)])
                let noiseSeed = generator.next()
                let (enc, dec, mem) = (encoder, decoder, memory)
                let empty = Partial(
                    encoder: .init(for: encoder), decoder: .init(for: decoder),
                    memory: [Float](repeating: 0, count: n * l))
                let partials = inTwoHalves(batch, starting: empty) { half, images, slot in
                    var noise = SeededGenerator(seed: noiseSeed &+ UInt64(half))
                    for i in images {
                        let target = targets[i]
                        var input = target
                        if !pool.isEmpty {
                            let offset = Int(noise.next() % UInt64(poolSize))
                            for j in 0..<input.count { input.storage[j] += pool[(offset + j) & (poolSize - 1)] }
                        }
                        let (z, encoderTape) = enc.trainingForward(input)
                        let (latent, cache) = readout.forward(z, memory: mem)
                        let (output, decoderTape) = dec.trainingForward(latent)
                        let (loss, dy) = meanSquaredError(output, target)
                        slot.pointee.loss += Double(loss + settings.entropyWeight * readout.entropy(cache))
                        guard
                            let dLatent = dec.backward(
                                dy, tape: decoderTape, gradients: &slot.pointee.decoder,
                                needsInputGradient: true)
                        else { continue }
                        let dz = readout.backward(
                            dLatent, memory: mem, cache: cache, entropyWeight: settings.entropyWeight,
                            memoryGradient: &slot.pointee.memory)
                        _ = enc.backward(
                            dz, tape: encoderTape, gradients: &slot.pointee.encoder, needsInputGradient: false)
                    }
                }
                var encoderGradients = partials[0].encoder, decoderGradients = partials[0].decoder
                encoderGradients.add(partials[1].encoder)
                decoderGradients.add(partials[1].decoder)
                let memoryGradient = zip(partials[0].memory, partials[1].memory).map { $0 + $1 }
                epochLoss += partials[0].loss + partials[1].loss
                let scale = 1 / Float(batch.count)
                adam.beginStep()
                adam.update(&encoder, gradients: encoderGradients, scale: scale, slot: 0)
                adam.update(&decoder, gradients: decoderGradients, scale: scale, slot: 1)
                adam.update(2 * 1024, value: &memory.storage, gradient: memoryGradient, scale: scale, decays: false)
                step += 1
                progress(
                    String(format: "autoencoder (loss %.3f)", epochLoss / Double(max(1, start + batch.count))), step,
                    total)
            }
        }
        return MemoryAutoencoder(
            encoder: encoder, decoder: decoder, memory: memory, readout: readout,
            standardization: standardization)
    }
}
