import Foundation
import Tensors

/// A Gaussian mixture over d-dimensional vectors, fitted by expectation-maximization
/// (Dempster, Laird & Rubin 1977), with full or diagonal covariances and a ridge added to
/// every variance (the shrinkage that keeps a covariance of few samples invertible).
///
/// Scores are log-likelihoods log p(x) = log sum_k w_k N(x | mu_k, Sigma_k), computed from
/// each covariance's Cholesky factor L (Sigma = L L^T):
/// log N = -(d log 2 pi + 2 sum log L_ii + |L^-1 (x - mu)|^2) / 2.
public struct GaussianMixture: Sendable, Equatable {
    /// Covariance structure.
    public enum Covariance: String, Codable, Sendable, CaseIterable {
        /// A full d x d covariance per component.
        case full
        /// Per-dimension variances only.
        case diagonal
    }

    /// Vector dimension d.
    public let dimension: Int
    /// Covariance structure.
    public let covariance: Covariance
    /// Mixing weights, (K).
    public let weights: [Double]
    /// Means, (K, d).
    public let means: [Double]
    /// Full: lower Cholesky factors of the covariances, (K, d, d); diagonal: variances, (K, d).
    public let factors: [Double]

    /// Number of components K.
    public var components: Int { weights.count }

    /// A mixture from weights, means (K, d) and covariances ((K, d, d) full or (K, d)
    /// diagonal); nil when a covariance is not positive definite or the shapes disagree.
    public init?(weights: [Double], means: [Double], covariances: [Double], dimension d: Int, covariance: Covariance) {
        let k = weights.count
        guard k > 0, d > 0, means.count == k * d,
            covariances.count == (covariance == .full ? k * d * d : k * d)
        else { return nil }
        var factors = [Double]()
        if covariance == .full {
            for c in 0..<k {
                guard let l = choleskyFactor(Array(covariances[(c * d * d)..<((c + 1) * d * d)]), size: d) else {
                    return nil
                }
                factors += l
            }
        } else {
            guard covariances.allSatisfy({ $0 > 0 && $0.isFinite }) else { return nil }
            factors = covariances
        }
        (dimension, self.covariance, self.weights, self.means, self.factors) = (d, covariance, weights, means, factors)
    }

    /// Free parameters (for BIC): means, covariances, weights.
    public var parameterCount: Int {
        let k = components, d = dimension
        return k * d + (covariance == .full ? k * d * (d + 1) / 2 : k * d) + (k - 1)
    }

    /// log(w_k N(x | mu_k, Sigma_k)) for every component, into `out` (K); `scratch` holds d values.
    func componentLogDensities(_ x: UnsafePointer<Double>, into out: inout [Double], scratch: inout [Double]) {
        let d = dimension
        let constant = Double(d) * Foundation.log(2 * Double.pi)
        for c in 0..<components {
            var quadratic = 0.0, logDeterminant = 0.0
            if covariance == .full {
                let l = c * d * d
                for i in 0..<d {  // z = L^-1 (x - mu), forward substitution
                    var s = x[i] - means[c * d + i]
                    for j in 0..<i { s -= factors[l + i * d + j] * scratch[j] }
                    scratch[i] = s / factors[l + i * d + i]
                    quadratic += scratch[i] * scratch[i]
                    logDeterminant += 2 * Foundation.log(factors[l + i * d + i])
                }
            } else {
                for i in 0..<d {
                    let v = factors[c * d + i], e = x[i] - means[c * d + i]
                    quadratic += e * e / v
                    logDeterminant += Foundation.log(v)
                }
            }
            out[c] = Foundation.log(weights[c]) - 0.5 * (constant + logDeterminant + quadratic)
        }
    }

    /// log p(x) of one vector (d values).
    public func logLikelihood(_ x: [Double]) -> Double {
        precondition(x.count == dimension)
        var parts = [Double](repeating: 0, count: components), scratch = [Double](repeating: 0, count: dimension)
        x.withUnsafeBufferPointer { p in
            if let base = p.baseAddress { componentLogDensities(base, into: &parts, scratch: &scratch) }
        }
        return logSumExp(parts)
    }

    /// Bayesian information criterion on `n` vectors of mean log-likelihood `meanLogLikelihood`
    /// (lower is better): -2 n mean + parameters ln n (Schwarz 1978).
    public func bic(meanLogLikelihood: Double, count n: Int) -> Double {
        -2 * Double(n) * meanLogLikelihood + Double(parameterCount) * Foundation.log(Double(n))
    }

    /// Fits K components to `x` (n, d) by EM from a seeded k-means++ start (Arthur &
    /// Vassilvitskii 2007) refined by a few Lloyd steps; stops when the mean log-likelihood
    /// gains less than `tolerance`. Returns the mixture and its mean log-likelihood on `x`.
    public static func fit(
        _ x: [Double], count n: Int, dimension d: Int, components k: Int, covariance: Covariance,
        regularization: Double, maxIterations: Int = 100, tolerance: Double = 1e-3,
        generator: inout SeededGenerator
    ) -> (mixture: GaussianMixture, meanLogLikelihood: Double)? {
        guard n > 0, d > 0, k > 0, k <= n, x.count == n * d else { return nil }
        // Hard assignments from k-means, as responsibilities of the first M-step.
        let labels = kMeans(x, count: n, dimension: d, clusters: k, generator: &generator)
        var r = [Double](repeating: 0, count: n * k)
        for i in 0..<n { r[i * k + labels[i]] = 1 }
        var model: GaussianMixture?
        var previous = -Double.infinity, mean = -Double.infinity
        for _ in 0..<maxIterations {
            guard
                let m = maximization(
                    x, count: n, dimension: d, responsibilities: r, covariance: covariance,
                    regularization: regularization)
            else { return nil }
            model = m
            mean = m.expectation(x, count: n, responsibilities: &r)
            if mean - previous < tolerance { break }
            previous = mean
        }
        return model.map { ($0, mean) }
    }

    /// E-step: responsibilities (n, K) from this mixture; returns the mean log-likelihood.
    func expectation(_ x: [Double], count n: Int, responsibilities r: inout [Double]) -> Double {
        let k = components
        var parts = [Double](repeating: 0, count: k), scratch = [Double](repeating: 0, count: dimension)
        var total = 0.0
        x.withUnsafeBufferPointer { p in
            guard let base = p.baseAddress else { return }
            for i in 0..<n {
                componentLogDensities(base + i * dimension, into: &parts, scratch: &scratch)
                let all = logSumExp(parts)
                total += all
                for c in 0..<k { r[i * k + c] = Foundation.exp(parts[c] - all) }
            }
        }
        return total / Double(n)
    }

    /// M-step: weights, means and covariances (+ ridge) from responsibilities (n, K).
    static func maximization(
        _ x: [Double], count n: Int, dimension d: Int, responsibilities r: [Double], covariance: Covariance,
        regularization: Double
    ) -> GaussianMixture? {
        let k = r.count / n
        var weights = [Double](repeating: 0, count: k), means = [Double](repeating: 0, count: k * d)
        for i in 0..<n {
            for c in 0..<k where r[i * k + c] > 0 {
                weights[c] += r[i * k + c]
                for j in 0..<d { means[c * d + j] += r[i * k + c] * x[i * d + j] }
            }
        }
        // As scikit-learn: a component's mass never reaches 0 (10 machine epsilons).
        for c in 0..<k { weights[c] += 10 * Double.ulpOfOne }
        for c in 0..<k { for j in 0..<d { means[c * d + j] /= weights[c] } }
        var covariances = [Double](repeating: 0, count: covariance == .full ? k * d * d : k * d)
        var e = [Double](repeating: 0, count: d)
        for i in 0..<n {
            for c in 0..<k where r[i * k + c] > 0 {
                let w = r[i * k + c]
                for j in 0..<d { e[j] = x[i * d + j] - means[c * d + j] }
                if covariance == .full {
                    let base = c * d * d
                    for a in 0..<d {
                        let wa = w * e[a]
                        for b in 0...a { covariances[base + a * d + b] += wa * e[b] }
                    }
                } else {
                    for j in 0..<d { covariances[c * d + j] += w * e[j] * e[j] }
                }
            }
        }
        for c in 0..<k {
            if covariance == .full {
                let base = c * d * d
                for a in 0..<d {
                    for b in 0...a {
                        let v = covariances[base + a * d + b] / weights[c] + (a == b ? regularization : 0)
                        covariances[base + a * d + b] = v
                        covariances[base + b * d + a] = v
                    }
                }
            } else {
                for j in 0..<d { covariances[c * d + j] = covariances[c * d + j] / weights[c] + regularization }
            }
        }
        let total = weights.reduce(0, +)
        return GaussianMixture(
            weights: weights.map { $0 / total }, means: means, covariances: covariances, dimension: d,
            covariance: covariance)
    }

    /// Cluster labels of `x` (n, d) after k-means++ seeding and up to 10 Lloyd iterations.
    static func kMeans(
        _ x: [Double], count n: Int, dimension d: Int, clusters k: Int, generator: inout SeededGenerator
    ) -> [Int] {
        func distance(_ i: Int, _ centre: [Double], _ c: Int) -> Double {
            var s = 0.0
            for j in 0..<d {
                let e = x[i * d + j] - centre[c * d + j]
                s += e * e
            }
            return s
        }
        var centres = [Double]()
        let first = Int(generator.next() % UInt64(n))
        centres += x[(first * d)..<((first + 1) * d)]
        var nearest = (0..<n).map { distance($0, centres, 0) }
        for _ in 1..<k {
            let total = nearest.reduce(0, +)
            var pick = 0
            if total > 0 {
                var target = Double(generator.next() >> 11) / Double(1 << 53) * total
                for i in 0..<n {
                    target -= nearest[i]
                    if target <= 0 {
                        pick = i
                        break
                    }
                }
            }
            let c = centres.count / d
            centres += x[(pick * d)..<((pick + 1) * d)]
            for i in 0..<n { nearest[i] = min(nearest[i], distance(i, centres, c)) }
        }
        var labels = [Int](repeating: 0, count: n)
        for _ in 0..<10 {
            var changed = false
            for i in 0..<n {
                var best = 0, bestDistance = Double.infinity
                for c in 0..<k {
                    let v = distance(i, centres, c)
                    if v < bestDistance { (best, bestDistance) = (c, v) }
                }
                if labels[i] != best { (labels[i], changed) = (best, true) }
            }
            var sums = [Double](repeating: 0, count: k * d), counts = [Int](repeating: 0, count: k)
            for i in 0..<n {
                counts[labels[i]] += 1
                for j in 0..<d { sums[labels[i] * d + j] += x[i * d + j] }
            }
            for c in 0..<k where counts[c] > 0 {
                for j in 0..<d { centres[c * d + j] = sums[c * d + j] / Double(counts[c]) }
            }
            if !changed { break }
        }
        return labels
    }
}

/// log sum exp(v), stable.
func logSumExp(_ v: [Double]) -> Double {
    guard let top = v.max(), top > -Double.infinity else { return -Double.infinity }
    return top + Foundation.log(v.reduce(0) { $0 + Foundation.exp($1 - top) })
}

/// The lower Cholesky factor L of a symmetric positive definite (n, n) matrix (A = L L^T), or
/// nil when A is not positive definite.
public func choleskyFactor(_ a: [Double], size n: Int) -> [Double]? {
    var l = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i * n + j]
            for k in 0..<j { s -= l[i * n + k] * l[j * n + k] }
            if i == j {
                guard s > 0, s.isFinite else { return nil }
                l[i * n + i] = s.squareRoot()
            } else {
                l[i * n + j] = s / l[j * n + j]
            }
        }
    }
    return l
}
