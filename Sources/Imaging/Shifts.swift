import Foundation

/// Whole-image changes that make a photo unlike the ones a model was trained on: the
/// synthetic outlier sets of `eval-shift`. Noise, glass blur and defocus follow ImageNet-C
/// (Hendrycks & Dietterich 2019) at severity 5, on values in 0...1.
public enum ImageShift: String, CaseIterable, Sendable {
    /// Additive Gaussian noise, sigma 0.38 (ImageNet-C gaussian_noise, severity 5).
    case gaussianNoise = "gaussian-noise"
    /// Gaussian blur (sigma 1.5), two rounds of local pixel swaps within 4 pixels, blurred
    /// again (ImageNet-C glass_blur, severity 5).
    case glassBlur = "glass-blur"
    /// A disk kernel of radius 10 with an alias blur of 0.5 (ImageNet-C defocus_blur, severity 5).
    case defocus
    /// Brightness -40%: every value times 0.6.
    case darker = "brightness-40"
    /// Brightness +40%: every value times 1.4, clipped.
    case brighter = "brightness+40"
    /// Contrast halved around the image's mean.
    case lowContrast = "contrast-50"
    /// Rotated 10 degrees about the centre, corners filled from the nearest edge.
    case rotation = "rotation-10"
    /// Shifted right and down by 10% of each side, the uncovered band filled from the edge.
    case translation = "translation-10"
    /// Re-encoded as JPEG at quality 10.
    case jpeg = "jpeg-10"

    /// The shifted copy of `image` (8-bit, same size and channels); `generator` drives the
    /// random shifts (noise, glass blur).
    public func apply(_ image: Image, generator: inout some RandomNumberGenerator) throws -> Image {
        let (w, h, c) = (image.width, image.height, image.channels)
        func mapped(_ f: (Float) -> Float) -> Image {
            Image(unchecked: w, h, c, image.pixels.map { UInt8(min(255, max(0, f(Float($0)).rounded()))) })
        }
        func planes(_ body: ([Float]) -> [Float]) -> Image {
            var out = image.pixels
            for k in 0..<c {
                let plane = (0..<(w * h)).map { Float(image.pixels[$0 * c + k]) }
                let result = body(plane)
                for i in 0..<(w * h) { out[i * c + k] = UInt8(min(255, max(0, result[i].rounded()))) }
            }
            return Image(unchecked: w, h, c, out)
        }
        switch self {
        case .gaussianNoise:
            return mapped { $0 + 0.38 * 255 * Self.gaussian(&generator) }
        case .darker:
            return mapped { $0 * 0.6 }
        case .brighter:
            return mapped { $0 * 1.4 }
        case .lowContrast:
            let mean = Float(image.pixels.reduce(0) { $0 + Int($1) }) / Float(max(1, image.pixels.count))
            return mapped { ($0 - mean) * 0.5 + mean }
        case .jpeg:
            return try ImageCodec.decode(try ImageCodec.encodeJPEG(image, quality: 10))
        case .defocus:
            return planes { Self.defocus($0, width: w, height: h, radius: 10, alias: 0.5) }
        case .glassBlur:
            // The same swaps on every channel, as ImageNet-C moves whole pixels.
            var order = Array(0..<(w * h))
            for _ in 0..<2 {
                for y in stride(from: h - 5, through: 4, by: -1) {
                    for x in stride(from: w - 5, through: 4, by: -1) {
                        let dx = Int(generator.next() % 9) - 4, dy = Int(generator.next() % 9) - 4
                        order.swapAt(y * w + x, (y + dy) * w + (x + dx))
                    }
                }
            }
            return planes { plane in
                let blurred = gaussianBlur(plane, width: w, height: h, sigma: 1.5)
                return gaussianBlur(order.map { blurred[$0] }, width: w, height: h, sigma: 1.5)
            }
        case .rotation, .translation:
            // Inverse mapping: each output pixel samples the source bilinearly, clamped to the edge.
            let angle = self == .rotation ? 10 * Float.pi / 180 : 0
            let (tx, ty) = self == .translation ? (Float(w) * 0.1, Float(h) * 0.1) : (0, 0)
            let (cx, cy) = (Float(w - 1) / 2, Float(h - 1) / 2)
            let (cs, sn) = (cos(angle), sin(angle))
            return planes { plane in
                var out = [Float](repeating: 0, count: w * h)
                for y in 0..<h {
                    for x in 0..<w {
                        let (u, v) = (Float(x) - tx - cx, Float(y) - ty - cy)
                        let sx = min(Float(w - 1), max(0, cs * u + sn * v + cx))
                        let sy = min(Float(h - 1), max(0, -sn * u + cs * v + cy))
                        let (x0, y0) = (Int(sx), Int(sy))
                        let (x1, y1) = (min(w - 1, x0 + 1), min(h - 1, y0 + 1))
                        let (fx, fy) = (sx - Float(x0), sy - Float(y0))
                        let top = plane[y0 * w + x0] * (1 - fx) + plane[y0 * w + x1] * fx
                        let bottom = plane[y1 * w + x0] * (1 - fx) + plane[y1 * w + x1] * fx
                        out[y * w + x] = top * (1 - fy) + bottom * fy
                    }
                }
                return out
            }
        }
    }

    /// A standard normal sample (Box-Muller).
    static func gaussian(_ generator: inout some RandomNumberGenerator) -> Float {
        let u1 = max(Double(generator.next() >> 11) / Double(1 << 53), 1e-300)
        let u2 = Double(generator.next() >> 11) / Double(1 << 53)
        return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
    }

    /// Convolution with a normalized disk of `radius` whose edge is softened by a Gaussian of
    /// `alias` (ImageNet-C's disk kernel), borders clamped.
    public static func defocus(_ plane: [Float], width w: Int, height h: Int, radius: Int, alias: Float) -> [Float] {
        let r = radius
        var kernel = [Float]()
        for y in -r...r {
            for x in -r...r { kernel.append(x * x + y * y <= r * r ? 1 : 0) }
        }
        let side = 2 * r + 1
        kernel = gaussianBlur(kernel, width: side, height: side, sigma: alias)
        let total = kernel.reduce(0, +)
        let taps = kernel.indices.filter { kernel[$0] > 1e-6 }.map {
            ($0 % side - r, $0 / side - r, kernel[$0] / total)
        }
        var out = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            for x in 0..<w {
                var s: Float = 0
                for (dx, dy, k) in taps { s += k * plane[min(h - 1, max(0, y + dy)) * w + min(w - 1, max(0, x + dx))] }
                out[y * w + x] = s
            }
        }
        return out
    }
}
