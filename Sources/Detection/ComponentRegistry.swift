/// Every scoring component this build knows, in the order `--help` lists them. Adding a
/// component is one type in `Components/` and one line here.
public enum ComponentRegistry {
    /// The component types.
    public static let types: [any ScoringComponent.Type] = [
        MemoryBankComponent.self,
        GaussianComponent.self,
        StudentDiscrepancyComponent.self,
        StudentVarianceComponent.self,
        AutoencoderComponent.self,
        AdversarialComponent.self,
    ]

    /// The type registered under `name`.
    public static func type(named name: String) -> (any ScoringComponent.Type)? {
        types.first { $0.name.rawValue == name }
    }

    /// Each name with its summary, for `--help`: "knn (memory bank), gaussian (...)".
    public static var summaries: String { types.map { "\($0.name) (\($0.summary))" }.joined(separator: ", ") }

    /// The registered names, comma-separated ("knn, gaussian, ...").
    public static var namesList: String { types.map { $0.name.rawValue }.joined(separator: ", ") }
}
