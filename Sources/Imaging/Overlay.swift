extension Image {
    /// Blends a colour heatmap over this image.
    ///
    /// Each pixel mixes `alpha * weight` of the heatmap with the photo, where `weight` is the
    /// map value in 0...1 when `weights` is given (normal regions stay readable) and 1 otherwise.
    public func overlaid(with heatmap: Image, alpha: Float = 0.5, weights: [Float]? = nil) throws -> Image {
        guard heatmap.width == width, heatmap.height == height else {
            throw ImageError(
                path: nil,
                reason: .invalidArgument(
                    "heatmap is \(heatmap.width)x\(heatmap.height), image is \(width)x\(height)"))
        }
        if let weights, weights.count != width * height {
            throw ImageError(path: nil, reason: .invalidArgument("weights do not match the image size"))
        }
        let base = rgb(), heat = heatmap.rgb()
        let weights = weights ?? [Float](repeating: 1, count: width * height)
        let alpha = min(1, max(0, alpha))
        var pixels = base.pixels
        heat.pixels.withUnsafeBufferPointer { h in
            weights.withUnsafeBufferPointer { w in
                pixels.withUnsafeMutableBufferPointer { p in
                    for i in 0..<w.count {
                        let a = alpha * min(1, max(0, w[i].isNaN ? 0 : w[i]))
                        for k in 3 * i..<3 * i + 3 {
                            let v = (1 - a) * Float(p[k]) + a * Float(h[k])
                            p[k] = UInt8(min(255, max(0, v.rounded())))
                        }
                    }
                }
            }
        }
        return Image(unchecked: width, height, 3, pixels)
    }
}
