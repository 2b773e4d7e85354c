import Models
import Tensors

/// `iforest`: an isolation forest (200 trees of 256 samples) on the standardized pooled
/// teacher features; score = the forest's anomaly score s(x) in (0, 1].
public struct IsolationForestShift: ShiftDetector {
    /// The name.
    public static let name = "iforest"
    /// Reads the pooled features only.
    public static let needsHead = false
    /// A few words.
    public static let summary = "isolation forest on pooled features"

    /// The forest.
    public let forest: IsolationForest

    /// Wraps a forest.
    public init(forest: IsolationForest) { self.forest = forest }

    /// Grows the forest.
    public static func fit(_ data: ShiftFitData, generator: inout SeededGenerator) -> IsolationForestShift? {
        let (features, n, d) = (data.training, data.count, data.dimension)
        return IsolationForest.fit(features, count: n, dimension: d, generator: &generator).map(
            IsolationForestShift.init)
    }

    /// Reads `shift.iforest.*` (node arrays; integers stored as floats, exact below 2^24).
    public static func load(_ tensors: [String: Tensor], dimension d: Int) throws -> IsolationForestShift {
        guard let f = tensors["shift.iforest.feature"], let t = tensors["shift.iforest.threshold"],
            let l = tensors["shift.iforest.left"], let r = tensors["shift.iforest.right"],
            let roots = tensors["shift.iforest.roots"], let size = tensors["shift.iforest.sample_size"], size.count == 1
        else { throw BundleError("shift.iforest tensors are missing") }
        func ints(_ v: Tensor) -> [Int32] { v.storage.map { Int32(exactly: $0) ?? -2 } }
        guard
            let forest = IsolationForest(
                dimension: d, sampleSize: Int(size.storage[0]), feature: ints(f), threshold: t.storage, left: ints(l),
                right: ints(r), roots: ints(roots))
        else { throw BundleError("shift.iforest tensors are malformed") }
        return IsolationForestShift(forest: forest)
    }

    /// The node arrays.
    public var tensors: [String: Tensor] {
        func floats(_ v: [Int32]) -> Tensor { Tensor(shape: [v.count], storage: v.map(Float.init)) }
        return [
            "shift.iforest.feature": floats(forest.feature),
            "shift.iforest.threshold": Tensor(shape: [forest.threshold.count], storage: forest.threshold),
            "shift.iforest.left": floats(forest.left), "shift.iforest.right": floats(forest.right),
            "shift.iforest.roots": floats(forest.roots),
            "shift.iforest.sample_size": Tensor(shape: [1], storage: [Float(forest.sampleSize)]),
        ]
    }

    /// The anomaly score.
    public func score(_ input: ShiftInput) -> Float { Float(forest.score(input.pooled)) }
}
