import Models
import Tensors

/// What a fitter needs kept of the training images after the pass over them.
public struct TrainingNeeds: OptionSet, Sendable {
    /// The raw value.
    public let rawValue: Int
    /// Creates needs from a raw value.
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The normalized model inputs (for networks that see the image).
    public static let inputs = TrainingNeeds(rawValue: 1)
    /// The teacher features, standardized per channel (regression targets).
    public static let teacherFeatures = TrainingNeeds(rawValue: 2)
}

/// Builds one component from the training images: sees each image once, in training order,
/// then fits (in one step or by gradient training with progress).
public protocol ComponentFitter {
    /// Name of the training phase it times ("coreset", "students", ...).
    var phase: String { get }
    /// What it needs kept of the images for `fit`.
    var needs: TrainingNeeds { get }
    /// Sees one training image. Draws from `generator` only what depends on the image.
    mutating func observe(_ input: ComponentInput, generator: inout SeededGenerator)
    /// Fits the component after the pass.
    mutating func fit(
        _ data: TrainingData, generator: inout SeededGenerator,
        progress: ProgressHandler
    ) throws -> any ScoringComponent
}

extension ComponentFitter {
    /// Nothing kept by default.
    public var needs: TrainingNeeds { [] }
    /// Ignores the images by default.
    public mutating func observe(_ input: ComponentInput, generator: inout SeededGenerator) {}
}

/// What every fitter is told before the pass over the training images.
public struct TrainingContext: Sendable {
    /// Images in the training share (the calibration share held out).
    public var trainingImages: Int
    /// A seeded permutation of the teacher's channels, drawn once per training, from which a
    /// component takes a random channel subset (the positional Gaussian's).
    public var channelPermutation: [Int]
}

/// The training images' tensors kept for fitters that pass over them many times, and parts
/// that several components share (one student ensemble for `st` and `variance`).
public final class TrainingData: SharedParts {
    /// Normalized model inputs, (1, 3, H, W) each (kept when a fitter needs `.inputs`).
    public internal(set) var inputs: [Tensor] = []
    /// Teacher features as extracted, (1, D, h, w) each, until first standardized.
    var rawTeacher: [Tensor] = []
    private var standardized: (FeatureStandardization, [Tensor])?

    /// The per-channel standardization of the teacher features and the standardized features.
    public func teacherTargets() -> (standardization: FeatureStandardization, targets: [Tensor]) {
        if let standardized { return standardized }
        let standardization = FeatureStandardization(of: rawTeacher)
        let result = (standardization, rawTeacher.map { standardization.apply($0) })
        rawTeacher = []
        standardized = result
        return result
    }

    /// Keeps `tensor` in `slot` of `list` (the next one, or one to replace).
    static func keep(_ tensor: Tensor, in list: inout [Tensor], at slot: Int) {
        if slot < list.count { list[slot] = tensor } else { list.append(tensor) }
    }

    /// Drops what no remaining fitter needs.
    func release(keeping needs: TrainingNeeds) {
        if !needs.contains(.inputs) { inputs = [] }
        if !needs.contains(.teacherFeatures) { (rawTeacher, standardized) = ([], nil) }
    }
}
