import Models

/// Hyper-parameters of the learned components (students, memory autoencoder, adversarial model).
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

    /// Most passes over a small training set that one epoch of the students or the
    /// autoencoder makes: as many as it takes to see `minimumEpochPixels`, up to this (1: one
    /// pass, as bundles from before it have). Measured on the small-defect benchmark (25
    /// training images of 416x1024 pixels, default preset): 4 passes, pixel AUROC 0.957 ->
    /// 0.970, AUPRO 0.988 -> 0.991, training 100 -> 300 s.
    public var maximumEpochPasses = 4
    /// Model-input pixels an epoch of the students or the autoencoder passes over at least
    /// (within `maximumEpochPasses`): 640 images of 256x256, so magnetic_tile's 648 training
    /// images pass once, and a small set is not trained in a handful of steps.
    public static let minimumEpochPixels = 640 * 256 * 256

    /// Passes per epoch over `count` examples of `pixels` model-input pixels each.
    public func passesPerEpoch(examples count: Int, pixels: Int) -> Int {
        let seen = max(1, count * pixels)
        return min(max(1, maximumEpochPasses), max(1, (Self.minimumEpochPixels + seen - 1) / seen))
    }

    /// Passes over the training images of the adversarial model's phase 1 (generator and
    /// discriminator against each other); with fewer than 640 images, each epoch passes over
    /// them as many times as it takes to see 640.
    public var ganEpochs = 12
    /// The phase 1 epoch after which the generator is kept as the "old", low-quality one.
    public var ganOldEpoch = 1
    /// Passes of phase 2 (generator frozen, the discriminator learns to be the classifier;
    /// 0 = phase 1 only).
    public var ganDiscriminatorEpochs = 4
    /// Latent channels of the adversarial model's generator.
    public var ganLatentChannels = 64
    /// Channels of the discriminator's layers.
    public var ganDiscriminatorWidth = 128
    /// AdamW step size of the adversarial model's discriminator.
    public var ganLearningRate: Float = 5e-4
    /// AdamW step size of its generator (measured on magnetic_tile, three seeds, 12 phase-1
    /// epochs: 1e-3 raised the AUPRO of the combined map and of the discriminator alone; at the
    /// discriminator's 5e-4, seed 2 stayed below `ae`).
    public var ganGeneratorLearningRate: Float = 1e-3
    /// Weight of the adversarial term in the generator's loss (the reconstruction term weighs 1).
    public var ganAdversarialWeight: Float = 0.1
    /// One-sided label smoothing: real inputs are labelled 1 - this (Salimans et al. 2016).
    public var ganLabelSmoothing: Float = 0.1
    /// What phase 2 shows the discriminator as abnormal.
    public var ganNegatives = AdversarialOneClass.Negatives.perturbed
    /// Middle standard deviation of the noise of the perturbed negatives, in units of the
    /// standardized features; each negative draws its own from a quarter to 4 times this.
    public var ganPerturbation: Float = 8
    /// Confine each abnormal input of phase 2 to a random rectangle of cells, labelled cell by
    /// cell, instead of the whole map (OGNet judged whole images; a map needs local negatives).
    public var ganRegionalAnomalies = true
    /// Spectrally normalize the discriminator (Miyato et al. 2018).
    public var ganSpectralNorm = true
    /// What the adversarial model's map reads.
    public var ganMap = AdversarialOneClass.MapSource.combined
    /// Weight of the reconstruction residual against -log D(x) in the `combined` map, each in
    /// units of its mean over the training images (measured on magnetic_tile: 0.5 and 1 gave
    /// the same AUPRO, 0.5 the better image AUROC; 0.1 and 0.25 less AUPRO).
    public var ganResidualWeight: Float = 0.5

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
        // Bundles from before the floor trained one pass per epoch.
        maximumEpochPasses = try value(.maximumEpochPasses, 1)
        ganEpochs = try value(.ganEpochs, d.ganEpochs)
        ganOldEpoch = try value(.ganOldEpoch, d.ganOldEpoch)
        ganDiscriminatorEpochs = try value(.ganDiscriminatorEpochs, d.ganDiscriminatorEpochs)
        ganLatentChannels = try value(.ganLatentChannels, d.ganLatentChannels)
        ganDiscriminatorWidth = try value(.ganDiscriminatorWidth, d.ganDiscriminatorWidth)
        ganLearningRate = try value(.ganLearningRate, d.ganLearningRate)
        // Gan bundles from before the generator had its own rate trained it at the discriminator's.
        ganGeneratorLearningRate = try value(
            .ganGeneratorLearningRate, c.contains(.ganLearningRate) ? ganLearningRate : d.ganGeneratorLearningRate)
        ganAdversarialWeight = try value(.ganAdversarialWeight, d.ganAdversarialWeight)
        ganLabelSmoothing = try value(.ganLabelSmoothing, d.ganLabelSmoothing)
        ganNegatives = try value(.ganNegatives, d.ganNegatives)
        ganPerturbation = try value(.ganPerturbation, d.ganPerturbation)
        ganRegionalAnomalies = try value(.ganRegionalAnomalies, d.ganRegionalAnomalies)
        ganSpectralNorm = try value(.ganSpectralNorm, d.ganSpectralNorm)
        ganMap = try value(.ganMap, d.ganMap)
        ganResidualWeight = try value(.ganResidualWeight, d.ganResidualWeight)
    }

    /// Encodes every field.
    public func encode(to encoder: Encoder) throws { try encode(to: encoder, includingAdversarial: true) }

    /// Encodes the fields, the `gan` component's only when `includingAdversarial`: a model
    /// without that component keeps the bytes it had before the component existed.
    func encode(to encoder: Encoder, includingAdversarial: Bool) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(students, forKey: .students)
        try c.encode(studentWidth, forKey: .studentWidth)
        try c.encode(studentEpochs, forKey: .studentEpochs)
        try c.encode(hardShare, forKey: .hardShare)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(learningRate, forKey: .learningRate)
        try c.encode(weightDecay, forKey: .weightDecay)
        try c.encode(memorySize, forKey: .memorySize)
        try c.encode(latentChannels, forKey: .latentChannels)
        try c.encode(autoencoderEpochs, forKey: .autoencoderEpochs)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(shrinkage, forKey: .shrinkage)
        try c.encode(entropyWeight, forKey: .entropyWeight)
        try c.encode(inputNoise, forKey: .inputNoise)
        try c.encode(positionalNormalization, forKey: .positionalNormalization)
        // Only when it changes anything, so bundles written again keep the bytes they had.
        if maximumEpochPasses != 1 { try c.encode(maximumEpochPasses, forKey: .maximumEpochPasses) }
        if includingAdversarial {
            try c.encode(ganEpochs, forKey: .ganEpochs)
            try c.encode(ganOldEpoch, forKey: .ganOldEpoch)
            try c.encode(ganDiscriminatorEpochs, forKey: .ganDiscriminatorEpochs)
            try c.encode(ganLatentChannels, forKey: .ganLatentChannels)
            try c.encode(ganDiscriminatorWidth, forKey: .ganDiscriminatorWidth)
            try c.encode(ganLearningRate, forKey: .ganLearningRate)
            try c.encode(ganGeneratorLearningRate, forKey: .ganGeneratorLearningRate)
            try c.encode(ganAdversarialWeight, forKey: .ganAdversarialWeight)
            try c.encode(ganLabelSmoothing, forKey: .ganLabelSmoothing)
            try c.encode(ganNegatives, forKey: .ganNegatives)
            try c.encode(ganPerturbation, forKey: .ganPerturbation)
            try c.encode(ganRegionalAnomalies, forKey: .ganRegionalAnomalies)
            try c.encode(ganSpectralNorm, forKey: .ganSpectralNorm)
            try c.encode(ganMap, forKey: .ganMap)
            try c.encode(ganResidualWeight, forKey: .ganResidualWeight)
        }
    }

    enum CodingKeys: String, CodingKey {
        case students, studentWidth, studentEpochs, hardShare, batchSize, learningRate, weightDecay, memorySize
        case latentChannels, autoencoderEpochs, temperature, shrinkage, entropyWeight, inputNoise
        case positionalNormalization, maximumEpochPasses
        case ganEpochs, ganOldEpoch, ganDiscriminatorEpochs, ganLatentChannels, ganDiscriminatorWidth, ganLearningRate
        case ganAdversarialWeight, ganLabelSmoothing, ganNegatives, ganPerturbation, ganRegionalAnomalies
        case ganSpectralNorm, ganMap, ganResidualWeight, ganGeneratorLearningRate
    }
}
