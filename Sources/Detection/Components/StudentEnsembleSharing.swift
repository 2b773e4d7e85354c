import Dispatch
import Foundation
import Models
import NeuralNet
import Tensors

/// A component that reads the student ensemble (`st`, `variance`): the students are trained
/// once, stored once and run once per image for all of them.
public protocol StudentReadingComponent: ScoringComponent {
    /// The students.
    var ensemble: StudentEnsemble { get }
    /// Wraps trained students.
    init(ensemble: StudentEnsemble)
}

extension StudentReadingComponent {
    /// Trained by gradient descent.
    public static var isLearned: Bool { true }

    /// Students need one fixed input size.
    public static func refusal(for settings: DetectorSettings) -> String? {
        settings.fixedSizeRefusal(name)
    }

    /// Trains the students (once, whichever component asks first).
    public static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter {
        StudentFitter<Self>(settings: settings)
    }

    /// The students of a bundle.
    public static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> Self {
        Self(ensemble: try StudentEnsemble.load(bundle, settings: settings))
    }

    /// The students' tensors.
    public var tensors: [String: Tensor] { ensemble.tensors }
    /// The students' forward passes.
    public var sharedWork: (any SharedWork)? { ensemble }
}

/// Trains the ensemble for one student-reading component.
struct StudentFitter<C: StudentReadingComponent>: ComponentFitter {
    let settings: DetectorSettings
    var phase: String { "students" }
    var needs: TrainingNeeds { [.inputs, .teacherFeatures] }

    mutating func fit(
        _ data: TrainingData, generator: inout SeededGenerator,
        progress: ProgressHandler
    ) throws -> any ScoringComponent {
        C(ensemble: StudentEnsemble.trained(data, settings: settings, progress: progress))
    }
}

extension StudentEnsemble: SharedWork {
    /// One run of the students serves every component that reads them.
    public var key: String { "students" }
    /// One piece per student.
    public var pieces: Int { students.count }

    /// Student `index`'s output for the image as (h * w, D) pixel rows (`pixelRows`).
    public func piece(_ index: Int, of input: ComponentInput, singleThreaded: Bool) -> Tensor {
        Self.pixelRows(students[index].forward(ChannelsLastBatch(input.image), singleThreaded: singleThreaded))
    }

    /// The ensemble of a training, trained the first time a component asks for it.
    static func trained(_ data: TrainingData, settings: DetectorSettings, progress: ProgressHandler) -> StudentEnsemble
    {
        data.shared("students") {
            let (standardization, targets) = data.teacherTargets()
            let students = trainStudents(
                inputs: data.inputs, targets: targets, settings: settings.learning,
                seed: settings.seed, progress: progress)
            return StudentEnsemble(students: students, standardization: standardization)
        }
    }

    /// The ensemble of a bundle: `teacher.mean`/`teacher.scale` (D) and `student.K.*`.
    static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> StudentEnsemble {
        try bundle.shared("students") {
            let learning = settings.learning, d = settings.featureDimension
            guard (1...16).contains(learning.students), learning.studentWidth >= 4, learning.studentWidth % 4 == 0
            else {
                throw BundleError("student settings are out of range")
            }
            let standardization = try FeatureStandardization.load(bundle, dimension: d)
            let students = try (0..<learning.students).map { k in
                guard
                    let s = StudentNetwork(
                        width: learning.studentWidth, outChannels: d, tensors: bundle.tensors,
                        prefix: "student.\(k)")
                else {
                    throw BundleError("student \(k) tensors are missing or have the wrong shape")
                }
                return s
            }
            return StudentEnsemble(students: students, standardization: standardization)
        }
    }

    /// The standardization and every student's tensors.
    var tensors: [String: Tensor] {
        var all = standardization.tensors
        for (k, student) in students.enumerated() {
            all.merge(student.namedTensors(prefix: "student.\(k)")) { a, _ in a }
        }
        return all
    }

    /// Trains `settings.students` students concurrently (one per core), each on its own seeded
    /// initialization and image order: image by image, gradients accumulated over a batch, one
    /// AdamW step per batch. The split across threads is fixed, so the same seed gives the
    /// same weights.
    ///
    /// inputs: (1, 3, H, W) normalized images; targets: standardized teacher embeddings.
    static func trainStudents(
        inputs: [Tensor], targets: [Tensor], settings: LearningSettings, seed: UInt64,
        progress: ProgressHandler
    ) -> [StudentNetwork] {
        let k = settings.students
        var results = [StudentNetwork?](repeating: nil, count: k)
        let lock = NSLock()
        let batches = (inputs.count + settings.batchSize - 1) / settings.batchSize
        let epochs =
            settings.studentEpochs
            * settings.passesPerEpoch(
                examples: inputs.count, pixels: (inputs.first?.height ?? 0) * (inputs.first?.width ?? 0))
        let total = batches * epochs
        DispatchQueue.concurrentPerform(iterations: k) { index in
            var generator = SeededGenerator(seed: seed &+ 0x5EED_0000 &+ UInt64(index) &* 0x9E37_79B9)
            var student = StudentNetwork(
                width: settings.studentWidth, outChannels: targets.first?.channels ?? PatchFeatureExtractor.dimension,
                generator: &generator)
            var adam = AdamW(learningRate: settings.learningRate, weightDecay: settings.weightDecay)
            var gradients = StudentNetwork.Gradients(for: student)
            var order = Array(inputs.indices)
            var step = 0
            for _ in 0..<epochs {
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
                        let mean = epochLoss / Double(max(1, start + batch.count))
                        progress(String(format: "students (loss %.3f)", mean), step, total)
                    }
                }
            }
            lock.lock()
            results[index] = student
            lock.unlock()
        }
        return results.compactMap { $0 }
    }
}

extension FeatureStandardization {
    /// `teacher.mean` and `teacher.scale`, the key the learned components share.
    var tensors: [String: Tensor] {
        [
            "teacher.mean": Tensor(shape: [mean.count], storage: mean),
            "teacher.scale": Tensor(shape: [scale.count], storage: scale),
        ]
    }

    /// The standardization stored in a bundle, of `d`-channel embeddings.
    static func load(_ bundle: BundleContents, dimension d: Int) throws -> FeatureStandardization {
        guard let mean = bundle.tensors["teacher.mean"], let scale = bundle.tensors["teacher.scale"], mean.count == d,
            scale.count == d, scale.storage.allSatisfy({ $0 > 0 })
        else {
            throw BundleError("teacher standardization tensors are missing or malformed")
        }
        return FeatureStandardization(mean: mean.storage, scale: scale.storage)
    }
}
