import Foundation

/// A one-class support vector machine with an RBF kernel (Schölkopf et al. 2001), in libsvm's
/// formulation: min 1/2 a^T Q a subject to 0 <= a_i <= 1 and sum a_i = nu * n, with
/// Q_ij = exp(-gamma |x_i - x_j|^2); decision f(x) = sum_i a_i K(x_i, x) - rho, positive inside
/// the learned support of the data. Solved by SMO on the maximal violating pair (Keerthi et al.
/// 2001), from libsvm's start (the first floor(nu n) coefficients at 1).
public struct OneClassSVM: Sendable, Equatable {
    /// Vector dimension.
    public let dimension: Int
    /// Kernel width.
    public let gamma: Double
    /// Support vectors (coefficient > 0), (m, d).
    public let supportVectors: [Float]
    /// Their coefficients, (m).
    public let coefficients: [Double]
    /// The offset.
    public let rho: Double

    /// A machine from its parts (as stored in a bundle); nil when the shapes disagree.
    public init?(dimension: Int, gamma: Double, supportVectors: [Float], coefficients: [Double], rho: Double) {
        guard dimension > 0, gamma > 0, !coefficients.isEmpty, supportVectors.count == coefficients.count * dimension,
            rho.isFinite
        else { return nil }
        (self.dimension, self.gamma, self.supportVectors, self.coefficients, self.rho) = (
            dimension, gamma, supportVectors, coefficients, rho
        )
    }

    /// f(x) = sum_i a_i K(x_i, x) - rho.
    public func decision(_ x: [Float]) -> Double {
        precondition(x.count == dimension)
        var total = 0.0
        for (i, a) in coefficients.enumerated() {
            var distance = 0.0
            for j in 0..<dimension {
                let e = Double(supportVectors[i * dimension + j] - x[j])
                distance += e * e
            }
            total += a * Foundation.exp(-gamma * distance)
        }
        return total - rho
    }

    /// Fits `x` (n, d); stops when the maximal violation is below `tolerance` or after
    /// `maxIterations` pair updates.
    public static func fit(
        _ x: [Float], count n: Int, dimension d: Int, gamma: Double, nu: Double, tolerance: Double = 1e-6,
        maxIterations: Int = 1_000_000
    ) -> OneClassSVM? {
        guard n > 1, d > 0, x.count == n * d, gamma > 0, nu > 0, nu <= 1 else { return nil }
        // The whole kernel matrix: n is the number of training images (hundreds).
        var q = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            q[i * n + i] = 1
            for j in 0..<i {
                var distance = 0.0
                for k in 0..<d {
                    let e = Double(x[i * d + k] - x[j * d + k])
                    distance += e * e
                }
                let v = Foundation.exp(-gamma * distance)
                q[i * n + j] = v
                q[j * n + i] = v
            }
        }
        var alpha = [Double](repeating: 0, count: n)
        let total = nu * Double(n), whole = min(n, Int(total))
        for i in 0..<whole { alpha[i] = 1 }
        if whole < n { alpha[whole] = total - Double(whole) }
        var gradient = [Double](repeating: 0, count: n)  // Q alpha
        for i in 0..<n where alpha[i] > 0 { for t in 0..<n { gradient[t] += alpha[i] * q[i * n + t] } }
        for _ in 0..<maxIterations {
            // i: may grow, smallest gradient; j: may shrink, largest gradient.
            var i = -1, j = -1
            for t in 0..<n {
                if alpha[t] < 1 && (i < 0 || gradient[t] < gradient[i]) { i = t }
                if alpha[t] > 0 && (j < 0 || gradient[t] > gradient[j]) { j = t }
            }
            guard i >= 0, j >= 0, gradient[j] - gradient[i] > tolerance else { break }
            let curvature = max(q[i * n + i] + q[j * n + j] - 2 * q[i * n + j], 1e-12)
            let step = min((gradient[j] - gradient[i]) / curvature, 1 - alpha[i], alpha[j])
            alpha[i] += step
            alpha[j] -= step
            for t in 0..<n { gradient[t] += step * (q[i * n + t] - q[j * n + t]) }
        }
        // rho: the gradient's mean over the free coefficients (where the KKT conditions make it
        // exact), else the middle of the bounds, as libsvm.
        let free = (0..<n).filter { alpha[$0] > 1e-12 && alpha[$0] < 1 - 1e-12 }
        let rho: Double
        if !free.isEmpty {
            rho = free.reduce(0) { $0 + gradient[$1] } / Double(free.count)
        } else {
            let upper = (0..<n).filter { alpha[$0] >= 1 - 1e-12 }.map { gradient[$0] }.max() ?? 0
            let lower = (0..<n).filter { alpha[$0] <= 1e-12 }.map { gradient[$0] }.min() ?? 0
            rho = (upper + lower) / 2
        }
        let support = (0..<n).filter { alpha[$0] > 1e-12 }
        return OneClassSVM(
            dimension: d, gamma: gamma, supportVectors: support.flatMap { x[($0 * d)..<(($0 + 1) * d)] },
            coefficients: support.map { alpha[$0] }, rho: rho)
    }
}
