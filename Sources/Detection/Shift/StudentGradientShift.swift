/// `stgrad`: the one-class gradient signal of the students: the norm of the gradient of their
/// own training loss on the image (the mean squared error to the standardized teacher) with
/// respect to each student's last layer (`StudentEnsemble.lastLayerGradientNorm`). Fitted only
/// for models with the `st` component; nothing to fit.
public struct StudentGradientShift: ComponentGradientShift {
    /// The name.
    public static let name = "stgrad"
    /// A few words.
    public static let summary = "gradient norm of the students' loss"
    /// Reads the students' gradient.
    public static var gradientComponent: Component? { StudentDiscrepancyComponent.name }

    /// The detector.
    public init() {}
}
