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
        var pixels = base.pixels
        for i in 0..<(width * height) {
            let w = weights.map { min(1, max(0, $0[i].isNaN ? 0 : $0[i])) } ?? 1
            let a = min(1, max(0, alpha)) * w
            for k in 0..<3 {
                let v = (1 - a) * Float(base.pixels[3 * i + k]) + a * Float(heat.pixels[3 * i + k])
                pixels[3 * i + k] = UInt8(min(255, max(0, v.rounded())))
            }
        }
        return Image(unchecked: width, height, 3, pixels)
    }
}
