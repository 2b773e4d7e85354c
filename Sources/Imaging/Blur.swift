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
    var tmp = [Float](repeating: 0, count: plane.count)
    var out = [Float](repeating: 0, count: plane.count)
    for y in 0..<height {
        for x in 0..<width {
            var acc: Float = 0
            for k in -radius...radius {
                acc += kernel[k + radius] * plane[y * width + min(width - 1, max(0, x + k))]
            }
            tmp[y * width + x] = acc
        }
    }
    for y in 0..<height {
        for k in -radius...radius {
            let w = kernel[k + radius]
            let row = min(height - 1, max(0, y + k)) * width
            for x in 0..<width { out[y * width + x] += w * tmp[row + x] }
        }
    }
    return out
}

