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
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
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
