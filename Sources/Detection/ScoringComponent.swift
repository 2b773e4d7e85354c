import Models
import Tensors

/// What a component sees of one image.
public struct ComponentInput: Sendable {
    /// The normalized model input, (1, 3, H, W).
    public let image: Tensor
    /// The teacher's patch embeddings, (1, D, h, w).
    public let teacher: Tensor
    /// The embeddings a patch-distance component compares: `teacher` with position channels
    /// appended when `DetectorSettings.positionWeight` > 0, (1, D', h, w).
    public let embeddings: Tensor

    /// Wraps one image's tensors.
    public init(image: Tensor, teacher: Tensor, embeddings: Tensor) {
        (self.image, self.teacher, self.embeddings) = (image, teacher, embeddings)
    }
}

/// Work on one image that several components share, cut into pieces that run side by side
/// (one core each): the students' forward passes serve both `st` and `variance`. A component
/// may also cut its own large job this way (the Gaussian's grid, in bands).
public protocol SharedWork: Sendable {
    /// Components whose shared work has the same key share one run of it.
    var key: String { get }
    /// Independent pieces.
    var pieces: Int { get }
    /// Runs one piece.
    func piece(_ index: Int, of input: ComponentInput, singleThreaded: Bool) -> Tensor
}

/// A scoring component: one way of turning an image's teacher features into a map of how
/// abnormal each patch is. It is fitted on good images, stored in the model bundle under
/// stable keys, and may learn a marked false alarm. Register a new one in `ComponentRegistry`.
public protocol ScoringComponent: Sendable {
    /// The name `--components` and the bundle use.
    static var name: Component { get }
    /// A few words for `--help` ("memory bank").
    static var summary: String { get }
    /// Whether it is learned by gradient descent over many passes: its map may be standardized
    /// position by position (`LearningSettings.positionalNormalization`).
    static var isLearned: Bool { get }
    /// Whether `learningNormal` can teach it a false alarm without retraining.
    static var learnsFromMarks: Bool { get }
    /// Why these settings cannot work with this component (one line), or nil.
    static func refusal(for settings: DetectorSettings) -> String?
    /// A fitter that builds the component from the training images.
    static func fitter(settings: DetectorSettings, context: TrainingContext) -> any ComponentFitter
    /// The component read from a bundle; throws `BundleError` naming what is missing or malformed.
    static func load(_ bundle: BundleContents, settings: DetectorSettings) throws -> Self

    /// Its tensors, under the keys `load` reads (components may share keys, with equal values).
    var tensors: [String: Tensor] { get }
    /// Work it shares with other components, if any; its outputs come to `coarseMap` as `shared`.
    var sharedWork: (any SharedWork)? { get }
    /// Its raw map on the feature grid, (h * w), row-major; `shared` holds the outputs of
    /// `sharedWork`'s pieces (empty without shared work). `singleThreaded` is true while other
    /// components run on the other cores.
    func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float]
    /// The component with the patches of `inputs` (confirmed normal) learned, so that no patch
    /// of them reaches `rawLimit` on its raw map; nil when it learns only in training.
    func learningNormal(
        from inputs: [ComponentInput], rawLimit: Float,
        settings: DetectorSettings
    ) throws -> (component: Self, added: Int)?
    /// The norm of the gradient of its own training loss on this input with respect to its
    /// last layer's weights (the one-class gradient shift signal); nil when it has none.
    func lossGradientNorm(_ input: ComponentInput) -> Float?
}

extension ScoringComponent {
    /// Fitted in one pass by default.
    public static var isLearned: Bool { false }
    /// Learns only in training by default.
    public static var learnsFromMarks: Bool { false }
    /// Works with any settings by default.
    public static func refusal(for settings: DetectorSettings) -> String? { nil }
    /// No shared work by default.
    public var sharedWork: (any SharedWork)? { nil }
    /// Learns only in training by default.
    public func learningNormal(
        from inputs: [ComponentInput], rawLimit: Float,
        settings: DetectorSettings
    ) throws -> (component: Self, added: Int)? { nil }
    /// No training-loss gradient by default.
    public func lossGradientNorm(_ input: ComponentInput) -> Float? { nil }
    /// The component's name.
    public var name: Component { Self.name }

    /// `learningNormal` behind an existential.
    func learningNormalErased(
        from inputs: [ComponentInput], rawLimit: Float,
        settings: DetectorSettings
    ) throws -> (component: any ScoringComponent, added: Int)? {
        try learningNormal(from: inputs, rawLimit: rawLimit, settings: settings).map { ($0.component, $0.added) }
    }
}
