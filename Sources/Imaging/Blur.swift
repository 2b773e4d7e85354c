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
                    for y in 0..<height {
                        let line = y * width
                        for i in 0..<(width + 2 * radius) { row[i] = src[line + min(width - 1, max(0, i - radius))] }
                        for j in 0..<taps {
                            let w = k[j]
                            for x in 0..<width { t[line + x] += w * row[x + j] }
                        }
                    }
                }
            }
        }
        tmp.withUnsafeBufferPointer { t in
            out.withUnsafeMutableBufferPointer { o in
                for y in 0..<height {
                    for j in 0..<taps {
                        let w = k[j]
                        let from = min(height - 1, max(0, y + j - radius)) * width
                        for x in 0..<width { o[y * width + x] += w * t[from + x] }
                    }
                }
            }
        }
    }
    return out
}
