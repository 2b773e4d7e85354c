import Dispatch

/// An activation applied in the same pass as the bias (a fused epilogue).
public enum Activation: String, Sendable {
    /// Identity.
    case none
    /// max(0, x).
    case relu
    /// min(max(0, x), 6), as in MobileNet and EfficientNet-Lite.
    case relu6

    /// Applies the activation to one value.
    @inlinable
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(0, x)
        case .relu6: return min(6, max(0, x))
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
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1,
                padding: (top: Int, bottom: Int, left: Int, right: Int) = (0, 0, 0, 0), groups: Int = 1) {
        precondition(groups > 0 && inChannels % groups == 0 && outChannels % groups == 0)
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = (kernel, kernel)
        self.stride = (stride, stride)
        self.padding = padding
        self.groups = groups
    }

    /// Symmetric padding `pad` on all sides.
    public static func symmetric(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, pad: Int,
                                 groups: Int = 1) -> ConvGeometry {
        ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                     padding: (pad, pad, pad, pad), groups: groups)
    }

    /// TensorFlow 'SAME' padding for an input of `height` x `width`: output = ceil(input / stride),
    /// the odd leftover pixel of padding goes to the bottom/right.
    public static func same(inChannels: Int, outChannels: Int, kernel: Int, stride: Int, height: Int, width: Int,
                            groups: Int = 1) -> ConvGeometry {
        func pads(_ size: Int) -> (Int, Int) {
            let out = (size + stride - 1) / stride
            let total = max((out - 1) * stride + kernel - size, 0)
            return (total / 2, total - total / 2)
        }
        let (t, b) = pads(height), (l, r) = pads(width)
        return ConvGeometry(inChannels: inChannels, outChannels: outChannels, kernel: kernel, stride: stride,
                            padding: (t, b, l, r), groups: groups)
    }

    /// Output height and width for an input of `height` x `width`.
    @inlinable
    public func outputSize(height: Int, width: Int) -> (h: Int, w: Int) {
        ((height + padding.top + padding.bottom - kernel.h) / stride.h + 1,
         (width + padding.left + padding.right - kernel.w) / stride.w + 1)
    }

    /// Weight shape (O, C / groups, kh, kw).
    public var weightShape: [Int] { [outChannels, inChannels / groups, kernel.h, kernel.w] }

    /// Whether the convolution is a plain 1x1, stride 1, unpadded channel mix (no im2col needed).
    public var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && padding == (0, 0, 0, 0)
    }

    /// Whether every group has one input and one output channel.
    public var isDepthwise: Bool { groups == inChannels && groups == outChannels }

    public static func == (a: ConvGeometry, b: ConvGeometry) -> Bool {
        a.inChannels == b.inChannels && a.outChannels == b.outChannels && a.kernel == b.kernel
            && a.stride == b.stride && a.padding == b.padding && a.groups == b.groups
    }
}

/// Unfolds one image's group of channels into columns: (C * kh * kw, OH * OW).
///
/// input: (C, H, W) at `input`; writes `columns`.
@inlinable
public func im2col(_ input: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                   geometry g: ConvGeometry, columns: UnsafeMutablePointer<Float>) {
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
                        for x in 0..<ow {
                            let ix = x * sw + j - pl
                            line[x] = (ix >= 0 && ix < width) ? src[ix] : 0
                        }
                    }
                }
                row += 1
            }
        }
    }
}

/// Adds a per-channel bias and applies an activation in place over (C, HW).
@inlinable
public func biasActivate(_ data: UnsafeMutablePointer<Float>, channels: Int, spatial: Int, bias: UnsafePointer<Float>?,
                         activation: Activation) {
    for c in 0..<channels {
        let b = bias?[c] ?? 0
        let p = data + c * spatial
        switch activation {
        case .none: if b != 0 { for i in 0..<spatial { p[i] += b } }
        case .relu: for i in 0..<spatial { p[i] = max(0, p[i] + b) }
        case .relu6: for i in 0..<spatial { p[i] = min(6, max(0, p[i] + b)) }
        }
    }
}

/// 2-D convolution as im2col + `cblas_sgemm`, with bias and activation fused.
///
/// input (N, C, H, W), weight (O, C / groups, kh, kw), bias (O) or empty; returns (N, O, OH, OW).
/// Depthwise geometries are routed to `depthwiseConv2d`, which is faster for them.
public func conv2d(_ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
                   activation: Activation = .none) -> Tensor {
    precondition(input.shape.count == 4 && input.channels == g.inChannels, "input \(input.shape) vs \(g)")
    precondition(weight.shape == g.weightShape, "weight \(weight.shape) vs \(g.weightShape)")
    precondition(bias.isEmpty || bias.count == g.outChannels)
    if g.isDepthwise && g.groups > 1 {
        return depthwiseConv2d(input, weight: weight, bias: bias, geometry: g, activation: activation)
    }
    let n = input.batch, h = input.height, w = input.width
    let (oh, ow) = g.outputSize(height: h, width: w)
    let cg = g.inChannels / g.groups, og = g.outChannels / g.groups
    let k = cg * g.kernel.h * g.kernel.w
    let spatial = oh * ow
    let scratchCount = g.isPointwise ? 0 : k * spatial
    var columns = [Float](unsafeUninitializedCapacity: scratchCount) { _, done in done = scratchCount }
    return Tensor(shape: [n, g.outChannels, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            weight.storage.withUnsafeBufferPointer { wt in
                columns.withUnsafeMutableBufferPointer { col in
                    bias.withUnsafeBufferPointer { bs in
                        guard let x = src.baseAddress, let wp = wt.baseAddress, let y = out.baseAddress else { return }
                        for b in 0..<n {
                            for group in 0..<g.groups {
                                let xin = x + (b * g.inChannels + group * cg) * h * w
                                let yout = y + (b * g.outChannels + group * og) * spatial
                                let rhs: UnsafePointer<Float>
                                if g.isPointwise {
                                    rhs = xin
                                } else if let c = col.baseAddress {
                                    im2col(xin, channels: cg, height: h, width: w, geometry: g, columns: c)
                                    rhs = UnsafePointer(c)
                                } else { continue }
                                sgemm(m: og, n: spatial, k: k, a: wp + group * og * k, lda: k, b: rhs, ldb: spatial,
                                      c: yout, ldc: spatial)
                                biasActivate(yout, channels: og, spatial: spatial,
                                             bias: bs.baseAddress.map { $0 + group * og }, activation: activation)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Depthwise convolution (one filter per channel) as a direct loop, split across cores by channel.
///
/// input (N, C, H, W), weight (C, 1, kh, kw), bias (C) or empty; returns (N, C, OH, OW).
public func depthwiseConv2d(_ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
                            activation: Activation = .none, threads: Int = 2) -> Tensor {
    precondition(g.isDepthwise && input.channels == g.inChannels && weight.shape == g.weightShape)
    let n = input.batch, h = input.height, w = input.width, c = g.inChannels
    let (oh, ow) = g.outputSize(height: h, width: w)
    return Tensor(shape: [n, c, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            weight.storage.withUnsafeBufferPointer { wt in
                bias.withUnsafeBufferPointer { bs in
                    guard let x = src.baseAddress, let wp = wt.baseAddress, let y = out.baseAddress else { return }
                    let total = n * c
                    let chunks = total * oh * ow >= 32_768 ? max(1, threads) : 1
                    let xs = UnsafeSendable(x), ys = UnsafeSendable(y), ws = UnsafeSendable(wp)
                    let bsp = bs.baseAddress.map { UnsafeSendable($0) }
                    DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                        let lo = total * chunk / chunks, hi = total * (chunk + 1) / chunks
                        for plane in lo..<hi {
                            let ch = plane % c
                            depthwisePlane(xs.pointer + plane * h * w, height: h, width: w,
                                           kernel: ws.pointer + ch * g.kernel.h * g.kernel.w, geometry: g,
                                           output: ys.pointer + plane * oh * ow, bias: bsp?.pointer[ch] ?? 0,
                                           activation: activation)
                        }
                    }
                }
            }
        }
    }
}

/// A pointer handed to concurrent workers that write disjoint ranges.
public struct UnsafeSendable<T>: @unchecked Sendable {
    /// The wrapped pointer.
    public let pointer: T
    /// Wraps `pointer`.
    public init(_ pointer: T) { self.pointer = pointer }
}

/// One channel of a depthwise convolution: output row by row, kernel tap by tap, so the
/// innermost loop runs over contiguous output pixels (vectorizes for stride 1).
@inlinable
func depthwisePlane(_ x: UnsafePointer<Float>, height h: Int, width w: Int, kernel k: UnsafePointer<Float>,
                    geometry g: ConvGeometry, output y: UnsafeMutablePointer<Float>, bias: Float,
                    activation: Activation) {
    let (oh, ow) = g.outputSize(height: h, width: w)
    let kh = g.kernel.h, kw = g.kernel.w, sh = g.stride.h, sw = g.stride.w
    let pt = g.padding.top, pl = g.padding.left
    for oy in 0..<oh {
        let line = y + oy * ow
        line.update(repeating: bias, count: ow)
        for i in 0..<kh {
            let iy = oy * sh + i - pt
            if iy < 0 || iy >= h { continue }
            let src = x + iy * w
            for j in 0..<kw {
                let wv = k[i * kw + j]
                // valid ox: 0 <= ox*sw + j - pl < w
                let lo = max(0, (pl - j + sw - 1) / sw)
                let hi = min(ow, (w - 1 + pl - j) / sw + 1)
                if hi <= lo { continue }
                if sw == 1 {
                    let s = src + (j - pl)
                    for ox in lo..<hi { line[ox] += wv * s[ox] }
                } else {
                    let s = src + (j - pl)
                    for ox in lo..<hi { line[ox] += wv * s[ox * sw] }
                }
            }
        }
        switch activation {
        case .none: break
        case .relu: for ox in 0..<ow { line[ox] = max(0, line[ox]) }
        case .relu6: for ox in 0..<ow { line[ox] = min(6, max(0, line[ox])) }
        }
    }
}

/// The oracle for `conv2d` and `depthwiseConv2d`: the definition as nested loops, in Double.
public func naiveConv2d(_ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
                        activation: Activation = .none) -> Tensor {
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
public func foldBatchNorm(weight: Tensor, bias: [Float], gamma: [Float], beta: [Float], mean: [Float],
                          variance: [Float], epsilon: Float) -> (weight: Tensor, bias: [Float]) {
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
