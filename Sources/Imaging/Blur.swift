#if canImport(Glibc)
    import Glibc
#endif

/// Separable Gaussian blur of one (H, W) float plane with edge replication; the kernel spans
/// +-4 sigma (weights beyond that are below 3.4e-4 of the centre).
public func gaussianBlur(_ plane: [Float], width: Int, height: Int, sigma: Float) -> [Float] {
    precondition(plane.count == width * height)
    guard sigma > 0 else { return plane }
    let radius = max(1, Int((4 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { i -> Float in
        let x = Float(i) / sigma
        return Float(exp(Double(-0.5 * x * x)))
    }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    // Horizontal pass over an edge-padded copy of each row, vertical pass with clamped row
    // indices: both inner loops run over contiguous memory without per-element clamping.
    var tmp = [Float](repeating: 0, count: plane.count)
    var out = [Float](repeating: 0, count: plane.count)
    var padded = [Float](repeating: 0, count: width + 2 * radius)
    let taps = kernel.count
    kernel.withUnsafeBufferPointer { k in
        padded.withUnsafeMutableBufferPointer { row in
            tmp.withUnsafeMutableBufferPointer { t in
                plane.withUnsafeBufferPointer { src in
                    guard let r = row.baseAddress, let t = t.baseAddress else { return }
                    for y in 0..<height {
                        let line = y * width
                        for i in 0..<(width + 2 * radius) { r[i] = src[line + min(width - 1, max(0, i - radius))] }
                        for j in 0..<taps { addScaled(k[j], r + j, to: t + line, count: width) }
                    }
                }
            }
        }
        tmp.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                guard let t = t.baseAddress, let o = o.baseAddress else { return }
                for y in 0..<height {
                    for j in 0..<taps {
                        let from = min(height - 1, max(0, y + j - radius)) * width
                        addScaled(k[j], t + from, to: o + y * width, count: width)
                    }
                }
            }
        }
    }
    return out
}

/// y[i] = y[i] + w * x[i] for i < count: a multiply and an add per element (never fused), as
/// the plain loop computes it, 16 lanes at a time. The plain loop stayed scalar (the compiler
/// could not rule out that x and y overlap): the blur was 3% of `eval`'s profile. The blur's
/// passes and `resizePlanes`' vertical pass use it.
@inline(__always)
func addScaled(_ w: Float, _ x: UnsafePointer<Float>, to y: UnsafeMutablePointer<Float>, count: Int) {
    let wv = SIMD16<Float>(repeating: w)
    var i = 0
    while i + 16 <= count {
        let a = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
        let b = UnsafeRawPointer(y + i).loadUnaligned(as: SIMD16<Float>.self)
        UnsafeMutableRawPointer(y + i).storeBytes(of: b + wv * a, as: SIMD16<Float>.self)
        i += 16
    }
    while i < count {
        y[i] = y[i] + w * x[i]
        i += 1
    }
}
