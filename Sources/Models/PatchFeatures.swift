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
        let s4 = fine ? stages[.stride4].map { Self.halved($0, height: s8.height, width: s8.width) } : nil
        return Self.neighbourhoodMeans(s8, s16, s4)
    }

    /// [s8, s16 upsampled to s8's grid, s4 (already on it)] stacked by channel and averaged over
    /// each 3x3 neighbourhood (`pool2d`'s average), plane by plane and split between the
    /// threads: as upsampling, stacking and pooling one after the other on one thread, this was
    /// 0.66 ms of every image's 3.8 ms of teacher features. The same arithmetic per value.
    static func neighbourhoodMeans(_ s8: Tensor, _ s16: Tensor, _ s4: Tensor?) -> Tensor {
        let (n, h, w) = (s8.batch, s8.height, s8.width)
        let (c8, c16, c4) = (s8.channels, s16.channels, s4?.channels ?? 0), total = c8 + c16 + c4
        let ty = bilinearTaps(output: h, input: s16.height), tx = bilinearTaps(output: w, input: s16.width)
        let planes = n * total, workers = max(1, min(computeThreads, planes))
        return Tensor(shape: [n, total, h, w]) { out in
            s8.storage.withUnsafeBufferPointer { a in
                s16.storage.withUnsafeBufferPointer { b in
                    (s4?.storage ?? []).withUnsafeBufferPointer { f in
                        guard let a = a.baseAddress, let b = b.baseAddress, let y = out.baseAddress else { return }
                        let (sa, sb, sy) = (UnsafeSendable(a), UnsafeSendable(b), UnsafeSendable(y))
                        let sf = f.baseAddress.map { UnsafeSendable($0) }
                        parallelLayer(iterations: workers, threads: workers) { worker in
                            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 2 * h * w)
                            defer { scratch.deallocate() }
                            for p in (planes * worker / workers)..<(planes * (worker + 1) / workers) {
                                let (image, c) = p.quotientAndRemainder(dividingBy: total)
                                let source: UnsafePointer<Float>
                                if c < c8 {
                                    source = UnsafePointer(sa.pointer + (image * c8 + c) * h * w)
                                } else if c < c8 + c16 {
                                    let plane = image * c16 + c - c8, (sh, sw) = (s16.height, s16.width)
                                    upsampleBilinear(
                                        plane: sb.pointer + plane * sh * sw, height: sh, width: sw,
                                        rowTaps: ty, columnTaps: tx, into: scratch + h * w)
                                    source = UnsafePointer(scratch + h * w)
                                } else if let f = sf?.pointer {
                                    source = f + (image * c4 + c - c8 - c16) * h * w
                                } else {
                                    continue  // no s4 planes: total has none past c8 + c16
                                }
                                boxAverage3x3(
                                    plane: source, height: h, width: w, rows: scratch, into: sy.pointer + p * h * w)
                            }
                        }
                    }
                }
            }
        }
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
