import CBLAS
import Dispatch

/// Worker threads the convolution kernels split one layer across (see `setComputeThreads`).
public private(set) var computeThreads = 2

/// Sets how many threads the kernels use. anomap parallelizes each layer itself and keeps
/// OpenBLAS single-threaded: OpenBLAS's own threading costs more than it gains on the small
/// matrices of a convolutional network (measured: 2 BLAS threads were slower than 1).
///
/// It also keeps freed tensor memory in the process heap: by default glibc returns large
/// blocks to the kernel on free, so every layer's output would be page-faulted in afresh
/// (measured: that cost more than the depthwise arithmetic itself).
public func setComputeThreads(_ count: Int) {
    computeThreads = max(1, count)
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

/// y = S x for a symmetric (n, n) matrix S stored packed, row-major upper: row a holds
/// columns a..<n (OpenBLAS `cblas_sspmv`).
@inlinable
public func packedSymmetricMatrixVector(
    n: Int, packed: UnsafePointer<Float>, x: UnsafePointer<Float>,
    y: UnsafeMutablePointer<Float>
) {
    cblas_sspmv(CblasRowMajor, CblasUpper, Int32(n), 1, packed, x, 1, 0, y, 1)
}

/// Dot product of two length-n vectors (OpenBLAS `cblas_sdot`).
@inlinable
public func dot(n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
    cblas_sdot(Int32(n), x, 1, y, 1)
}
