import ArgumentParser
import Batch
import Detection
import Models

extension AdversarialOneClass.MapSource: ExpressibleByArgument {}
extension AdversarialOneClass.Negatives: ExpressibleByArgument {}

/// Hyper-parameters of the learned components (st, variance, ae, gan), shared by `train` and `eval --train`.
struct LearningOptions: ParsableArguments {
    @Option(name: .long, help: "Students in the teacher-student ensemble.")
    var students = LearningSettings().students

    @Option(name: .long, help: "Channels of a student's widest layers (multiple of 4).")
    var studentWidth = LearningSettings().studentWidth

    @Option(name: .long, help: "Training passes over the good images for each student.")
    var studentEpochs = LearningSettings().studentEpochs

    @Option(
        name: .long,
        help: "Share of the largest errors a student trains on (1: plain MSE; e.g. 0.1: hard-feature loss).")
    var hardShare = LearningSettings().hardShare

    @Option(name: .long, help: "Training passes over the good images for the autoencoder.")
    var aeEpochs = LearningSettings().autoencoderEpochs

    @Option(
        name: .long,
        help:
            "Most passes over a small training set per epoch of the students and the autoencoder: as many as it takes to see 640 images of 256x256 pixels, up to this (1: one pass)."
    )
    var maxEpochPasses = LearningSettings().maximumEpochPasses

    @Option(name: .long, help: "Memory items of the autoencoder.")
    var memorySize = LearningSettings().memorySize

    @Option(name: .long, help: "Latent channels of the autoencoder.")
    var latentChannels = LearningSettings().latentChannels

    @Option(name: .long, help: "Softmax temperature of the memory addressing (smaller: sharper).")
    var temperature = LearningSettings().temperature

    @Option(name: .long, help: "Hard-shrinkage threshold of the memory addressing, in units of 1/memory-size (0: off).")
    var shrinkage = LearningSettings().shrinkage

    @Option(name: .long, help: "Weight of the addressing-entropy (sparsity) loss (0: off).")
    var entropyWeight = LearningSettings().entropyWeight

    @Option(name: .long, help: "Std. dev. of the noise added to the autoencoder's input in training (0: off).")
    var inputNoise = LearningSettings().inputNoise

    @Option(name: .long, help: "AdamW learning rate.")
    var learningRate = LearningSettings().learningRate

    @Option(name: .long, help: "AdamW decoupled weight decay (0: off).")
    var weightDecay = LearningSettings().weightDecay

    @Option(name: .long, help: "Images per optimizer step.")
    var batchSize = LearningSettings().batchSize

    @Flag(
        name: .long,
        help:
            "Standardize the learned maps position by position on the held-out good images (helps a learned component alone at image level; measured worse fused)."
    )
    var positionalNormalization = false

    @Option(name: .long, help: "Phase 1 passes of the gan component (generator against discriminator).")
    var ganEpochs = LearningSettings().ganEpochs

    @Option(
        name: .long, help: "The phase 1 epoch whose generator the gan component keeps as its low-quality 'old' one.")
    var ganOldEpoch = LearningSettings().ganOldEpoch

    @Option(name: .long, help: "Phase 2 passes of the gan component (discriminator alone; 0: phase 1 only).")
    var ganDiscriminatorEpochs = LearningSettings().ganDiscriminatorEpochs

    @Option(name: .long, help: "Latent channels of the gan component's generator.")
    var ganLatentChannels = LearningSettings().ganLatentChannels

    @Option(name: .long, help: "Channels of the gan component's discriminator layers.")
    var ganDiscriminatorWidth = LearningSettings().ganDiscriminatorWidth

    @Option(name: .long, help: "AdamW learning rate of the gan component's discriminator.")
    var ganLearningRate = LearningSettings().ganLearningRate

    @Option(name: .long, help: "AdamW learning rate of the gan component's generator.")
    var ganGeneratorLearningRate = LearningSettings().ganGeneratorLearningRate

    @Option(name: .long, help: "Weight of the adversarial term in the gan generator's loss (reconstruction: 1).")
    var ganAdversarialWeight = LearningSettings().ganAdversarialWeight

    @Option(name: .long, help: "One-sided label smoothing of the gan discriminator: real is labelled 1 minus this.")
    var ganLabelSmoothing = LearningSettings().ganLabelSmoothing

    @Option(
        name: .long,
        help: ArgumentHelp(
            "What gan phase 2 shows as abnormal: noise-perturbed features, OGNet's old reconstructions and input blends, or both.",
            valueName: AdversarialOneClass.Negatives.allCases.map(\.rawValue).joined(separator: "|")))
    var ganNegatives = LearningSettings().ganNegatives

    @Option(
        name: .long,
        help: "Middle std. dev. of the perturbed negatives' noise (each draws from a quarter to 4 times this).")
    var ganPerturbation = LearningSettings().ganPerturbation

    @Flag(name: .long, help: "Spread each abnormal input of gan phase 2 over the whole map, as OGNet does for images.")
    var ganWholeMapAnomalies = false

    @Flag(name: .long, help: "Train the gan discriminator without spectral normalization.")
    var noGanSpectralNorm = false

    @Option(
        name: .long,
        help: ArgumentHelp(
            "What the gan map reads: the discriminator on the reconstruction or on the input, the reconstruction residual, or the discriminator on the input plus the residual.",
            valueName: AdversarialOneClass.MapSource.allCases.map(\.rawValue).joined(separator: "|")))
    var ganMap = LearningSettings().ganMap

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Weight of the residual against the discriminator in the combined gan map, "
                + "each in units of its mean on the good images."))
    var ganResidualWeight = LearningSettings().ganResidualWeight

    func validate() throws {
        guard (1...16).contains(students) else { throw ValidationError("--students must be in 1...16") }
        guard (4...512).contains(studentWidth), studentWidth % 4 == 0 else {
            throw ValidationError("--student-width must be a multiple of 4 in 4...512")
        }
        guard studentEpochs >= 1, aeEpochs >= 1 else {
            throw ValidationError("--student-epochs and --ae-epochs must be positive")
        }
        guard (1...64).contains(maxEpochPasses) else { throw ValidationError("--max-epoch-passes must be in 1...64") }
        guard hardShare > 0, hardShare <= 1 else { throw ValidationError("--hard-share must be in (0, 1]") }
        guard (1...65536).contains(memorySize), (1...1024).contains(latentChannels) else {
            throw ValidationError("--memory-size must be in 1...65536 and --latent-channels in 1...1024")
        }
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be positive") }
        guard shrinkage >= 0, shrinkage.isFinite, entropyWeight >= 0, entropyWeight.isFinite, inputNoise >= 0,
            inputNoise.isFinite,
            weightDecay >= 0, weightDecay.isFinite
        else {
            throw ValidationError("--shrinkage, --entropy-weight, --input-noise and --weight-decay must be >= 0")
        }
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be positive") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be positive") }
        guard ganEpochs >= 1, (1...ganEpochs).contains(ganOldEpoch), ganDiscriminatorEpochs >= 0 else {
            throw ValidationError(
                "--gan-epochs must be positive, --gan-old-epoch in 1...--gan-epochs, --gan-discriminator-epochs >= 0")
        }
        guard (1...1024).contains(ganLatentChannels), (1...1024).contains(ganDiscriminatorWidth) else {
            throw ValidationError("--gan-latent-channels and --gan-discriminator-width must be in 1...1024")
        }
        guard ganLearningRate > 0, ganLearningRate.isFinite, ganGeneratorLearningRate > 0,
            ganGeneratorLearningRate.isFinite, ganAdversarialWeight >= 0, ganAdversarialWeight.isFinite,
            ganLabelSmoothing >= 0, ganLabelSmoothing < 0.5, ganPerturbation > 0, ganPerturbation.isFinite,
            ganResidualWeight > 0, ganResidualWeight.isFinite
        else {
            throw ValidationError(
                "--gan-learning-rate and --gan-generator-learning-rate must be positive, --gan-adversarial-weight >= 0, --gan-label-smoothing in [0, 0.5), --gan-perturbation > 0, --gan-residual-weight > 0"
            )
        }
    }

    var settings: LearningSettings {
        var s = LearningSettings()
        s.students = students
        s.studentWidth = studentWidth
        s.studentEpochs = studentEpochs
        s.hardShare = hardShare
        s.autoencoderEpochs = aeEpochs
        s.memorySize = memorySize
        s.latentChannels = latentChannels
        s.temperature = temperature
        s.shrinkage = shrinkage
        s.entropyWeight = entropyWeight
        s.inputNoise = inputNoise
        s.learningRate = learningRate
        s.weightDecay = weightDecay
        s.batchSize = batchSize
        s.positionalNormalization = positionalNormalization
        s.maximumEpochPasses = maxEpochPasses
        s.ganEpochs = ganEpochs
        s.ganOldEpoch = ganOldEpoch
        s.ganDiscriminatorEpochs = ganDiscriminatorEpochs
        s.ganLatentChannels = ganLatentChannels
        s.ganDiscriminatorWidth = ganDiscriminatorWidth
        s.ganLearningRate = ganLearningRate
        s.ganGeneratorLearningRate = ganGeneratorLearningRate
        s.ganAdversarialWeight = ganAdversarialWeight
        s.ganLabelSmoothing = ganLabelSmoothing
        s.ganNegatives = ganNegatives
        s.ganPerturbation = ganPerturbation
        s.ganRegionalAnomalies = !ganWholeMapAnomalies
        s.ganSpectralNorm = !noGanSpectralNorm
        s.ganMap = ganMap
        s.ganResidualWeight = ganResidualWeight
        return s
    }
}
