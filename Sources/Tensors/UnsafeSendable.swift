/// A pointer handed to concurrent workers that write disjoint ranges.
public struct UnsafeSendable<T>: @unchecked Sendable {
    /// The wrapped pointer.
    public let pointer: T
    /// Wraps `pointer`.
    public init(_ pointer: T) { self.pointer = pointer }
}
