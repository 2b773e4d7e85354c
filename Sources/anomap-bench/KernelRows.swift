import Tensors

/// The 1x1 convolutions of Lite0 at 256x256 (pixels, in, out channels), each as the packed
/// channels-last product and as OpenBLAS `cblas_sgemm` on the same (P, K) x (K, O) data, one
/// thread: `make bench` rows and `anomap-bench --kernels`.
func kernelRows(_ row: (String, String, String) -> Void) {
    let shapes = [
        (16384, 16, 96, "block 1 expand"), (4096, 96, 24, "block 1 project"), (4096, 24, 144, "block 2 expand"),
        (1024, 144, 40, "block 3 project"), (1024, 40, 240, "block 4 expand"), (1024, 240, 40, "block 4 project"),
        (256, 112, 672, "block 9 expand"), (256, 672, 112, "block 9 project"), (64, 320, 1280, "head"),
    ]
    var g = SeededGenerator(seed: 3)
    for (p, k, o, name) in shapes {
        let x = (0..<(p * k)).map { _ in Float.random(in: -1...1, using: &g) }
        let w = Tensor(shape: [o, k, 1, 1], storage: (0..<(o * k)).map { _ in Float.random(in: -1...1, using: &g) })
        let packed = PackedConvolution(weight: w, bias: [], depthwise: false, activation: .none)
        let transposed = (0..<(k * o)).map { w.storage[($0 % o) * k + $0 / o] }  // (K, O)
        var y = [Float](repeating: 0, count: p * o)
        let ours = measure(minRuns: 20, budget: 1) {
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    guard let xa = xp.baseAddress, let ya = yp.baseAddress else { return }
                    packedProduct(xa, ldx: k, pixels: p, weights: packed, into: ya, ldy: o)
                }
            }
        }
        let blas = measure(minRuns: 20, budget: 1) {
            x.withUnsafeBufferPointer { xp in
                transposed.withUnsafeBufferPointer { wp in
                    y.withUnsafeMutableBufferPointer { yp in
                        guard let xa = xp.baseAddress, let wa = wp.baseAddress, let ya = yp.baseAddress else { return }
                        sgemm(m: p, n: o, k: k, a: xa, lda: k, b: wa, ldb: o, c: ya, ldc: o)
                    }
                }
            }
        }
        func rate(_ ms: Double) -> Double { 2 * Double(p * k * o) / (ms / 1000) / 1e9 }
        row(
            "1x1 product \(p)x\(k)->\(o) (\(name)), 1 thread: packed / OpenBLAS",
            String(format: "%.0f / %.0f GFLOP/s", rate(ours.median), rate(blas.median)),
            String(format: "(ratio %.2f)", blas.median / ours.median))
    }
}
