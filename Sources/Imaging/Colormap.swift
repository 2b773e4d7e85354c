/// Colour maps for heatmaps: a value in 0...1 becomes an RGB colour.
public enum Colormap: String, Sendable, CaseIterable {
    /// Turbo (Mikhailov, Google AI Blog 2019), evaluated with its published polynomial fit.
    case turbo
    /// Inferno (van der Walt & Smith, matplotlib 2015), perceptually uniform, evaluated with
    /// Matt Zucker's degree-6 polynomial fit of the matplotlib table.
    case inferno

    /// The colour for `value` (clamped to 0...1), components in 0...1.
    @inlinable
    public func rgb(_ value: Float) -> (r: Float, g: Float, b: Float) {
        let t = value.isNaN ? 0 : min(1, max(0, value))
        switch self {
        case .turbo:
            let t2 = t * t, t3 = t2 * t, t4 = t2 * t2, t5 = t4 * t
            let r =
                0.13572138 + 4.61539260 * t - 42.66032258 * t2 + 132.13108234 * t3 - 152.94239396 * t4 + 59.28637943
                * t5
            let g = 0.09140261 + 2.19418839 * t + 4.84296658 * t2 - 14.18503333 * t3 + 4.27729857 * t4 + 2.82956604 * t5
            let b =
                0.10667330 + 12.64194608 * t - 60.58204836 * t2 + 110.36276771 * t3 - 89.90310912 * t4 + 27.34824973
                * t5
            return (min(1, max(0, r)), min(1, max(0, g)), min(1, max(0, b)))
        case .inferno:
            func poly(_ c: (Float, Float, Float, Float, Float, Float, Float)) -> Float {
                let v = c.0 + t * (c.1 + t * (c.2 + t * (c.3 + t * (c.4 + t * (c.5 + t * c.6)))))
                return min(1, max(0, v))
            }
            return (
                poly(
                    (
                        0.0002189403691192265, 0.1065134194856116, 11.60249308247187, -41.70399613139459,
                        77.162935699427, -71.31942824499214, 25.13112622477341
                    )),
                poly(
                    (
                        0.001651004631001012, 0.5639564367884091, -3.972853965665698, 17.43639888205313,
                        -33.40235894210092, 32.62606426397723, -12.24266895238567
                    )),
                poly(
                    (
                        -0.01948089843709184, 3.932712388889277, -15.9423941062914, 44.35414519872813,
                        -81.80730925738993, 73.20951985803202, -23.07032500287172
                    ))
            )
        }
    }

    /// A 256-entry RGB lookup table.
    public func table() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 768)
        for i in 0..<256 {
            let (r, g, b) = rgb(Float(i) / 255)
            out[3 * i] = UInt8((r * 255).rounded())
            out[3 * i + 1] = UInt8((g * 255).rounded())
            out[3 * i + 2] = UInt8((b * 255).rounded())
        }
        return out
    }

    /// Colours a (H, W) map: `low` maps to the first colour and `high` to the last.
    public func colorize(_ map: [Float], width: Int, height: Int, low: Float = 0, high: Float = 1) throws -> Image {
        guard map.count == width * height else {
            throw ImageError(
                path: nil, reason: .invalidArgument("map has \(map.count) values, expected \(width * height)"))
        }
        let lut = table()
        let span = high > low ? high - low : 1
        var pixels = [UInt8](repeating: 0, count: map.count * 3)
        map.withUnsafeBufferPointer { m in
            lut.withUnsafeBufferPointer { t in
                pixels.withUnsafeMutableBufferPointer { p in
                    for i in 0..<m.count {
                        let v = m[i].isNaN ? 0 : min(1, max(0, (m[i] - low) / span))
                        let k = 3 * Int((v * 255).rounded())
                        p[3 * i] = t[k]
                        p[3 * i + 1] = t[k + 1]
                        p[3 * i + 2] = t[k + 2]
                    }
                }
            }
        }
        return try Image(width: width, height: height, channels: 3, pixels: pixels)
    }
}
