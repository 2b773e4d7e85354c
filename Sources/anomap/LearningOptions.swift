import ArgumentParser
import Batch
import Detection

/// Hyper-parameters of the learned components (st, variance, ae), shared by `train` and `eval --train`.
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

    func validate() throws {
        guard (1...16).contains(students) else { throw ValidationError("--students must be in 1...16") }
        guard (4...512).contains(studentWidth), studentWidth % 4 == 0 else {
            throw ValidationError("--student-width must be a multiple of 4 in 4...512")
        }
        guard studentEpochs >= 1, aeEpochs >= 1 else {
            throw ValidationError("--student-epochs and --ae-epochs must be positive")
        }
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
        return s
    }
}
