import Dispatch
import Foundation
import Models
import NeuralNet
import Tensors

/// Hyper-parameters of the learned components (students and memory autoencoder).
public struct LearningSettings: Codable, Equatable, Sendable {
    /// Students in the ensemble.
    public var students = 2
    /// Channels of a student's widest layers.
    public var studentWidth = 64
    /// Passes over the training images for each student.
    public var studentEpochs = 12
    /// Share of the largest squared errors each student trains on (1 = plain MSE; EfficientAD's hard-feature loss).
    public var hardShare: Float = 1
    /// Images per optimizer step.
    public var batchSize = 8
    /// AdamW step size.
    public var learningRate: Float = 1e-3
    /// AdamW decoupled weight decay.
    public var weightDecay: Float = 1e-4
    /// Memory items of the autoencoder.
    public var memorySize = 64
    /// Latent channels of the autoencoder.
    public var latentChannels = 64
    /// Passes over the training images for the autoencoder.
    public var autoencoderEpochs = 20
    /// Softmax temperature of the memory addressing.
    public var temperature: Float = 0.1
    /// Hard-shrinkage threshold as a multiple of 1 / memorySize.
    public var shrinkage: Float = 1
    /// Weight of the addressing-entropy (sparsity) loss.
    public var entropyWeight: Float = 2e-4
    /// Standard deviation of the Gaussian noise added to the autoencoder's input while training (denoising).
    public var inputNoise: Float = 0.1

    /// Standardize each learned map position by position on the held-out good images.
    public var positionalNormalization = false

    /// Defaults.
    public init() {}

    /// Decodes settings; a missing field takes its default.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = LearningSettings()
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        students = try value(.students, d.students)
        studentWidth = try value(.studentWidth, d.studentWidth)
        studentEpochs = try value(.studentEpochs, d.studentEpochs)
        hardShare = try value(.hardShare, d.hardShare)
        batchSize = try value(.batchSize, d.batchSize)
        learningRate = try value(.learningRate, d.learningRate)
        weightDecay = try value(.weightDecay, d.weightDecay)
        memorySize = try value(.memorySize, d.memorySize)
        latentChannels = try value(.latentChannels, d.latentChannels)
        autoencoderEpochs = try value(.autoencoderEpochs, d.autoencoderEpochs)
        temperature = try value(.temperature, d.temperature)
        shrinkage = try value(.shrinkage, d.shrinkage)
        entropyWeight = try value(.entropyWeight, d.entropyWeight)
        inputNoise = try value(.inputNoise, d.inputNoise)
        positionalNormalization = try value(.positionalNormalization, d.positionalNormalization)
    }
}

/// Training loops of the learned components: image by image, gradients accumulated over a
/// batch, one AdamW step per batch. Every random choice comes from generators derived from
/// the settings' seed, and the work split across threads is fixed, so the same seed gives
/// the same weights.
enum NetworkTrainer {
    /// Trains `settings.students` students concurrently (one per core), each on its own
    /// seeded initialization and image order.
    ///
    /// inputs: (1, 3, H, W) normalized images; targets: standardized teacher embeddings.
    static func trainStudents(inputs: [Tensor], targets: [Tensor], settings: LearningSettings, seed: UInt64,
                              progress: ProgressHandler) -> [StudentNetwork] {
        let k = settings.students
        var results = [StudentNetwork?](repeating: nil, count: k)
        let lock = NSLock()
        let batches = (inputs.count + settings.batchSize - 1) / settings.batchSize
        let total = batches * settings.studentEpochs
        DispatchQueue.concurrentPerform(iterations: k) { index in
            var generator = SeededGenerator(seed: seed &+ 0x5EED_0000 &+ UInt64(index) &* 0x9E37_79B9)
            var student = StudentNetwork(width: settings.studentWidth, outChannels: PatchFeatureExtractor.dimension,
                                         generator: &generator)
            var adam = AdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay)
            var gradients = StudentNetwork.Gradients(for: student)
            var order = Array(inputs.indices)
            var step = 0
            for _ in 0..<settings.studentEpochs {
                order.shuffle(using: &generator)
                var epochLoss = 0.0
                for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                    let batch = order[start..<min(start + settings.batchSize, order.count)]
                    gradients.zero()
                    for i in batch {
                        let (output, tape) = student.trainingForward(inputs[i])
                        let (loss, dy) = meanSquaredError(output, targets[i], hardShare: settings.hardShare)
                        epochLoss += Double(loss)
                        student.backward(dy, tape: tape, gradients: &gradients)
                    }
                    adam.beginStep()
                    adam.update(&student, gradients: gradients, scale: 1 / Float(batch.count))
                    step += 1
                    if index == 0 {
                        progress(String(format: "students (loss %.3f)", epochLoss / Double(max(1, start + batch.count))), step, total)
                    }
                }
            }
            lock.lock()
            results[index] = student
            lock.unlock()
        }
        return results.compactMap { $0 }
    }

    /// Trains the memory autoencoder on standardized teacher embeddings; each batch is split
    /// in two fixed halves whose gradients are computed on two threads and summed.
    static func trainAutoencoder(targets: [Tensor], standardization: FeatureStandardization,
                                 settings: LearningSettings, seed: UInt64, progress: ProgressHandler) -> MemoryAutoencoder {
        var generator = SeededGenerator(seed: seed &+ 0xAE00_0000)
        let d = PatchFeatureExtractor.dimension
        var encoder = ConvStack(inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: settings.latentChannels),
                                generator: &generator)
        var decoder = ConvStack(inChannels: settings.latentChannels,
                                specs: MemoryAutoencoder.decoderSpecs(latent: settings.latentChannels, outChannels: d),
                                generator: &generator)
        let n = settings.memorySize, l = settings.latentChannels
        var memory = Tensor(shape: [n, l], storage: (0..<(n * l)).map { _ in generator.nextGaussian() })
        let readout = MemoryReadout(temperature: settings.temperature, shrinkage: settings.shrinkage)
        // Denoising noise comes from a fixed pool read at a random offset per image: it needs
        // to vary, not to be fresh for every value (measured: drawing every value took a third
        // of the autoencoder's training time).
        let poolSize = 1 << 20
        let pool = settings.inputNoise > 0 ? (0..<poolSize).map { _ in settings.inputNoise * generator.nextGaussian() } : []
        var adam = AdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay)
        var order = Array(targets.indices)
        let batches = (targets.count + settings.batchSize - 1) / settings.batchSize
        let total = batches * settings.autoencoderEpochs
        var step = 0

        struct Partial: @unchecked Sendable {
            var encoder: ConvStack.Gradients, decoder: ConvStack.Gradients, memory: [Float], loss = 0.0
        }
        for _ in 0..<settings.autoencoderEpochs {
            order.shuffle(using: &generator)
            var epochLoss = 0.0
            for start in stride(from: 0, to: order.count, by: settings.batchSize) {
                let batch = Array(order[start..<min(start + settings.batchSize, order.count)])
                let noiseSeed = generator.next()
                let halves = [Array(batch.prefix((batch.count + 1) / 2)), Array(batch.dropFirst((batch.count + 1) / 2))]
                var partials = [Partial](repeating: Partial(encoder: .init(for: encoder), decoder: .init(for: decoder),
                                                            memory: [Float](repeating: 0, count: n * l)), count: 2)
                let (enc, dec, mem) = (encoder, decoder, memory)
                partials.withUnsafeMutableBufferPointer { buffer in
                    let out = UnsafeSendable(buffer.baseAddress)
                    DispatchQueue.concurrentPerform(iterations: 2) { half in
                        guard let slot = out.pointer?.advanced(by: half) else { return }
                        var noise = SeededGenerator(seed: noiseSeed &+ UInt64(half))
                        for i in halves[half] {
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
                            guard let dLatent = dec.backward(dy, tape: decoderTape, gradients: &slot.pointee.decoder,
                                                             needsInputGradient: true) else { continue }
                            let dz = readout.backward(dLatent, memory: mem, cache: cache, entropyWeight: settings.entropyWeight,
                                                      memoryGradient: &slot.pointee.memory)
                            _ = enc.backward(dz, tape: encoderTape, gradients: &slot.pointee.encoder, needsInputGradient: false)
                        }
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
                progress(String(format: "autoencoder (loss %.3f)", epochLoss / Double(max(1, start + batch.count))), step, total)
            }
        }
        return MemoryAutoencoder(encoder: encoder, decoder: decoder, memory: memory, readout: readout,
                                 standardization: standardization)
    }
}
