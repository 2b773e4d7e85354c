import Foundation
import Tensors

/// The memory module of MemAE (Gong et al., "Memorizing Normality to Detect Anomaly", ICCV
/// 2019): each latent vector is replaced by a sparse convex combination of N memory items,
/// so the decoder can only draw what the memory holds (normal patterns).
///
/// For a query z and items m_i: s_i = cos(z, m_i); w = softmax(s / temperature);
/// hard shrinkage v_i = max(w_i - lambda, 0) * w_i / (|w_i - lambda| + eps) (their eq. 7);
/// w' = v / sum(v); output = sum_i w'_i m_i. The addressing entropy sum(-w' log w') is their
/// sparsity regularizer.
public struct MemoryReadout: Sendable {
    /// Softmax temperature of the cosine similarities (smaller = sharper addressing).
    public var temperature: Float
    /// Shrinkage threshold lambda, as a multiple of 1 / N (MemAE uses 1 to 3).
    public var shrinkage: Float
    static let shrinkEpsilon: Float = 1e-12

    /// Creates a read-out.
    public init(temperature: Float = 0.1, shrinkage: Float = 1) {
        self.temperature = temperature
        self.shrinkage = shrinkage
    }

    /// What the forward pass keeps for the backward pass.
    public struct Cache: Sendable {
        var normalizedQueries: [Float]  // (D, P)
        var queryNorms: [Float]  // (P)
        var normalizedMemory: [Float]  // (N, D)
        var memoryNorms: [Float]  // (N)
        var softmax: [Float]  // (N, P)
        var weights: [Float]  // (N, P), after shrinkage and renormalization
        var sums: [Float]  // (P), sum of shrunk weights before renormalization
        /// (N, P) addressing weights used for the output.
        public var addressing: [Float] { weights }
    }

    /// Reads memory for every position.
    ///
    /// queries: (1, D, h, w); memory: (N, D). Returns (1, D, h, w) and the cache.
    public func forward(_ queries: Tensor, memory: Tensor) -> (Tensor, Cache) {
        let d = queries.channels, p = queries.height * queries.width, n = memory.shape[0]
        precondition(queries.batch == 1 && memory.shape == [n, d])
        let lambda = shrinkage / Float(n)
        var zn = queries.storage, zNorms = [Float](repeating: 0, count: p)
        for q in 0..<p {
            var s: Float = 0
            for k in 0..<d { s += zn[k * p + q] * zn[k * p + q] }
            zNorms[q] = max(s.squareRoot(), 1e-6)
            for k in 0..<d { zn[k * p + q] /= zNorms[q] }
        }
        var mn = memory.storage, mNorms = [Float](repeating: 0, count: n)
        for i in 0..<n {
            var s: Float = 0
            for k in 0..<d { s += mn[i * d + k] * mn[i * d + k] }
            mNorms[i] = max(s.squareRoot(), 1e-6)
            for k in 0..<d { mn[i * d + k] /= mNorms[i] }
        }
        var logits = [Float](repeating: 0, count: n * p)
        gemm(m: n, n: p, k: d, a: mn, b: zn, c: &logits)
        var soft = logits, weights = logits, sums = [Float](repeating: 0, count: p)
        for q in 0..<p {
            var top = -Float.infinity
            for i in 0..<n { top = max(top, logits[i * p + q] / temperature) }
            var total: Float = 0
            for i in 0..<n {
                let e = Foundation.exp(logits[i * p + q] / temperature - top)
                soft[i * p + q] = e
                total += e
            }
            var shrunkTotal: Float = 0
            for i in 0..<n {
                let w = soft[i * p + q] / total
                soft[i * p + q] = w
                let v = w > lambda ? (w - lambda) * w / (w - lambda + MemoryReadout.shrinkEpsilon) : 0
                weights[i * p + q] = v
                shrunkTotal += v
            }
            sums[q] = max(shrunkTotal, 1e-12)
            for i in 0..<n { weights[i * p + q] /= sums[q] }
        }
        // output (D, P) = memory^T (D, N) x weights (N, P)
        var out = [Float](repeating: 0, count: d * p)
        gemm(transposeA: true, m: d, n: p, k: n, a: memory.storage, b: weights, c: &out)
        let cache = Cache(
            normalizedQueries: zn, queryNorms: zNorms, normalizedMemory: mn, memoryNorms: mNorms,
            softmax: soft, weights: weights, sums: sums)
        return (Tensor(shape: queries.shape, storage: out), cache)
    }

    /// Mean addressing entropy per position, sum_i -w'_i log w'_i averaged over positions.
    public func entropy(_ cache: Cache) -> Float {
        let p = cache.sums.count
        var total: Float = 0
        for w in cache.weights where w > 0 { total -= w * Foundation.log(w) }
        return total / Float(max(p, 1))
    }

    /// Backward pass: given dL/doutput and the weight of the entropy term in the loss,
    /// accumulates dL/dmemory into `memoryGradient` (N * D) and returns dL/dqueries.
    public func backward(
        _ dOutput: Tensor, memory: Tensor, cache: Cache, entropyWeight: Float,
        memoryGradient: inout [Float]
    ) -> Tensor {
        let d = dOutput.channels, p = dOutput.height * dOutput.width, n = memory.shape[0]
        precondition(memoryGradient.count == n * d)
        let lambda = shrinkage / Float(n)
        // dW' (N, P) = memory (N, D) x dOut (D, P); dMemory (N, D) += W' (N, P) x dOut^T (P, D)
        var dWeights = [Float](repeating: 0, count: n * p)
        gemm(m: n, n: p, k: d, a: memory.storage, b: dOutput.storage, c: &dWeights)
        gemm(transposeB: true, m: n, n: d, k: p, a: cache.weights, b: dOutput.storage, c: &memoryGradient, beta: 1)
        let entropyScale = entropyWeight / Float(p)
        var dLogits = [Float](repeating: 0, count: n * p)
        for q in 0..<p {
            let sum = cache.sums[q]
            var inner: Float = 0
            for i in 0..<n {
                let w = cache.weights[i * p + q]
                if w > 0 && entropyScale != 0 { dWeights[i * p + q] -= entropyScale * (Foundation.log(w) + 1) }
                inner += dWeights[i * p + q] * w
            }
            // Through the renormalization, the shrinkage and the softmax.
            var softInner: Float = 0
            for i in 0..<n {
                let dv = (dWeights[i * p + q] - inner) / sum
                let w = cache.softmax[i * p + q]
                var dw: Float = 0
                if w > lambda {
                    let a = w - lambda + MemoryReadout.shrinkEpsilon
                    dw = dv * ((2 * w - lambda) * a - (w - lambda) * w) / (a * a)
                }
                dWeights[i * p + q] = dw
                softInner += dw * w
            }
            for i in 0..<n {
                let w = cache.softmax[i * p + q]
                dLogits[i * p + q] = w * (dWeights[i * p + q] - softInner) / temperature
            }
        }
        // logits (N, P) = mn (N, D) x zn (D, P)
        var dZn = [Float](repeating: 0, count: d * p)
        gemm(transposeA: true, m: d, n: p, k: n, a: cache.normalizedMemory, b: dLogits, c: &dZn)
        var dMn = [Float](repeating: 0, count: n * d)
        gemm(transposeB: true, m: n, n: d, k: p, a: dLogits, b: cache.normalizedQueries, c: &dMn)
        // Through the normalizations x / |x|: dx = (dxn - xn (xn . dxn)) / |x|.
        var dQueries = dZn
        for q in 0..<p {
            var s: Float = 0
            for k in 0..<d { s += cache.normalizedQueries[k * p + q] * dZn[k * p + q] }
            for k in 0..<d {
                dQueries[k * p + q] = (dZn[k * p + q] - cache.normalizedQueries[k * p + q] * s) / cache.queryNorms[q]
            }
        }
        for i in 0..<n {
            var s: Float = 0
            for k in 0..<d { s += cache.normalizedMemory[i * d + k] * dMn[i * d + k] }
            for k in 0..<d {
                memoryGradient[i * d + k] +=
                    (dMn[i * d + k] - cache.normalizedMemory[i * d + k] * s) / cache.memoryNorms[i]
            }
        }
        return Tensor(shape: dOutput.shape, storage: dQueries)
    }
}

/// C = op(A) op(B) (+ beta C) on dense row-major arrays, op(A) (m, k), op(B) (k, n).
func gemm(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int, a: [Float], b: [Float],
    c: inout [Float], beta: Float = 0
) {
    precondition(c.count == m * n)
    a.withUnsafeBufferPointer { ap in
        b.withUnsafeBufferPointer { bp in
            c.withUnsafeMutableBufferPointer { cp in
                guard let x = ap.baseAddress, let y = bp.baseAddress, let z = cp.baseAddress else { return }
                sgemm(
                    transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, a: x, lda: transposeA ? m : k,
                    b: y, ldb: transposeB ? k : n, beta: beta, c: z, ldc: n)
            }
        }
    }
}
