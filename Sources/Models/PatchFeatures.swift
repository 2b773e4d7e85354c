import Tensors

/// Locally aware patch embeddings from the frozen EfficientNet-Lite0 teacher (the PatchCore
/// recipe, Roth et al. CVPR 2022): stride-8 (40 ch) and stride-16 (112 ch, bilinearly
/// upsampled to stride 8) features concatenated, optionally the stride-4 stage too (24 ch,
/// averaged over 2x2 down to stride 8), then averaged over each 3x3 neighbourhood so every
/// patch also sees its surroundings.
public struct PatchFeatureExtractor: Sendable {
    /// The frozen backbone.
    public let backbone: EfficientNetLite0
    /// Channels of an embedding without the stride-4 stage: 40 + 112.
    public static let dimension = 152
    /// Channels the stride-4 stage adds when asked for.
    public static let fineChannels = 24
    /// Pixels of input per embedding along each axis.
    public static let stride = 8

    /// Wraps a backbone.
    public init(backbone: EfficientNetLite0) { self.backbone = backbone }

    /// Channels of an embedding, with or without the stride-4 stage.
    public static func dimension(includingStride4 fine: Bool) -> Int { dimension + (fine ? fineChannels : 0) }

    /// (N, 3, H, W) normalized input -> (N, D, ceil(H / 8), ceil(W / 8)) embeddings, D = 152, or
    /// 176 with `includingStride4` (the stride-4 channels last, so the first 152 are the same).
    public func embed(_ input: Tensor, includingStride4 fine: Bool = false) -> Tensor {
        let stages = backbone.features(input, stages: fine ? [.stride4, .stride8, .stride16] : [.stride8, .stride16])
        guard let s8 = stages[.stride8], let s16 = stages[.stride16] else { return Tensor(shape: [0]) }
        var parts = [s8, upsampleBilinear(s16, height: s8.height, width: s8.width)]
        if fine, let s4 = stages[.stride4] { parts.append(Self.halved(s4, height: s8.height, width: s8.width)) }
        return pool2d(concatChannels(parts), kind: .average, kernel: 3, stride: 1, padding: 1)
    }

    /// (N, C, h, w) -> (N, C, height, width) averaging each 2x2 block, where height = ceil(h / 2)
    /// and width = ceil(w / 2) (the 'SAME' stride-2 grid); a block cut by the edge averages the
    /// cells it has.
    static func halved(_ x: Tensor, height: Int, width: Int) -> Tensor {
        let (n, c, h, w) = (x.batch, x.channels, x.height, x.width)
        var out = Tensor(shape: [n, c, height, width])
        x.storage.withUnsafeBufferPointer { src in
            out.storage.withUnsafeMutableBufferPointer { dst in
                for plane in 0..<(n * c) {
                    let s = plane * h * w, d = plane * height * width
                    for oy in 0..<height {
                        let y0 = 2 * oy, y1 = min(2 * oy + 2, h)
                        for ox in 0..<width {
                            let x0 = 2 * ox, x1 = min(2 * ox + 2, w)
                            var sum: Float = 0
                            for y in y0..<y1 { for xx in x0..<x1 { sum += src[s + y * w + xx] } }
                            dst[d + oy * width + ox] = sum / Float(max(1, (y1 - y0) * (x1 - x0)))
                        }
                    }
                }
            }
        }
        return out
    }
}
