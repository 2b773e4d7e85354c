/// A dense Float32 tensor in row-major order; 4-D tensors are (N, C, H, W).
public struct Tensor: Equatable, Sendable {
    /// Extent of each dimension.
    public private(set) var shape: [Int]
    /// Elements in row-major order.
    public var storage: [Float]

    /// A tensor filled with `value`.
    public init(shape: [Int], value: Float = 0) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor over existing elements; `storage.count` must equal the product of `shape`.
    public init(shape: [Int], storage: [Float]) {
        precondition(shape.reduce(1, *) == storage.count, "shape \(shape) does not hold \(storage.count) elements")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor whose elements are written by `initializer` (which must write all of them).
    @inlinable
    public init(shape: [Int], initializingWith initializer: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let count = shape.reduce(1, *)
        guard count > 0 else {
            // Never `unsafeUninitializedCapacity: 0`: it writes its count into the shared
            // empty-array storage, a race ThreadSanitizer sees.
            var empty = [Float]()
            empty.withUnsafeMutableBufferPointer { initializer($0) }
            self.init(shape: shape, storage: empty)
            return
        }
        self.init(
            shape: shape,
            storage: [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                initializer(buffer)
                initialized = count
            })
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Batch size of an (N, C, H, W) tensor.
    @inlinable public var batch: Int { shape[0] }
    /// Channels of an (N, C, H, W) tensor.
    @inlinable public var channels: Int { shape[1] }
    /// Height of an (N, C, H, W) tensor.
    @inlinable public var height: Int { shape[2] }
    /// Width of an (N, C, H, W) tensor.
    @inlinable public var width: Int { shape[3] }

    /// The same elements under another shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Element at a multi-index (slow; for tests and oracles).
    public subscript(_ index: Int...) -> Float {
        get { storage[flatIndex(index)] }
        set { storage[flatIndex(index)] = newValue }
    }

    private func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count)
        var flat = 0
        for (i, n) in zip(index, shape) {
            precondition(i >= 0 && i < n, "index \(index) out of range \(shape)")
            flat = flat * n + i
        }
        return flat
    }

    /// Image `n` of an (N, C, H, W) tensor as a (1, C, H, W) tensor.
    public func image(_ n: Int) -> Tensor {
        let size = count / shape[0]
        return Tensor(shape: [1] + shape.dropFirst(), storage: Array(storage[(n * size)..<((n + 1) * size)]))
    }

    /// Largest absolute difference to another tensor of the same shape.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(shape == other.shape, "shape \(shape) vs \(other.shape)")
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(storage[i] - other.storage[i])) }
        return m
    }
}
