import Models
import Tensors

/// `gmm`: a Gaussian mixture on the standardized pooled teacher features; score = negative
/// log-likelihood (the VGG16 + global average pooling + GMM recipe, with anomap's teacher).
/// The number of components (1-4) and the covariance (full or diagonal) are chosen by BIC.
public struct GaussianMixtureShift: ShiftDetector {
    /// The name.
    public static let name = "gmm"
    /// Reads the pooled features only.
    public static let needsHead = false
    /// A few words.
    public static let summary = "Gaussian mixture on pooled features, BIC-chosen"
    /// The ridge added to every variance of the unit-variance features (the shrinkage).
    /// Measured on magnetic_tile: 0.01 and 0.1 separate every synthetic shift but brightness
    /// (ROC-AUC >= 0.99), 1 loses contrast and translation (0.81, 0.85).
    public static let regularization = 0.1

    /// The mixture.
    public let mixture: GaussianMixture

    /// Wraps a mixture.
    public init(mixture: GaussianMixture) { self.mixture = mixture }

    /// Fits every count and covariance, each from two seeded starts, and keeps the lowest BIC.
    public static func fit(_ data: ShiftFitData, generator: inout SeededGenerator) -> GaussianMixtureShift? {
        let (features, n, d) = (data.training, data.count, data.dimension)
        let x = features.map(Double.init)
        var best: (bic: Double, mixture: GaussianMixture)?
        for covariance in GaussianMixture.Covariance.allCases {
            for k in 1...min(4, n) {
                for _ in 0..<(k == 1 ? 1 : 2) {
                    guard
                        let fit = GaussianMixture.fit(
                            x, count: n, dimension: d, components: k, covariance: covariance,
                            regularization: regularization, generator: &generator)
                    else { continue }
                    let bic = fit.mixture.bic(meanLogLikelihood: fit.meanLogLikelihood, count: n)
                    if best.map({ bic < $0.bic }) ?? true { best = (bic, fit.mixture) }
                }
            }
        }
        // Through the bundle's float tensors, so the fitted detector scores as a loaded one does.
        return best.flatMap { try? load(GaussianMixtureShift(mixture: $0.mixture).tensors, dimension: d) }
    }

    /// Reads `shift.gmm.{weights,means,factors,full}`.
    public static func load(_ tensors: [String: Tensor], dimension d: Int) throws -> GaussianMixtureShift {
        guard let w = tensors["shift.gmm.weights"], let m = tensors["shift.gmm.means"],
            let f = tensors["shift.gmm.covariances"], let full = tensors["shift.gmm.full"], full.count == 1
        else { throw BundleError("shift.gmm tensors are missing") }
        guard
            let mixture = GaussianMixture(
                weights: w.storage.map(Double.init), means: m.storage.map(Double.init),
                covariances: f.storage.map(Double.init), dimension: d,
                covariance: full.storage[0] == 1 ? .full : .diagonal)
        else { throw BundleError("shift.gmm tensors are malformed") }
        return GaussianMixtureShift(mixture: mixture)
    }

    /// Weights, means, covariances (rebuilt from the factors: L L^T) and the covariance kind.
    public var tensors: [String: Tensor] {
        let k = mixture.components, d = mixture.dimension
        var covariances = mixture.factors
        if mixture.covariance == .full {
            covariances = [Double](repeating: 0, count: k * d * d)
            for c in 0..<k {
                let l = c * d * d
                for i in 0..<d {
                    for j in 0...i {
                        var s = 0.0
                        for t in 0...j { s += mixture.factors[l + i * d + t] * mixture.factors[l + j * d + t] }
                        covariances[l + i * d + j] = s
                        covariances[l + j * d + i] = s
                    }
                }
            }
        }
        return [
            "shift.gmm.weights": Tensor(shape: [k], storage: mixture.weights.map(Float.init)),
            "shift.gmm.means": Tensor(shape: [k, d], storage: mixture.means.map(Float.init)),
            "shift.gmm.covariances": Tensor(
                shape: mixture.covariance == .full ? [k, d, d] : [k, d], storage: covariances.map(Float.init)),
            "shift.gmm.full": Tensor(shape: [1], storage: [mixture.covariance == .full ? 1 : 0]),
        ]
    }

    /// Negative log-likelihood.
    public func score(_ input: ShiftInput) -> Float { Float(-mixture.logLikelihood(input.pooled.map(Double.init))) }
}
