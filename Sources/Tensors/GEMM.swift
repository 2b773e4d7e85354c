import CBLAS
import Dispatch
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Worker threads the convolution kernels split one layer across: the count of the calling
/// thread's `ComputeBudget` inside `withComputeThreads`, else the process's (see
/// `setComputeThreads`). Kernels read it once per layer.
public var computeThreads: Int {
    if let own = pthread_getspecific(budgetKey) {
        return Unmanaged<ComputeBudget>.fromOpaque(own).takeUnretainedValue().count
    }
    return processComputeThreads
}

private var processComputeThreads = 2

/// The thread-specific slot of `withComputeThreads` (made once, on first use).
private let budgetKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key, nil)
    return key
}()

/// A count of compute threads that its owner may change while a computation runs on it: the
/// computation's next layer uses the new count. A service running two inspections side by
/// side gives each one thread, and the one left alone both again.
public final class ComputeBudget: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int

    /// A budget of `count` threads.
    public init(_ count: Int) { value = max(1, count) }

    /// The threads a layer may use now.
    public var count: Int {
        get {
            lock.lock()
            defer { lock.unlock() }
            return value
        }
        set {
            lock.lock()
            value = max(1, newValue)
            lock.unlock()
        }
    }
}

/// Runs `body` with the compute threads of `budget` on this thread alone. Results do not
/// change with the count (every kernel computes each output the same way whatever the split).
public func withComputeThreads<T>(_ budget: ComputeBudget, _ body: () throws -> T) rethrows -> T {
    let previous = pthread_getspecific(budgetKey)
    pthread_setspecific(budgetKey, Unmanaged.passUnretained(budget).toOpaque())
    defer { pthread_setspecific(budgetKey, previous) }
    return try withExtendedLifetime(budget) { try body() }
}

/// Sets how many threads the kernels use. anomap parallelizes each layer itself and keeps
/// OpenBLAS single-threaded: OpenBLAS's own threading costs more than it gains on the small
/// matrices of a convolutional network (measured: 2 BLAS threads were slower than 1).
///
/// It also keeps freed tensor memory in the process heap: by default glibc returns large
/// blocks to the kernel on free, so every layer's output would be page-faulted in afresh
/// (measured: that cost more than the depthwise arithmetic itself).
public func setComputeThreads(_ count: Int) {
    processComputeThreads = max(1, count)
    openblas_set_num_threads(1)
    _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
    _ = mallopt(M_TRIM_THRESHOLD, 256 << 20)
}

/// C = alpha * op(A) * op(B) + beta * C, row-major, through OpenBLAS `cblas_sgemm`.
///
/// op(A) is (M, K), op(B) is (K, N), C is (M, N); `lda`, `ldb`, `ldc` are row strides.
@inlinable
public func sgemm(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    cblas_sgemm(
        CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The oracle for `sgemm`: the textbook triple loop in Double.
public func naiveGemm(
    transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: [Float], lda: Int, b: [Float], ldb: Int,
    beta: Float = 0, c: inout [Float], ldc: Int
) {
    for i in 0..<m {
        for j in 0..<n {
            var acc = 0.0
            for p in 0..<k {
                let av = transposeA ? a[p * lda + i] : a[i * lda + p]
                let bv = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                acc += Double(av) * Double(bv)
            }
            c[i * ldc + j] = Float(Double(alpha) * acc + Double(beta) * Double(c[i * ldc + j]))
        }
    }
}

/// x^T S x for a symmetric (n, n) matrix S stored packed, row-major upper (row a holds
/// columns a..<n): the diagonal terms plus twice x . y, where y_b = sum over a < b of S_ab x_a
/// is built as vector updates of y (held in L1), one pass over S.
///
/// Through OpenBLAS (`cblas_sspmv`, then `cblas_sdot`) the positional Gaussian's 1,024 forms of
/// n = 152 per image were some 300,000 short BLAS calls, a fifth of `eval`'s profile. Rows as
/// dot products instead ended each row in a horizontal sum and a latency-bound chain; the
/// updates of y are independent. Four rows go into each load and store of y: one row at a
/// time, a load and a store of y per vector of S made the forms bound by the store port
/// (1,024 forms on two cores: 0.99-1.32 ms over matrices in L2, 1.21-1.54 ms over the whole
/// 47 MB set in cache); four rows took 0.53-0.77 and 0.89-1.16 ms.
/// Every y_b still gains its rows in order, one fused multiply-add each, so the result is
/// bit for bit that of one row at a time. `scratch` holds n floats. The oracle is
/// `naiveQuadraticForm`.
public func packedQuadraticForm(
    n: Int, packed s: UnsafePointer<Float>, x: UnsafePointer<Float>, scratch y: UnsafeMutablePointer<Float>
) -> Float {
    y.initialize(repeating: 0, count: n)
    var diagonal: Float = 0
    var row = s  // row a's first entry, S_aa
    var a = 0
    while a + 4 <= n {
        let r0 = row, r1 = r0 + (n - a), r2 = r1 + (n - a - 1), r3 = r2 + (n - a - 2)
        let x0 = x[a], x1 = x[a + 1], x2 = x[a + 2], x3 = x[a + 3]
        // The block's own corner, row by row.
        diagonal = diagonal.addingProduct(r0[0] * x0, x0)
        y[a + 1] = y[a + 1].addingProduct(x0, r0[1])
        y[a + 2] = y[a + 2].addingProduct(x0, r0[2])
        y[a + 3] = y[a + 3].addingProduct(x0, r0[3])
        diagonal = diagonal.addingProduct(r1[0] * x1, x1)
        y[a + 2] = y[a + 2].addingProduct(x1, r1[1])
        y[a + 3] = y[a + 3].addingProduct(x1, r1[2])
        diagonal = diagonal.addingProduct(r2[0] * x2, x2)
        y[a + 3] = y[a + 3].addingProduct(x2, r2[1])
        diagonal = diagonal.addingProduct(r3[0] * x3, x3)
        // Columns a + 4 ..< n: S_(a+k),c is at r_k + (c - a - k).
        let c0 = r0 + 4, c1 = r1 + 3, c2 = r2 + 2, c3 = r3 + 1, ys = y + a + 4, count = n - a - 4
        let w0 = SIMD16<Float>(repeating: x0), w1 = SIMD16<Float>(repeating: x1)
        let w2 = SIMD16<Float>(repeating: x2), w3 = SIMD16<Float>(repeating: x3)
        var j = 0
        while j + 16 <= count {
            var v = load(ys + j, as: SIMD16<Float>.self)
            v = v.addingProduct(w0, load(c0 + j, as: SIMD16<Float>.self))
            v = v.addingProduct(w1, load(c1 + j, as: SIMD16<Float>.self))
            v = v.addingProduct(w2, load(c2 + j, as: SIMD16<Float>.self))
            store(v.addingProduct(w3, load(c3 + j, as: SIMD16<Float>.self)), ys + j)
            j += 16
        }
        if j + 8 <= count {
            var v = load(ys + j, as: SIMD8<Float>.self)
            v = v.addingProduct(SIMD8(repeating: x0), load(c0 + j, as: SIMD8<Float>.self))
            v = v.addingProduct(SIMD8(repeating: x1), load(c1 + j, as: SIMD8<Float>.self))
            v = v.addingProduct(SIMD8(repeating: x2), load(c2 + j, as: SIMD8<Float>.self))
            store(v.addingProduct(SIMD8(repeating: x3), load(c3 + j, as: SIMD8<Float>.self)), ys + j)
            j += 8
        }
        while j < count {
            ys[j] = ys[j].addingProduct(x0, c0[j]).addingProduct(x1, c1[j]).addingProduct(x2, c2[j])
                .addingProduct(x3, c3[j])
            j += 1
        }
        row = r3 + (n - a - 3)
        a += 4
    }
    while a < n {
        let xa = x[a], count = n - a - 1, r = row + 1, ya = y + a + 1
        diagonal = diagonal.addingProduct(row[0] * xa, xa)
        for j in 0..<count { ya[j] = ya[j].addingProduct(xa, r[j]) }
        row += count + 1
        a += 1
    }
    var sum = SIMD16<Float>(), b = 0
    while b + 16 <= n {
        sum = sum.addingProduct(load(x + b, as: SIMD16<Float>.self), load(y + b, as: SIMD16<Float>.self))
        b += 16
    }
    var cross = sum.sum()
    while b < n {
        cross = cross.addingProduct(x[b], y[b])
        b += 1
    }
    return diagonal + 2 * cross
}

/// The oracle for `packedQuadraticForm`: the full double sum in Double.
public func naiveQuadraticForm(n: Int, packed s: [Float], x: [Float]) -> Double {
    func entry(_ a: Int, _ b: Int) -> Double {
        let (r, c) = a <= b ? (a, b) : (b, a)
        return Double(s[r * n - r * (r - 1) / 2 + (c - r)])
    }
    var total = 0.0
    for a in 0..<n {
        for b in 0..<n { total += Double(x[a]) * entry(a, b) * Double(x[b]) }
    }
    return total
}
