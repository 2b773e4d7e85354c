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
/// is built row by row as vector updates of y (held in L1), one pass over S.
///
/// Through OpenBLAS (`cblas_sspmv`, then `cblas_sdot`) the positional Gaussian's 1,024 forms of
/// n = 152 per image were some 300,000 short BLAS calls, a fifth of `eval`'s profile. Rows as
/// dot products instead ended each row in a horizontal sum and a latency-bound chain; the
/// updates of y are independent. `scratch` holds n floats. The oracle is `naiveQuadraticForm`.
public func packedQuadraticForm(
    n: Int, packed s: UnsafePointer<Float>, x: UnsafePointer<Float>, scratch y: UnsafeMutablePointer<Float>
) -> Float {
    y.initialize(repeating: 0, count: n)
    var diagonal: Float = 0
    var row = s
    for a in 0..<n {
        let xa = x[a], count = n - a - 1, r = row + 1, ya = y + a + 1
        diagonal = diagonal.addingProduct(row[0] * xa, xa)
        let wide = SIMD16<Float>(repeating: xa), narrow = SIMD8<Float>(repeating: xa)
        var j = 0
        while j + 16 <= count {
            store(load(ya + j, as: SIMD16<Float>.self).addingProduct(wide, load(r + j, as: SIMD16<Float>.self)), ya + j)
            j += 16
        }
        if j + 8 <= count {
            store(load(ya + j, as: SIMD8<Float>.self).addingProduct(narrow, load(r + j, as: SIMD8<Float>.self)), ya + j)
            j += 8
        }
        while j < count {
            ya[j] = ya[j].addingProduct(xa, r[j])
            j += 1
        }
        row += count + 1
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
