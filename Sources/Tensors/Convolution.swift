import Dispatch

/// An activation applied in the same pass as the bias (a fused epilogue).
public enum Activation: String, Sendable {
    /// Identity.
    case none
    /// max(0, x).
    case relu
    /// min(max(0, x), 6), as in MobileNet and EfficientNet-Lite.
    case relu6
    /// x for x > 0, else 0.2 x: the leaky ReLU of GAN discriminators (DCGAN, Radford et al. 2016).
    case leakyRelu

    /// The leaky ReLU's slope for negative inputs.
    public static let leakySlope: Float = 0.2

    /// Applies the activation to one value.
    @inlinable
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(0, x)
        case .relu6: return min(6, max(0, x))
        case .leakyRelu: return x > 0 ? x : Activation.leakySlope * x
        }
    }
}

/// Shape parameters of a 2-D convolution: kernel, stride, explicit (possibly asymmetric)
/// padding and channel groups.
public struct ConvGeometry: Equatable, Sendable {
    /// Input channels.
    public var inChannels: Int
    /// Output channels.
    public var outChannels: Int
    /// Kernel height and width.
    public var kernel: (h: Int, w: Int)
    /// Stride along height and width.
    public var stride: (h: Int, w: Int)
    /// Zero padding on each side.
    public var padding: (top: Int, bottom: Int, left: Int, right: Int)
    /// Channel groups: 1 for a dense convolution, `inChannels` for depthwise.
    public var groups: Int

    /// Creates a geometry; channels must be divisible by `groups`.
    public init(
        inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
        padding: (top: Int, bottom: Int, left: Int, right: Int) = (0, 0, 0, 0), groups: Int = 1
    ) {
        precondition(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0)
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = (kernel, kernel)
        self.stride = (stride, stride)
        self.padding = padding
        self.groups = groups
    }

    /// Symmetric padding `pad` on all sides.
    public static func symmetric(
        inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, pad: Int,
        groups: Int = 1
    ) -> ConvGeometry {
        ConvGeometry(
            inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
            padding: (pad, pad, pad, pad), groups: groups)
    }

    /// TensorFlow 'SAME' padding for an input of `height` x `width`: output = ceil(input / stride),
    /// the odd leftover pixel of padding goes to the bottom/right.
    public static func same(
        inChannels: Int, outChannels: Int, kernel: Int, stride: Int, height: Int, width: Int,
        groups: Int = 1
    ) -> ConvGeometry {
        func pads(_ size: Int) -> (Int, Int) {
            let out = (size + stride - 1) / stride
            let total = max((out - 1) * stride + kernel - size, 0)
            return (total / 2, total - total / 2)
        }
        let (t, b) = pads(height), (l, r) = pads(width)
        return ConvGeometry(
            inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
            padding: (t, b, l, r), groups: groups)
    }

    /// Output height and width for an input of `height` x `width`.
    @inlinable
    public func outputSize(height: Int, width: Int) -> (h: Int, w: Int) {
        (
            (height + padding.top + padding.bottom - kernel.h) / stride.h + 1,
            (width + padding.left + padding.right - kernel.w) / stride.w + 1
        )
    }

    /// Weight shape (O, C / groups, kh, kw).
    public var weightShape: [Int] { [outChannels, inChannels / groups, kernel.h, kernel.w] }

    /// Whether the convolution is a plain 1x1, stride 1, unpadded channel mix (no im2col needed).
    public var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && padding == (0, 0, 0, 0)
    }

    /// Whether two geometries describe the same convolution.
    public static func == (a: ConvGeometry, b: ConvGeometry) -> Bool {
        a.inChannels == b.inChannels && a.outChannels == b.outChannels && a.kernel == b.kernel
            && a.stride == b.stride && a.padding == b.padding && a.groups == b.groups
    }
}

/// Unfolds one image's group of channels into columns: (C * kh * kw, OH * OW).
///
/// input: (C, H, W) at `input`; writes `columns`.
@inlinable
public func im2col(
    _ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
    geometry g: ConvGeometry, columns: UnsafeMutablePointer<Float>
) {
    let (oh, ow) = g.outputSize(height: height, width: width)
    let kh = g.kernel.h, kw = g.kernel.w, sh = g.stride.h, sw = g.stride.w
    let pt = g.padding.top, pl = g.padding.left
    var row = 0
    for c in 0..<channels {
        let plane = input + c * height * width
        for i in 0..<kh {
            for j in 0..<kw {
                let out = columns + row * oh * ow
                for y in 0..<oh {
                    let iy = y * sh + i - pt
                    let line = out + y * ow
                    if iy < 0 || iy >= height {
                        line.update(repeating: 0, count: ow)
                        continue
                    }
                    let src = plane + iy * width
                    if sw == 1 {
                        // contiguous span: x + j - pl in [0, width)
                        let x0 = max(0, pl - j), x1 = min(ow, width + pl - j)
                        if x0 > 0 { line.update(repeating: 0, count: x0) }
                        if x1 > x0 { (line + x0).update(from: src + (x0 + j - pl), count: x1 - x0) }
                        if x1 < ow { (line + max(x1, 0)).update(repeating: 0, count: ow - max(x1, 0)) }
                    } else {
                        // Columns whose source x * sw + j - pl lies inside the row: a strided
                        // gather without bounds checks; zeros on either side.
                        let x0 = min(ow, max(0, (pl - j + sw - 1) / sw))
                        let x1 = max(x0, min(ow, (width + pl - j + sw - 1) / sw))
                        if x0 > 0 { line.update(repeating: 0, count: x0) }
                        var from = src + (x0 * sw + j - pl)
                        for x in x0..<x1 {
                            line[x] = from.pointee
                            from += sw
                        }
                        if x1 < ow { (line + x1).update(repeating: 0, count: ow - x1) }
                    }
                }
                row += 1
            }
        }
    }
}

/// How many blocks `parallelGEMM` cuts a product into, whatever the thread count: OpenBLAS
/// may round a block differently from the whole (its kernels depend on the shape), so the cut
/// must not depend on --threads for 1 and 2 threads to give the same bytes.
public let gemmBlocks = 2

/// C (M, N) = A (M, K) x B (K, N), row-major and densely packed, cut into up to `gemmBlocks`
/// blocks: by columns when N is large (each worker packs only its share of B), by rows
/// otherwise; the blocks run side by side when `threads` > 1, one after the other otherwise.
/// `epilogue(rows, columns)` runs on each finished block.
public func parallelGEMM(
    m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
    c: UnsafeMutablePointer<Float>, threads: Int = computeThreads,
    epilogue: (Range<Int>, Range<Int>) -> Void
) {
    let byColumns = n >= 1024
    let extent = byColumns ? n : m
    let chunks = min(gemmBlocks, max(1, extent / (byColumns ? 256 : 8)))
    let (ap, bp, cp) = (UnsafeSendable(a), UnsafeSendable(b), UnsafeSendable(c))
    func work(_ chunk: Int) {
        // Column blocks start on multiples of 16 floats so each worker's rows stay aligned.
        var lo = extent * chunk / chunks, hi = extent * (chunk + 1) / chunks
        if byColumns {
            lo = chunk == 0 ? 0 : lo / 16 * 16
            hi = chunk == chunks - 1 ? n : hi / 16 * 16
        }
        if hi <= lo { return }
        if byColumns {
            sgemm(m: m, n: hi - lo, k: k, a: ap.pointer, lda: k, b: bp.pointer + lo, ldb: n, c: cp.pointer + lo, ldc: n)
            epilogue(0..<m, lo..<hi)
        } else {
            sgemm(
                m: hi - lo, n: n, k: k, a: ap.pointer + lo * k, lda: k, b: bp.pointer, ldb: n, c: cp.pointer + lo * n,
                ldc: n)
            epilogue(lo..<hi, 0..<n)
        }
    }
    if chunks <= 1 || threads <= 1 {
        for chunk in 0..<chunks { work(chunk) }
    } else {
        DispatchQueue.concurrentPerform(iterations: chunks) { work($0) }
    }
}

/// The oracle for the convolution kernels: the definition as nested loops, in Double.
public func naiveConv2d(
    _ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
    activation: Activation = .none
) -> Tensor {
    let n = input.batch, h = input.height, w = input.width
    let (oh, ow) = g.outputSize(height: h, width: w)
    let cg = g.inChannels / g.groups, og = g.outChannels / g.groups
    var out = Tensor(shape: [n, g.outChannels, oh, ow])
    for b in 0..<n {
        for o in 0..<g.outChannels {
            let group = o / og
            for y in 0..<oh {
                for x in 0..<ow {
                    var acc = bias.isEmpty ? 0.0 : Double(bias[o])
                    for ci in 0..<cg {
                        let c = group * cg + ci
                        for i in 0..<g.kernel.h {
                            for j in 0..<g.kernel.w {
                                let iy = y * g.stride.h + i - g.padding.top
                                let ix = x * g.stride.w + j - g.padding.left
                                if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                                acc += Double(input[b, c, iy, ix]) * Double(weight[o, ci, i, j])
                            }
                        }
                    }
                    out[b, o, y, x] = activation.apply(Float(acc))
                }
            }
        }
    }
    return out
}

/// Folds an inference-mode batch norm into the preceding convolution's weight and bias:
/// w' = w * gamma / sqrt(var + eps), b' = (b - mean) * gamma / sqrt(var + eps) + beta.
public func foldBatchNorm(
    weight: Tensor, bias: [Float], gamma: [Float], beta: [Float], mean: [Float],
    variance: [Float], epsilon: Float
) -> (weight: Tensor, bias: [Float]) {
    let o = weight.shape[0]
    precondition(gamma.count == o && beta.count == o && mean.count == o && variance.count == o)
    let per = weight.count / o
    var w = weight
    var b = [Float](repeating: 0, count: o)
    for i in 0..<o {
        let scale = gamma[i] / (variance[i] + epsilon).squareRoot()
        for j in 0..<per { w.storage[i * per + j] *= scale }
        b[i] = ((bias.isEmpty ? 0 : bias[i]) - mean[i]) * scale + beta[i]
    }
    return (w, b)
}
