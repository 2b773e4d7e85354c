import Foundation
import Imaging
import Tensors

/// A deterministic benchmark of small, thin defects on large, elongated parts: a long strip
/// with brushed, mottled texture and segment gaps along its length (a commutator or a web),
/// with hairline cracks, pinholes and faint stains of 0.02-0.5% of the image, exact masks, in
/// the MVTec AD layout. Squashing such a part square shrinks a 2-pixel crack below one
/// feature cell: this is the set that tells whether high-resolution inspection pays.
public enum SmallDefectParts {
    /// Defect kinds drawn on test images.
    public static let defectTypes = ["hairline", "pinhole", "stain"]

    /// Size and colour of the parts.
    public struct Shape: Sendable {
        /// Image width and height in pixels (the strip runs along the height).
        public var width: Int, height: Int
        /// 1 (grayscale) or 3 (a copper tint).
        public var channels: Int
        /// The default: 1024x2560 grayscale.
        public init(width: Int = 1024, height: Int = 2560, channels: Int = 1) {
            (self.width, self.height, self.channels) = (width, height, channels)
        }
    }

    /// A defect-free part as gray levels (width * height), before tinting.
    static func surface(_ shape: Shape, generator g: inout SeededGenerator) -> [Float] {
        let (w, h) = (shape.width, shape.height)
        let phase = Float.random(in: 0..<6.28, using: &g), gain = Float.random(in: 0.92...1.08, using: &g)
        let shift = Float.random(in: -4...4, using: &g), period = Float(h) / 10
        // Mottling: value noise on a coarse lattice, bilinearly interpolated.
        let cw = 12, ch = 30
        let noise = (0..<(cw * ch)).map { _ in Float.random(in: -1...1, using: &g) }
        var out = [Float](repeating: 0, count: w * h)
        for y in 0..<h {
            let gy = min(Float(ch - 1) - 0.001, Float(y) / Float(h) * Float(ch - 1))
            let iy = Int(gy), ty = gy - Float(iy)
            // Segment gaps every tenth of the length, slightly shifted from part to part.
            let along = (Float(y) + shift).truncatingRemainder(dividingBy: period)
            let gap = along < 7 ? Float(0.6) : 1
            for x in 0..<w {
                let gx = min(Float(cw - 1) - 0.001, Float(x) / Float(w) * Float(cw - 1))
                let ix = Int(gx), tx = gx - Float(ix)
                let n =
                    noise[iy * cw + ix] * (1 - tx) * (1 - ty) + noise[iy * cw + ix + 1] * tx * (1 - ty)
                    + noise[(iy + 1) * cw + ix] * (1 - tx) * ty + noise[(iy + 1) * cw + ix + 1] * tx * ty
                // Brushing runs along the strip (fine lines across x), with a slow waviness.
                let brushed = 7 * sinf(Float(x) * 0.9 + phase + 0.02 * Float(y)) + 4 * sinf(Float(x) * 0.13)
                let grain = Float.random(in: -5...5, using: &g)
                var v = gain * (130 + 16 * n + brushed) * gap + grain
                let edge = min(x, w - 1 - x)
                if edge < w / 20 { v *= 0.6 }
                out[y * w + x] = v
            }
        }
        return out
    }

    /// The gray levels as an image of `shape.channels` channels.
    static func image(_ values: [Float], _ shape: Shape) throws -> Image {
        let tint: [Float] = shape.channels == 3 ? [1.12, 0.82, 0.58] : [1]
        var pixels = [UInt8](repeating: 0, count: values.count * tint.count)
        for (i, v) in values.enumerated() {
            for (c, t) in tint.enumerated() { pixels[i * tint.count + c] = UInt8(min(255, max(0, (v * t).rounded()))) }
        }
        return try Image(width: shape.width, height: shape.height, channels: shape.channels, pixels: pixels)
    }

    /// A defect-free part.
    public static func good(_ shape: Shape, generator g: inout SeededGenerator) throws -> Image {
        try image(surface(shape, generator: &g), shape)
    }

    /// A part with one defect of `type` and its mask (true = defect).
    public static func defective(
        _ type: String, _ shape: Shape, generator g: inout SeededGenerator
    ) throws -> (image: Image, mask: [Bool]) {
        var values = surface(shape, generator: &g)
        let (w, h) = (shape.width, shape.height)
        var mask = [Bool](repeating: false, count: w * h)
        func paint(_ x: Int, _ y: Int, _ delta: Float) {
            guard x >= 0, y >= 0, x < w, y < h else { return }
            values[y * w + x] += delta
            mask[y * w + x] = true
        }
        let cx = Float.random(in: 0.15...0.85, using: &g) * Float(w)
        let cy = Float.random(in: 0.1...0.9, using: &g) * Float(h)
        switch type {
        case "pinhole":
            // A dark round hole, radius 12-20 px (0.02-0.05% of the default part).
            let r = Float.random(in: 12...20, using: &g)
            for y in Int(cy - r)...Int(cy + r) {
                for x in Int(cx - r)...Int(cx + r) {
                    let d = ((Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)).squareRoot()
                    if d <= r { paint(x, y, -55 * (1 - 0.4 * d / r)) }
                }
            }
        case "stain":
            // A faint blot with a soft rim, radii 40-110 px (0.2-0.5%), as deep as the surface's
            // own mottling but flat-topped; the mask is where it is at least half its depth.
            let rx = Float.random(in: 40...110, using: &g), ry = Float.random(in: 40...110, using: &g)
            let delta: Float = Bool.random(using: &g) ? -24 : 22
            for y in Int(cy - 1.6 * ry)...Int(cy + 1.6 * ry) where y >= 0 && y < h {
                for x in Int(cx - 1.6 * rx)...Int(cx + 1.6 * rx) where x >= 0 && x < w {
                    let q =
                        ((Float(x) - cx) / rx) * ((Float(x) - cx) / rx) + ((Float(y) - cy) / ry)
                        * ((Float(y) - cy) / ry)
                    let falloff = expf(-q * q * 0.7)
                    values[y * w + x] += delta * falloff
                    if falloff >= 0.5 { mask[y * w + x] = true }
                }
            }
        default:  // hairline: a dark, 2-pixel-wide jagged crack, 250-700 px long, mostly across the strip
            var x = cx, y = cy
            let angle = Float.random(in: -0.6...0.6, using: &g) + (Bool.random(using: &g) ? 0 : Float.pi)
            let length = Int(Float.random(in: 250...700, using: &g))
            for _ in 0..<length {
                paint(Int(x), Int(y), -45)
                paint(Int(x), Int(y) + 1, -45)
                x += cosf(angle) + Float.random(in: -0.3...0.3, using: &g)
                y += sinf(angle) + Float.random(in: -0.6...0.6, using: &g)
            }
        }
        return (try image(values, shape), mask)
    }

    /// Writes the benchmark in the MVTec layout under `root`; returns the number of files written.
    @discardableResult
    public static func write(
        to root: String, shape: Shape = Shape(), train: Int = 30, testGood: Int = 20, testPerDefect: Int = 12,
        seed: UInt64 = 11
    ) throws -> Int {
        var g = SeededGenerator(seed: seed)
        var written = 0
        func save(_ image: Image, _ relative: String) throws {
            let path = (root as NSString).appendingPathComponent(relative)
            try FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try ImageCodec.writePNG(image, to: path, compressionLevel: 1)
            written += 1
        }
        for i in 0..<train { try save(try good(shape, generator: &g), String(format: "train/good/%03d.png", i)) }
        for i in 0..<testGood { try save(try good(shape, generator: &g), String(format: "test/good/%03d.png", i)) }
        for type in defectTypes {
            for i in 0..<testPerDefect {
                let (image, mask) = try defective(type, shape, generator: &g)
                try save(image, String(format: "test/\(type)/%03d.png", i))
                try save(
                    try Image(width: shape.width, height: shape.height, channels: 1, pixels: mask.map { $0 ? 255 : 0 }),
                    String(format: "ground_truth/\(type)/%03d_mask.png", i))
            }
        }
        return written
    }
}
