import Models
import Tensors

extension Component {
    /// Teacher-student discrepancy.
    public static let st = StudentDiscrepancyComponent.name
}

/// `st`: the mean squared discrepancy, per patch, between the frozen teacher's standardized
/// embeddings and students trained to imitate them on good images only (Uninformed Students,
/// Bergmann et al., CVPR 2020; EfficientAD, Batzner et al., WACV 2024).
public struct StudentDiscrepancyComponent: StudentReadingComponent {
    /// The name.
    public static let name = Component(declaring: "st")
    /// For `--help`.
    public static let summary = "teacher-student discrepancy"

    /// The students (shared with `variance`).
    public let ensemble: StudentEnsemble

    /// Wraps trained students.
    public init(ensemble: StudentEnsemble) { self.ensemble = ensemble }

    /// The students' last-layer gradient norm of their training loss (`stgrad`).
    public func lossGradientNorm(_ input: ComponentInput) -> Float? {
        ensemble.lastLayerGradientNorm(input: input.image, teacher: input.teacher)
    }

    /// Discrepancy map, (h * w), from the students' outputs.
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        ensemble.maps(outputs: shared, teacher: input.teacher).discrepancy
    }
}
