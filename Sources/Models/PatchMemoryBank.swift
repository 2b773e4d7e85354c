import Dispatch
import Tensors

/// A memory bank of normal patch embeddings; a patch's anomaly score is its Euclidean
/// distance to the nearest bank entry (PatchCore, Roth et al. CVPR 2022).
public struct PatchMemoryBank: Sendable {
    /// (M, D) bank entries.
    public let entries: Tensor
    /// Squared norm of each entry, cached for the distance expansion.
    let squaredNorms: [Float]

    /// Wraps (M, D) entries.
    public init(entries: Tensor) {
        precondition(entries.shape.count == 2 && entries.shape[0] > 0)
        self.entries = entries
        let d = entries.shape[1]
        squaredNorms = (0..<entries.shape[0]).map { m in
            var s: Float = 0
            for k in 0..<d { s += entries.storage[m * d + k] * entries.storage[m * d + k] }
            return s
        }
    }

    /// Number of entries.
    public var count: Int { entries.shape[0] }
    /// Embedding dimension.
    public var dimension: Int { entries.shape[1] }

    /// Nearest-entry distance for every patch of one image.
    ///
    /// features: (1, D, h, w) embeddings; returns (h, w) distances. Uses
    /// |f - b|^2 = |f|^2 + |b|^2 - 2 f.b with the dot products from one GEMM per block of
    /// entries, so the work is BLAS-bound and memory stays at one block.
    public func nearestDistances(_ features: Tensor) -> [Float] {
        precondition(
            features.shape.count == 4 && features.shape[0] == 1 && features.channels == dimension,
            "features \(features.shape) do not match a bank of dimension \(dimension)")
        let d = dimension, p = features.height * features.width, m = count
        let block = 512
        var best = [Float](repeating: .infinity, count: p)
        var products = [Float](repeating: 0, count: block * p)
        features.storage.withUnsafeBufferPointer { f in
            entries.storage.withUnsafeBufferPointer { b in
                products.withUnsafeMutableBufferPointer { g in
                    guard let fp = f.baseAddress, let bp = b.baseAddress, let gp = g.baseAddress else { return }
                    var start = 0
                    while start < m {
                        let rows = min(block, m - start)
                        // (rows, D) x (D, P): dot products of these entries with every patch.
                        parallelGEMM(m: rows, n: p, k: d, a: bp + start * d, b: fp, c: gp) { _, _ in }
                        for r in 0..<rows {
                            let norm = squaredNorms[start + r]
                            let line = gp + r * p
                            for i in 0..<p { best[i] = min(best[i], norm - 2 * line[i]) }
                        }
                        start += rows
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: p)
        for i in 0..<p {
            var norm: Float = 0
            for k in 0..<d {
                let v = features.storage[k * p + i]
                norm += v * v
            }
            out[i] = max(0, best[i] + norm).squareRoot()
        }
        return out
    }

    /// Greedy k-center coreset selection (PatchCore section 3.2): repeatedly take the
    /// candidate farthest from everything chosen so far, so a small bank still covers every
    /// kind of normal patch. Distances are computed on a Gaussian random projection to
    /// `projectedDimension` (Johnson-Lindenstrauss), which keeps selection fast on a CPU.
    ///
    /// candidates: (N, D) row-major. Returns the indices of the chosen rows, in selection order.
    public static func greedyCoreset(
        _ candidates: [Float], dimension: Int, size: Int, projectedDimension: Int = 64,
        generator: inout SeededGenerator
    ) -> [Int] {
        let n = candidates.count / dimension
        precondition(n * dimension == candidates.count && n > 0)
        if size >= n { return Array(0..<n) }
        let q = min(projectedDimension, dimension)
        let scale = 1 / Float(q).squareRoot()
        let projection = (0..<(dimension * q)).map { _ in generator.nextGaussian() * scale }
        var projected = [Float](repeating: 0, count: n * q)
        candidates.withUnsafeBufferPointer { x in
            projection.withUnsafeBufferPointer { r in
                projected.withUnsafeMutableBufferPointer { y in
                    guard let xp = x.baseAddress, let rp = r.baseAddress, let yp = y.baseAddress else { return }
                    parallelGEMM(m: n, n: q, k: dimension, a: xp, b: rp, c: yp) { _, _ in }
                }
            }
        }
        var nearest = [Float](repeating: .infinity, count: n)
        var chosen = [Int]()
        chosen.reserveCapacity(size)
        var current = Int(generator.next() % UInt64(n))
        let workers = max(1, computeThreads)
        var bestValue = [Float](repeating: 0, count: workers), bestIndex = [Int](repeating: 0, count: workers)
        projected.withUnsafeBufferPointer { y in
            nearest.withUnsafeMutableBufferPointer { dist in
                bestValue.withUnsafeMutableBufferPointer { bv in
                    bestIndex.withUnsafeMutableBufferPointer { bi in
                        guard let yp = y.baseAddress, let dp = dist.baseAddress, let bvp = bv.baseAddress,
                            let bip = bi.baseAddress
                        else { return }
                        let (ys, ds, bvs, bis) = (
                            UnsafeSendable(yp), UnsafeSendable(dp), UnsafeSendable(bvp),
                            UnsafeSendable(bip)
                        )
                        while chosen.count < size {
                            chosen.append(current)
                            let center = current
                            DispatchQueue.concurrentPerform(iterations: workers) { w in
                                let lo = n * w / workers, hi = n * (w + 1) / workers
                                let c = ys.pointer + center * q
                                var farthest: Float = -1, farthestIndex = lo
                                for i in lo..<hi {
                                    let row = ys.pointer + i * q
                                    var s: Float = 0
                                    for k in 0..<q {
                                        let t = row[k] - c[k]
                                        s += t * t
                                    }
                                    let dd = min(ds.pointer[i], s)
                                    ds.pointer[i] = dd
                                    if dd > farthest { farthest = dd; farthestIndex = i }
                                }
                                bvs.pointer[w] = farthest
                                bis.pointer[w] = farthestIndex
                            }
                            var next = bis.pointer[0], value = bvs.pointer[0]
                            for w in 1..<workers where bvs.pointer[w] > value {
                                value = bvs.pointer[w]; next = bis.pointer[w]
                            }
                            current = next
                        }
                    }
                }
            }
        }
        return chosen
    }
}
