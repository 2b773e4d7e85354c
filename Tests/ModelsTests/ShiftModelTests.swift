import Foundation
import Models
import Tensors
import XCTest

/// The shift detectors' numerics against scikit-learn, recorded once by Scripts/shift_oracle.py.
final class ShiftModelTests: XCTestCase {
    struct Oracle: Decodable {
        struct Mixture: Decodable {
            var weights: [Double], means: [Double], covariances: [Double]
            var test_log_likelihood: [Double]
            var train_mean_log_likelihood: Double
            var bic: [Double]
        }
        struct Forest: Decodable {
            var trees: Int, sample_size: Int, test_score_samples: [Double]
        }
        var dimension: Int
        var train: [[Double]], test: [[Double]]
        struct SVM: Decodable {
            var gamma: Double, nu: Double, test_decision: [Double], rho: Double, support_vectors: Int
        }
        var gmm: [String: Mixture]
        var iforest: Forest
        var ocsvm: SVM
    }

    func oracle() throws -> Oracle {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/shift/oracle.json")
        return try JSONDecoder().decode(Oracle.self, from: Data(contentsOf: path))
    }

    func testMixtureLogLikelihoodMatchesScikitLearnForItsParameters() throws {
        let o = try oracle()
        for covariance in GaussianMixture.Covariance.allCases {
            let m = try XCTUnwrap(o.gmm[covariance.rawValue])
            let mixture = try XCTUnwrap(
                GaussianMixture(
                    weights: m.weights, means: m.means, covariances: m.covariances, dimension: o.dimension,
                    covariance: covariance))
            for (x, expected) in zip(o.test, m.test_log_likelihood) {
                XCTAssertEqual(mixture.logLikelihood(x), expected, accuracy: 1e-6 * max(1, abs(expected)))
            }
        }
    }

    func testMixtureFitReachesScikitLearnsOptimumAndBICPicksTheSameCount() throws {
        let o = try oracle()
        let x = o.train.flatMap { $0 }, n = o.train.count, d = o.dimension
        for covariance in GaussianMixture.Covariance.allCases {
            let m = try XCTUnwrap(o.gmm[covariance.rawValue])
            var bics = [Double]()
            for k in 1...5 {
                var g = SeededGenerator(seed: 11)
                // Best of a few seeded starts, as scikit-learn's n_init = 5.
                let fits = (0..<5).compactMap { _ in
                    GaussianMixture.fit(
                        x, count: n, dimension: d, components: k, covariance: covariance, regularization: 1e-3,
                        maxIterations: 500, tolerance: 1e-6, generator: &g)
                }
                let best = try XCTUnwrap(fits.max { $0.meanLogLikelihood < $1.meanLogLikelihood })
                bics.append(best.mixture.bic(meanLogLikelihood: best.meanLogLikelihood, count: n))
                if k == 3 {
                    XCTAssertEqual(best.meanLogLikelihood, m.train_mean_log_likelihood, accuracy: 1e-4, "\(covariance)")
                    for (x, expected) in zip(o.test, m.test_log_likelihood) {
                        XCTAssertEqual(best.mixture.logLikelihood(x), expected, accuracy: 1e-2 * max(1, abs(expected)))
                    }
                }
            }
            XCTAssertEqual(bics.indices.min { bics[$0] < bics[$1] }, 2, "\(covariance): BIC \(bics)")
            // EM finds local optima: ours must be at least as good as scikit-learn's at every count.
            for (ours, theirs) in zip(bics, m.bic) { XCTAssertLessThanOrEqual(ours, theirs + 1e-4 * abs(theirs)) }
        }
    }

    func testIsolationForestRanksLikeScikitLearn() throws {
        let o = try oracle()
        let x = o.train.flatMap { $0 }.map(Float.init)
        var g = SeededGenerator(seed: 5)
        let forest = try XCTUnwrap(
            IsolationForest.fit(
                x, count: o.train.count, dimension: o.dimension, trees: 1000, sampleSize: o.iforest.sample_size,
                generator: &g))
        let ours = o.test.map { -forest.score($0.map(Float.init)) }
        XCTAssertGreaterThanOrEqual(spearman(ours, o.iforest.test_score_samples), 0.99)
        // The same scale as scikit-learn's, not only the same order.
        for (a, b) in zip(ours, o.iforest.test_score_samples) { XCTAssertEqual(a, b, accuracy: 0.03) }
        // Scattered points score as more anomalous than every cluster point.
        let insideWorst = ours.prefix(40).min() ?? 0, outsideBest = ours.suffix(20).max() ?? 0
        XCTAssertLessThan(outsideBest, insideWorst)
    }

    func testOneClassSVMDecisionsMatchScikitLearn() throws {
        let o = try oracle()
        let svm = try XCTUnwrap(
            OneClassSVM.fit(
                o.train.flatMap { $0 }.map(Float.init), count: o.train.count, dimension: o.dimension,
                gamma: o.ocsvm.gamma, nu: o.ocsvm.nu, tolerance: 1e-7))
        XCTAssertEqual(svm.rho, o.ocsvm.rho, accuracy: 1e-4 * abs(o.ocsvm.rho))
        XCTAssertEqual(svm.coefficients.count, o.ocsvm.support_vectors, accuracy: 1)
        XCTAssertEqual(svm.coefficients.reduce(0, +), o.ocsvm.nu * Double(o.train.count), accuracy: 1e-9)
        for (x, expected) in zip(o.test, o.ocsvm.test_decision) {
            XCTAssertEqual(svm.decision(x.map(Float.init)), expected, accuracy: 1e-4 * max(1, abs(expected)))
        }
    }

    /// Spearman's rank correlation (no ties expected).
    func spearman(_ a: [Double], _ b: [Double]) -> Double {
        func ranks(_ v: [Double]) -> [Double] {
            var r = [Double](repeating: 0, count: v.count)
            for (rank, i) in v.indices.sorted(by: { v[$0] < v[$1] }).enumerated() { r[i] = Double(rank) }
            return r
        }
        let ra = ranks(a), rb = ranks(b), n = Double(a.count)
        let d2 = zip(ra, rb).map { ($0 - $1) * ($0 - $1) }.reduce(0, +)
        return 1 - 6 * d2 / (n * (n * n - 1))
    }
}
