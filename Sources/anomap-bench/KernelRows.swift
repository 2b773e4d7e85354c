import Glibc
import Tensors

/// The 1x1 convolutions of Lite0 at 256x256 (pixels, in, out channels), each as the packed
/// channels-last product and as OpenBLAS `cblas_sgemm` on the same (P, K) x (K, O) data, one
/// thread: `make bench` rows and `anomap-bench --kernels`.
func kernelRows(_ row: (String, String, String) -> Void) {
    let shapes = [
        (16384, 16, 96, "block 1 expand"), (4096, 96, 24, "block 1 project"), (4096, 24, 144, "block 2 expand"),
        (1024, 144, 40, "block 3 project"), (1024, 40, 240, "block 4 expand"), (1024, 240, 40, "block 4 project"),
        (256, 112, 672, "block 9 expand"), (256, 672, 112, "block 9 project"), (64, 192, 1152, "block 12 expand"),
        (32, 1152, 192, "block 12 project, half the rows"), (64, 1152, 320, "block 15 project"),
        (64, 320, 1280, "head"),
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

/// Lite0's depthwise layers at 256x256 (input side, channels, kernel, stride) through
/// `depthwiseRows` (one row) on zero-padded, 64-byte-aligned rows, one thread.
func depthwiseRows(_ row: (String, String, String) -> Void) {
    let shapes = [
        (128, 32, 3, 1, "block 0"), (128, 96, 3, 2, "block 1"), (64, 144, 3, 1, "block 2"), (32, 240, 5, 1, "block 4"),
        (16, 672, 5, 1, "block 10"), (8, 1152, 5, 1, "block 12"),
    ]
    var g = SeededGenerator(seed: 4)
    for (side, c, k, s, name) in shapes {
        let pad = k / 2, line = (side + 2 * pad) * c, out = (side + s - 1) / s
        // Rows on 64-byte boundaries, as the engine's rings are (`allocateAligned`).
        let count = (side + 2 * pad) * line
        let xa = allocateAligned(count), ya = allocateAligned(out * c)
        defer {
            deallocateAligned(xa)
            deallocateAligned(ya)
        }
        for i in 0..<count { xa[i] = Float.random(in: -1...1, using: &g) }
        let w = Tensor(
            shape: [c, 1, k, k], storage: (0..<(c * k * k)).map { _ in Float.random(in: -1...1, using: &g) })
        let packed = PackedConvolution(weight: w, bias: [], depthwise: true, activation: .relu6)
        let time = measure(minRuns: 20, budget: 1) {
            var taps = [UnsafePointer<Float>](repeating: UnsafePointer(xa), count: k)
            for oy in 0..<out {
                for i in 0..<k { taps[i] = UnsafePointer(xa + (oy * s + i) * line) }
                taps.withUnsafeBufferPointer { tp in
                    guard let t = tp.baseAddress else { return }
                    depthwiseRows(t, stride: s, outWidth: out, weights: packed, into: ya)
                }
            }
        }
        row(
            "depthwise \(k)x\(k) stride \(s) on \(side)x\(side)x\(c) (\(name)), 1 thread",
            String(format: "%.0f GFLOP/s", 2 * Double(out * out * c * k * k) / (time.median / 1000) / 1e9),
            String(format: "(%.3f ms)", time.median))
    }
}

/// Lite0's classifier at batch 1 (1280 -> 1000): `denseRows` on 1 and 2 threads against
/// `sgemm` (y = x W^T), the weights cold in the cache as in a forward (16 copies cycled).
func classifierRows(_ row: (String, String, String) -> Void) {
    var g = SeededGenerator(seed: 5)
    let k = 1280, o = 1000, copies = 16
    let x = (0..<k).map { _ in Float.random(in: -1...1, using: &g) }
    let weights = (0..<copies).map { _ in (0..<(k * o)).map { _ in Float.random(in: -1...1, using: &g) } }
    var y = [Float](repeating: 0, count: o)
    var next = 0
    func time(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) -> Double {
        measure(minRuns: 50, budget: 1) {
            next = (next + 1) % copies
            x.withUnsafeBufferPointer { xp in
                weights[next].withUnsafeBufferPointer { wp in
                    y.withUnsafeMutableBufferPointer { yp in
                        guard let xa = xp.baseAddress, let wa = wp.baseAddress, let ya = yp.baseAddress else { return }
                        body(xa, wa, ya)
                    }
                }
            }
        }.median
    }
    let one = time { denseRows($0, batch: 1, weights: $1, bias: nil, inputs: k, outputs: o, into: $2, threads: 1) }
    let two = time { denseRows($0, batch: 1, weights: $1, bias: nil, inputs: k, outputs: o, into: $2, threads: 2) }
    let blas = time { sgemm(transposeB: true, m: 1, n: o, k: k, a: $0, lda: k, b: $1, ldb: k, c: $2, ldc: o) }
    row(
        "classifier 1280->1000, batch 1: denseRows 1 / 2 threads, sgemm",
        String(format: "%.3f / %.3f / %.3f ms", one, two, blas),
        "")
}

/// `cblas_sgemm` of another BLAS, loaded at run time so that the build links one library only.
typealias CBLASGemm =
    @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
        Float, UnsafeMutablePointer<Float>?, Int32
    ) -> Void

/// BLIS's single-threaded `cblas_sgemm` from Debian's libblis4 (pthread or OpenMP build), or nil
/// when it is not installed.
func loadBLIS() -> CBLASGemm? {
    for dir in ["blis-pthread", "blis-openmp"] {
        guard let handle = dlopen("/usr/lib/x86_64-linux-gnu/\(dir)/libblis.so.4", RTLD_NOW | RTLD_LOCAL),
            let symbol = dlsym(handle, "cblas_sgemm")
        else { continue }
        if let threads = dlsym(handle, "bli_thread_set_num_threads") {
            unsafeBitCast(threads, to: (@convention(c) (Int) -> Void).self)(1)
        }
        return unsafeBitCast(symbol, to: CBLASGemm.self)
    }
    return nil
}

/// The GEMMs training still runs (im2col convolutions forward, their weight and input
/// gradients, the memory readout; default shapes, 256x256, per image) and sgemm 512^3, one
/// thread: OpenBLAS against BLIS and against the packed product with its packing included
/// (training changes the weights every step, so it would pack every call).
func gemmRows(_ row: (String, String, String) -> Void) {
    let blis = loadBLIS()
    if blis == nil { row("GEMM shapes", "skipped", "(BLIS not installed: apt-get install libblis-dev)") }
    // (M, N, K) of C(M, N) = A(M, K) B(K, N), row-major.
    let shapes = [
        (32, 4096, 144, "student conv 2 forward"), (64, 1024, 576, "student conv 4 forward"),
        (96, 256, 1368, "autoencoder conv 1 forward"), (64, 1024, 864, "decoder conv 2 forward"),
        (64, 576, 1024, "student conv 4 weight gradient"), (96, 1368, 256, "autoencoder conv 1 weight gradient"),
        (576, 1024, 64, "student conv 4 input gradient"), (1024, 64, 64, "memory readout"),
        (512, 512, 512, "square"),
    ]
    var g = SeededGenerator(seed: 4)
    for (m, n, k, name) in shapes {
        let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &g) }
        let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &g) }
        // The packed product takes (pixels, K) activations and (O, K) weights and writes (pixels, O):
        // the larger of M and N plays the pixels, as a channels-last caller would lay them out
        // (for N: C^T = B^T A^T, with B^T made outside the timing, as a patch gather makes it).
        let pixelsAreN = n > m
        let bT = (0..<(n * k)).map { b[($0 % k) * n + $0 / k] }  // (N, K)
        let weight = Tensor(shape: pixelsAreN ? [m, k, 1, 1] : [n, k, 1, 1], storage: pixelsAreN ? a : bT)
        let activations = pixelsAreN ? bT : a
        var c = [Float](repeating: 0, count: m * n)
        func run(
            _ body: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
        ) {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        guard let a = ap.baseAddress, let b = bp.baseAddress, let c = cp.baseAddress else { return }
                        body(a, b, c)
                    }
                }
            }
        }
        let openBLAS: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void = { a, b, c in
            sgemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: c, ldc: n)
        }
        let other: ((UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void)? = blis.map {
            gemm in
            { a, b, c in gemm(101, 111, 111, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, c, Int32(n))
            }
        }
        let packed: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void = { _, _, c in
            let weights = PackedConvolution(weight: weight, bias: [], depthwise: false, activation: .none)
            activations.withUnsafeBufferPointer { x in
                guard let x = x.baseAddress else { return }
                packedProduct(
                    x, ldx: k, pixels: pixelsAreN ? n : m, weights: weights, into: c, ldy: pixelsAreN ? m : n)
            }
        }
        // The three must agree before their times mean anything.
        run(openBLAS)
        let reference = c, scale = reference.map(abs).max() ?? 1
        // (the packed product's C^T is read back transposed)
        for (kernel, transposed) in [(other, false), (packed, pixelsAreN)] {
            guard let kernel else { continue }
            c = [Float](repeating: 0, count: m * n)
            run(kernel)
            let result = transposed ? (0..<(m * n)).map { c[($0 % n) * m + $0 / n] } : c
            if zip(result, reference).map({ abs($0 - $1) }).max() ?? 0 > 1e-4 * scale {
                fail("GEMM \(m)x\(n)x\(k): the kernels disagree")
            }
        }
        func time(
            _ kernel: ((UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void)?
        ) -> Double? {
            guard let kernel else { return nil }
            return measure(minRuns: 20, budget: 1) { run(kernel) }.median
        }
        func rate(_ ms: Double?) -> String {
            ms.map { String(format: "%.0f", 2 * Double(m * n * k) / ($0 / 1000) / 1e9) } ?? "-"
        }
        row(
            "GEMM \(m)x\(n)x\(k) (\(name)), 1 thread: OpenBLAS / BLIS / packed",
            "\(rate(time(openBLAS))) / \(rate(time(other))) / \(rate(time(packed))) GFLOP/s", "")
    }
}
