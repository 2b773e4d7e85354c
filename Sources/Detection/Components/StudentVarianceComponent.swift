import Models
import Tensors

extension Component {
    /// Disagreement among the students.
    public static let variance = StudentVarianceComponent.name
}

/// `variance`: the students' predictive variance per patch, averaged over channels: where
/// students trained on good images disagree, the input is unlike their training data
/// (Uninformed Students, Bergmann et al., CVPR 2020).
public struct StudentVarianceComponent: StudentReadingComponent {
    /// The name.
    public static let name = Component(declaring: "variance")
    /// For `--help`.
    public static let summary = "student disagreement"

    /// The students (shared with `st`).
    public let ensemble: StudentEnsemble

    /// Wraps trained students.
    public init(ensemble: StudentEnsemble) { self.ensemble = ensemble }

    /// Variance map, (h * w), from the students' outputs.
    public func coarseMap(_ input: ComponentInput, shared: [Tensor], singleThreaded: Bool) -> [Float] {
        ensemble.maps(outputs: shared, teacher: input.teacher).variance
    }
}
