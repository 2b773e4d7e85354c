import Models
import Tensors

/// A model bundle's tensors as a component reads them, with parts several components share.
public final class BundleContents {
    /// The tensors by key.
    public let tensors: [String: Tensor]
    private var parts: [String: Any] = [:]

    /// Wraps a bundle's tensors.
    public init(tensors: [String: Tensor]) { self.tensors = tensors }

    /// The part stored under `key`, read by `make` the first time it is asked for.
    public func shared<T>(_ key: String, _ make: () throws -> T) rethrows -> T {
        if let part = parts[key] as? T { return part }
        let part = try make()
        parts[key] = part
        return part
    }
}

/// Why a component could not be read from a bundle (the bundle reader names the file).
public struct BundleError: Error, Sendable {
    /// What is missing or malformed.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
}
