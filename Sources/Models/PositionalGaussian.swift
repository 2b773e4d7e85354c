import Dispatch
import Tensors

/// A multivariate Gaussian of normal embeddings at every patch position (PaDiM, Defard et al.
/// ICPR 2020): a patch's score is its Mahalanobis distance to the Gaussian of its own
/// position, so it captures what is normal *where*, for parts photographed in a fixed pose.
public struct PositionalGaussian: Sendable {
    /// Embedding channels used (a fixed random subset, as in PaDiM).
    public let channels: [Int]
    /// (P, d) mean per position, P = height * width.
    public let mean: Tensor
    /// (P, d (d + 1) / 2) inverse covariance per position, packed row-major upper (row a holds
    /// columns a..<d): half the memory of full matrices, read once per image.
    public let precision: Tensor
    /// Grid height and width.
    public let height: Int, width: Int

    /// Wraps trained parameters.
    public init(channels: [Int], mean: Tensor, precision: Tensor, height: Int, width: Int) {
        let d = channels.count, p = height * width
        precondition(
            mean.shape == [p, d] && precision.shape == [p, Self.packedCount(d)], "Gaussian shapes do not match")
        self.channels = channels
        self.mean = mean
        self.precision = precision
        self.height = height
        self.width = width
    }

    /// Entries of one packed precision matrix of dimension `d`.
    public static func packedCount(_ d: Int) -> Int { d * (d + 1) / 2 }

    /// Mahalanobis distance of every patch of (1, D, h, w) features to its position's Gaussian.
    public func distances(_ features: Tensor) -> [Float] {
        distances(features, positions: 0..<(height * width))
    }

    /// The distances of grid positions `positions` (row-major indices) alone, on the calling
    /// thread: each position's form is computed the same way however the grid is split.
    public func distances(_ features: Tensor, positions: Range<Int>) -> [Float] {
        [Float](unsafeUninitializedCapacity: max(positions.count, 1)) { out, done in
            if let o = out.baseAddress { distances(features, positions: positions, into: o) }
            done = positions.count
        }
    }

    private func distances(_ features: Tensor, positions: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(features.height == height && features.width == width, "feature grid differs from the trained one")
        precondition(positions.lowerBound >= 0 && positions.upperBound <= height * width)
        let d = channels.count, p = height * width, packed = Self.packedCount(d)
        let x = UnsafeMutablePointer<Float>.allocate(capacity: 2 * d)
        defer { x.deallocate() }
        features.storage.withUnsafeBufferPointer { f in
            mean.storage.withUnsafeBufferPointer { mu in
                precision.storage.withUnsafeBufferPointer { s in
                    guard let f = f.baseAddress, let mu = mu.baseAddress, let s = s.baseAddress else { return }
                    for i in positions {
                        for (k, c) in channels.enumerated() { x[k] = f[c * p + i] - mu[i * d + k] }
                        let form = packedQuadraticForm(n: d, packed: s + i * packed, x: x, scratch: x + d)
                        out[i - positions.lowerBound] = max(0, form).squareRoot()
                    }
                }
            }
        }
    }
}

/// Accumulates per-position sums for `PositionalGaussian` one image at a time, so memory
/// does not grow with the number of training images.
public struct PositionalGaussianAccumulator: Sendable {
    let channels: [Int]
    let height: Int, width: Int
    var count = 0
    var sum: [Double]
    /// Each position's sums of x_a x_b for b <= a, packed row by row (the lower triangle only:
    /// half the memory of full matrices, which matters on large grids).
    var outer: [Double]

    /// Starts an empty accumulator for a grid of `height` x `width` positions.
    public init(channels: [Int], height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
        sum = [Double](repeating: 0, count: height * width * channels.count)
        outer = [Double](repeating: 0, count: height * width * PositionalGaussian.packedCount(channels.count))
    }

    /// Adds one image's (1, D, h, w) embeddings.
    public mutating func add(_ features: Tensor) {
        precondition(features.height == height && features.width == width)
        let d = channels.count, p = height * width, packed = PositionalGaussian.packedCount(d)
        var x = [Double](repeating: 0, count: d)
        for i in 0..<p {
            for (k, c) in channels.enumerated() { x[k] = Double(features.storage[c * p + i]) }
            for a in 0..<d {
                sum[i * d + a] += x[a]
                let base = i * packed + a * (a + 1) / 2
                for b in 0...a { outer[base + b] += x[a] * x[b] }
            }
        }
        count += 1
    }

    /// The Gaussians: covariance + epsilon * I (PaDiM uses 0.01), inverted by Cholesky.
    public func finish(epsilon: Double = 0.01) -> PositionalGaussian {
        let d = channels.count, p = height * width, n = Double(max(count, 1))
        var mean = [Float](repeating: 0, count: p * d)
        let packed = PositionalGaussian.packedCount(d)
        var precision = [Float](repeating: 0, count: p * packed)
        for i in 0..<p {
            for a in 0..<d { mean[i * d + a] = Float(sum[i * d + a] / n) }
        }
        let workers = max(1, computeThreads)
        precision.withUnsafeMutableBufferPointer { out in
            let target = UnsafeSendable(out)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var cov = [Double](repeating: 0, count: d * d)
                for i in (p * w / workers)..<(p * (w + 1) / workers) {
                    for a in 0..<d {
                        for b in 0...a {
                            // Unbiased covariance from the sums.
                            let value =
                                (outer[i * packed + a * (a + 1) / 2 + b] - sum[i * d + a] * sum[i * d + b] / n)
                                / max(n - 1, 1)
                            cov[a * d + b] = value
                            cov[b * d + a] = value
                        }
                        cov[a * d + a] += epsilon
                    }
                    let inverse = invertSymmetricPositiveDefinite(cov, size: d)
                    var k = i * packed
                    for a in 0..<d {
                        for b in a..<d {
                            target.pointer[k] = Float(inverse[a * d + b])
                            k += 1
                        }
                    }
                }
            }
        }
        return PositionalGaussian(
            channels: channels, mean: Tensor(shape: [p, d], storage: mean),
            precision: Tensor(shape: [p, packed], storage: precision), height: height, width: width)
    }
}

/// Inverse of a symmetric positive definite matrix via Cholesky (A = L L^T, then solve
/// L L^T X = I column by column). The epsilon ridge keeps A positive definite.
public func invertSymmetricPositiveDefinite(_ a: [Double], size n: Int) -> [Double] {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i * n + j]
            for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
            l[i * n + j] = i == j ? max(s, 1e-12).squareRoot() : s / l[j * n + j]
        }
    }
    var inverse = [Double](repeating: 0, count: n * n)
    var y = [Double](repeating: 0, count: n)
    for column in 0..<n {
        for i in 0..<n {  // L y = e_column
            var s = i == column ? 1.0 : 0.0
            for k in 0..<i { s -= l[i * n + k] * y[k] }
            y[i] = s / l[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {  // L^T x = y
            var s = y[i]
            for k in (i + 1)..<n { s -= l[k * n + i] * inverse[k * n + column] }
            inverse[i * n + column] = s / l[i * n + i]
        }
    }
    return inverse
}
