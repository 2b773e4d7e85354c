import Models
import Tensors

/// A model bundle's tensors as a component reads them, with parts several components share.
public final class BundleContents: SharedParts {
    /// The tensors by key.
    public let tensors: [String: Tensor]

    /// Wraps a bundle's tensors.
    public init(tensors: [String: Tensor]) { self.tensors = tensors }
}

/// Why a component could not be read from a bundle (the bundle reader names the file).
public struct BundleError: Error, Sendable {
    /// What is missing or malformed.
    public var reason: String
    /// Creates an error.
    public init(_ reason: String) { self.reason = reason }
}
