import Foundation
import Tensors

/// An isolation forest (Liu, Ting & Zhou 2008): random trees that split a random feature at a
/// random value between its minimum and maximum, grown on small subsamples to a depth of
/// ceil(log2 subsample). Points unlike the training set are isolated in few splits.
///
/// Score s(x) = 2^(-E[h(x)] / c(psi)), in (0, 1], higher = more anomalous; h is the depth
/// reached plus c(size) of the leaf's sample, c(n) = 2 H(n - 1) - 2 (n - 1) / n the mean path
/// length of an unsuccessful binary-search-tree lookup (scikit-learn's `score_samples` is -s).
public struct IsolationForest: Sendable, Equatable {
    /// Vector dimension.
    public let dimension: Int
    /// Subsample size each tree was grown on.
    public let sampleSize: Int
    /// Per node: split feature (-1 for a leaf).
    public let feature: [Int32]
    /// Per node: split value (go left when x[feature] < threshold); for a leaf, its sample size.
    public let threshold: [Float]
    /// Per node: left child (the right child follows the left subtree; see `right`).
    public let left: [Int32]
    /// Per node: right child.
    public let right: [Int32]
    /// Root node of each tree.
    public let roots: [Int32]

    /// Assembles a forest from its node arrays (as stored in a bundle); nil when they disagree.
    public init?(
        dimension: Int, sampleSize: Int, feature: [Int32], threshold: [Float], left: [Int32], right: [Int32],
        roots: [Int32]
    ) {
        let n = feature.count
        guard dimension > 0, sampleSize > 0, threshold.count == n, left.count == n, right.count == n,
            !roots.isEmpty, roots.allSatisfy({ (0..<Int32(n)).contains($0) })
        else { return nil }
        for i in 0..<n where feature[i] >= 0 {
            // Children come after their parent, so every path ends (no cycles).
            guard feature[i] < Int32(dimension), left[i] > Int32(i), right[i] > Int32(i), left[i] < Int32(n),
                right[i] < Int32(n)
            else { return nil }
        }
        (self.dimension, self.sampleSize, self.feature, self.threshold, self.left, self.right, self.roots) = (
            dimension, sampleSize, feature, threshold, left, right, roots
        )
    }

    /// c(n): the average path length of an unsuccessful search in a binary search tree of n
    /// points (Liu et al. 2008, eq. 1), with H(i) = ln i + Euler's constant.
    static func averagePath(_ n: Int) -> Double {
        if n <= 1 { return 0 }
        if n == 2 { return 1 }
        let m = Double(n - 1)
        return 2 * (Foundation.log(m) + 0.577_215_664_901_532_9) - 2 * m / Double(n)
    }

    /// The anomaly score s(x) (d values).
    public func score(_ x: [Float]) -> Double {
        precondition(x.count == dimension)
        var total = 0.0
        for root in roots {
            var node = Int(root), depth = 0
            while feature[node] >= 0 {
                node = Int(x[Int(feature[node])] < threshold[node] ? left[node] : right[node])
                depth += 1
            }
            total += Double(depth) + Self.averagePath(Int(threshold[node]))
        }
        return Foundation.pow(2, -(total / Double(roots.count)) / Self.averagePath(sampleSize))
    }

    /// Grows `trees` trees on `x` (n, d), each on a subsample of min(`sampleSize`, n) points
    /// drawn without replacement.
    public static func fit(
        _ x: [Float], count n: Int, dimension d: Int, trees: Int = 200, sampleSize: Int = 256,
        generator: inout SeededGenerator
    ) -> IsolationForest? {
        guard n > 0, d > 0, x.count == n * d, trees > 0 else { return nil }
        let psi = min(sampleSize, n)
        let maxDepth = Int(Foundation.log2(Double(max(psi, 2))).rounded(.up))
        var feature = [Int32](), threshold = [Float](), left = [Int32](), right = [Int32](), roots = [Int32]()
        func uniform() -> Double { Double(generator.next() >> 11) / Double(1 << 53) }
        // Grows a node over `rows`; returns its index.
        func grow(_ rows: ArraySlice<Int>, depth: Int) -> Int32 {
            let index = Int32(feature.count)
            feature.append(-1)
            threshold.append(Float(rows.count))
            left.append(-1)
            right.append(-1)
            guard depth < maxDepth, rows.count > 1 else { return index }
            // A random feature that still varies here (tried in a random order).
            var order = Array(0..<d)
            for i in stride(from: d - 1, to: 0, by: -1) { order.swapAt(i, Int(generator.next() % UInt64(i + 1))) }
            for f in order {
                var low = Float.infinity, high = -Float.infinity
                for r in rows {
                    low = min(low, x[r * d + f])
                    high = max(high, x[r * d + f])
                }
                guard high > low else { continue }
                var split = low + Float(uniform()) * (high - low)
                if split <= low { split = low.nextUp }
                let lower = rows.filter { x[$0 * d + f] < split }, upper = rows.filter { x[$0 * d + f] >= split }
                feature[Int(index)] = Int32(f)
                threshold[Int(index)] = split
                let l = grow(lower[...], depth: depth + 1)
                let r = grow(upper[...], depth: depth + 1)
                left[Int(index)] = l
                right[Int(index)] = r
                return index
            }
            return index  // every feature constant: a leaf
        }
        for _ in 0..<trees {
            var pool = Array(0..<n)
            for i in 0..<psi { pool.swapAt(i, i + Int(generator.next() % UInt64(n - i))) }
            roots.append(grow(pool[0..<psi], depth: 0))
        }
        return IsolationForest(
            dimension: d, sampleSize: psi, feature: feature, threshold: threshold, left: left, right: right,
            roots: roots)
    }
}
