import Foundation

/// The name of a scoring component, as `--components` and the model bundle spell it ("knn").
///
/// Only registered names exist (`ComponentRegistry`): decoding or parsing another name fails,
/// so a bundle naming a component this build lacks is refused rather than half loaded.
public struct Component: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    /// The name.
    public let rawValue: String

    /// The component of that name, if one is registered.
    public init?(rawValue: String) {
        guard ComponentRegistry.type(named: rawValue) != nil else { return nil }
        self.rawValue = rawValue
    }

    /// A name declared by a component's own type (no registry check: the registry is built from these).
    init(declaring name: String) { rawValue = name }

    /// The name.
    public var description: String { rawValue }

    /// The implementing type.
    public var type: any ScoringComponent.Type {
        // Parsed and decoded names passed the registry check; a declared one that is missing
        // from the registry is a programming error, caught by the first test that uses it.
        guard let type = ComponentRegistry.type(named: rawValue) else {
            preconditionFailure("component \(rawValue) is declared but not listed in ComponentRegistry.types")
        }
        return type
    }

    /// Whether the component is learned by gradient descent (rather than fitted in one pass).
    public var isLearned: Bool { type.isLearned }

    /// Components from a comma-separated list of names ("gaussian,st").
    public static func list(_ text: String) throws -> [Component] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let parsed = names.compactMap(Component.init(rawValue:))
        guard !parsed.isEmpty, parsed.count == names.count else {
            throw PipelineError.input("components are a comma-separated list of: \(ComponentRegistry.namesList)")
        }
        return parsed
    }
}
