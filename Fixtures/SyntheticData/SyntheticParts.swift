import Foundation
import Imaging
import Tensors

/// A deterministic synthetic inspection dataset: textured metal-like parts, some with
/// scratches, spots or cracks, with exact ground-truth masks, in the MVTec AD layout.
public enum SyntheticParts {
    /// Defect kinds drawn on test images.
    public static let defectTypes = ["crack", "scratch", "spot"]

    /// One generated image and its mask (true = defect).
    public struct Sample {
        /// The part.
        public var image: Image
        /// Its defect pixels, (height * width).
        public var mask: [Bool]
    }

    /// A defect-free part: brushed texture, a machined border, slight shifts and lighting
    /// changes from image to image.
    public static func good(size: Int, generator g: inout SeededGenerator) throws -> Image {
        let phase = Float.random(in: 0..<6.28, using: &g), gain = Float.random(in: 0.9...1.1, using: &g)
        let shiftX = Float.random(in: -3...3, using: &g), shiftY = Float.random(in: -3...3, using: &g)
        // Coarse value noise, bilinearly upsampled: the mottled look of a real surface.
        let coarse = 9
        let noise = (0..<(coarse * coarse)).map { _ in Float.random(in: -1...1, using: &g) }
        var pixels = [UInt8](repeating: 0, count: size * size)
        for y in 0..<size {
            for x in 0..<size {
                let fx = (Float(x) + shiftX) / Float(size), fy = (Float(y) + shiftY) / Float(size)
                let gx = min(Float(coarse - 1) - 0.001, max(0, fx * Float(coarse - 1)))
                let gy = min(Float(coarse - 1) - 0.001, max(0, fy * Float(coarse - 1)))
                let ix = Int(gx), iy = Int(gy), tx = gx - Float(ix), ty = gy - Float(iy)
                let n =
                    noise[iy * coarse + ix] * (1 - tx) * (1 - ty) + noise[iy * coarse + ix + 1] * tx * (1 - ty)
                    + noise[(iy + 1) * coarse + ix] * (1 - tx) * ty + noise[(iy + 1) * coarse + ix + 1] * tx * ty
                let brushed = 10 * sinf(fy * 140 + phase) + 6 * sinf(fx * 23 + fy * 7)
                let grain = Float.random(in: -6...6, using: &g)
                var v = gain * (128 + 14 * n + brushed) + grain
                // A darker machined rim around the part.
                let edge = min(fx, fy, 1 - fx, 1 - fy)
                if edge < 0.06 { v *= 0.55 }
                pixels[y * size + x] = UInt8(min(255, max(0, v.rounded())))
            }
        }
        return try Image(width: size, height: size, channels: 1, pixels: pixels)
    }

    /// A part with one defect of `type` and its mask.
    public static func defective(_ type: String, size: Int, generator g: inout SeededGenerator) throws -> Sample {
        var image = try good(size: size, generator: &g)
        var mask = [Bool](repeating: false, count: size * size)
        let s = Float(size)
        func paint(_ x: Int, _ y: Int, _ delta: Float) {
            guard x >= 0, y >= 0, x < size, y < size else { return }
            let v = Float(image.pixels[y * size + x]) + delta
            image.pixels[y * size + x] = UInt8(min(255, max(0, v)))
            mask[y * size + x] = true
        }
        switch type {
        case "spot":
            let cx = Float.random(in: 0.25...0.75, using: &g) * s, cy = Float.random(in: 0.25...0.75, using: &g) * s
            let r = Float.random(in: 0.035...0.07, using: &g) * s
            let delta: Float = Bool.random(using: &g) ? -70 : 60
            for y in Int(cy - r)...Int(cy + r) {
                for x in Int(cx - r)...Int(cx + r)
                where (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy) <= r * r {
                    paint(x, y, delta)
                }
            }
        case "scratch":
            var x = Float.random(in: 0.2...0.8, using: &g) * s, y = Float.random(in: 0.2...0.8, using: &g) * s
            let angle = Float.random(in: 0..<6.28, using: &g), length = Float.random(in: 0.25...0.45, using: &g) * s
            for _ in 0..<Int(length) {
                paint(Int(x), Int(y), 75)
                paint(Int(x) + 1, Int(y), 75)
                x += cosf(angle)
                y += sinf(angle)
            }
        default:  // crack: a dark jagged polyline
            var x = Float.random(in: 0.25...0.75, using: &g) * s, y = Float.random(in: 0.2...0.4, using: &g) * s
            for _ in 0..<Int(0.4 * s) {
                paint(Int(x), Int(y), -80)
                paint(Int(x), Int(y) + 1, -80)
                x += Float.random(in: -1.2...1.2, using: &g)
                y += 1
            }
        }
        return Sample(image: image, mask: mask)
    }

    /// Writes a dataset in the MVTec layout under `root`; returns the number of files written.
    @discardableResult
    public static func write(
        to root: String, train: Int = 40, testGood: Int = 10, testPerDefect: Int = 5,
        size: Int = 160, seed: UInt64 = 7
    ) throws -> Int {
        var g = SeededGenerator(seed: seed)
        let fm = FileManager.default
        var written = 0
        func save(_ image: Image, _ relative: String) throws {
            let path = (root as NSString).appendingPathComponent(relative)
            try fm.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try ImageCodec.writePNG(image, to: path)
            written += 1
        }
        for i in 0..<train { try save(try good(size: size, generator: &g), String(format: "train/good/%03d.png", i)) }
        for i in 0..<testGood { try save(try good(size: size, generator: &g), String(format: "test/good/%03d.png", i)) }
        for type in defectTypes {
            for i in 0..<testPerDefect {
                let sample = try defective(type, size: size, generator: &g)
                try save(sample.image, String(format: "test/\(type)/%03d.png", i))
                try save(
                    try Image(width: size, height: size, channels: 1, pixels: sample.mask.map { $0 ? 255 : 0 }),
                    String(format: "ground_truth/\(type)/%03d_mask.png", i))
            }
        }
        return written
    }
}
