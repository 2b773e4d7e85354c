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
public func parallelGEMM(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                         c: UnsafeMutablePointer<Float>, threads: Int = computeThreads,
                         epilogue: (Range<Int>, Range<Int>) -> Void) {
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
            sgemm(m: hi - lo, n: n, k: k, a: ap.pointer + lo * k, lda: k, b: bp.pointer, ldb: n, c: cp.pointer + lo * n, ldc: n)
            epilogue(lo..<hi, 0..<n)
        }
    }
    if chunks <= 1 || threads <= 1 {
        for chunk in 0..<chunks { work(chunk) }
    } else {
        DispatchQueue.concurrentPerform(iterations: chunks) { work($0) }
    }
}

/// 2-D convolution as im2col + `cblas_sgemm`, with bias and activation fused.
///
/// input (N, C, H, W), weight (O, C / groups, kh, kw), bias (O) or empty; returns (N, O, OH, OW).
/// Depthwise geometries are routed to `depthwiseConv2d`, which is faster for them. `threads`
/// 1 keeps the work on the calling thread (same numbers as any other count).
public func conv2d(_ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
                   activation: Activation = .none, threads: Int = computeThreads) -> Tensor {
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
    // No scratch for 1x1 convolutions: an empty array, not `unsafeUninitializedCapacity: 0`,
    // which writes its count into the shared empty-array storage (a race ThreadSanitizer sees).
    var columns = scratchCount == 0 ? [] : [Float](unsafeUninitializedCapacity: scratchCount) { _, done in done = scratchCount }
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
                                let a = wp + group * og * k
                                let groupBias = bs.baseAddress.map { $0 + group * og }
                                parallelGEMM(m: og, n: spatial, k: k, a: a, b: rhs, c: yout, threads: threads) { rows, cols in
                                    // Bias and activation on the block this worker just wrote, while it is in cache.
                                    for r in rows {
                                        let line = yout + r * spatial
                                        let bias = groupBias?[r] ?? 0
                                        switch activation {
                                        case .none: if bias != 0 { for i in cols { line[i] += bias } }
                                        case .relu: for i in cols { line[i] = max(0, line[i] + bias) }
                                        case .relu6: for i in cols { line[i] = min(6, max(0, line[i] + bias)) }
                                        }
                                    }
                                }
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
                            activation: Activation = .none) -> Tensor {
    precondition(g.isDepthwise && input.channels == g.inChannels && weight.shape == g.weightShape)
    let n = input.batch, h = input.height, w = input.width, c = g.inChannels
    let (oh, ow) = g.outputSize(height: h, width: w)
    let layout = PaddedPlane(height: h, width: w, geometry: g)
    return Tensor(shape: [n, c, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            weight.storage.withUnsafeBufferPointer { wt in
                bias.withUnsafeBufferPointer { bs in
                    guard let x = src.baseAddress, let wp = wt.baseAddress, let y = out.baseAddress else { return }
                    let total = n * c
                    let chunks = min(computeThreads, total)
                    let xs = UnsafeSendable(x), ys = UnsafeSendable(y), ws = UnsafeSendable(wp)
                    let bsp = bs.baseAddress.map { UnsafeSendable($0) }
                    let work = { (chunk: Int) in
                        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: layout.count)
                        scratch.initialize(repeating: 0, count: layout.count)
                        let accumulator = UnsafeMutablePointer<Float>.allocate(capacity: layout.accumulatorCount)
                        defer {
                            scratch.deallocate()
                            accumulator.deallocate()
                        }
                        for plane in (total * chunk / chunks)..<(total * (chunk + 1) / chunks) {
                            let ch = plane % c
                            layout.fill(scratch, from: xs.pointer + plane * h * w)
                            depthwisePlane(padded: scratch, layout: layout,
                                           kernel: ws.pointer + ch * g.kernel.h * g.kernel.w, accumulator: accumulator,
                                           output: ys.pointer + plane * oh * ow, bias: bsp?.pointer[ch] ?? 0,
                                           activation: activation)
                        }
                    }
                    if chunks == 1 { work(0) } else { DispatchQueue.concurrentPerform(iterations: chunks, execute: work) }
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

/// A zero-padded copy of one input plane, laid out so that every depthwise output is a sum of
/// contiguous loads (see `depthwisePlane`).
///
/// Stride 1: one padded plane; tap (i, j) of output p reads `plane[p + i * rowStride + j]`.
/// Stride 2: four polyphase planes, phase (a, b) holding padded pixels (2r + a, 2c + b); tap
/// (i, j) reads phase (i % 2, j % 2) at `p + (i / 2) * rowStride + j / 2`, so a strided
/// convolution needs no gathers and no wasted columns.
struct PaddedPlane {
    let height: Int, width: Int, geometry: ConvGeometry
    let outHeight: Int, outWidth: Int
    /// Row stride of each (phase) plane, which is also the accumulator's row stride.
    let rowStride: Int
    let planeCount: Int
    /// Elements per (phase) plane.
    let planeSize: Int
    /// Offset of each tap's first element from the start of the scratch buffer.
    let tapOffsets: [Int]

    init(height: Int, width: Int, geometry g: ConvGeometry) {
        precondition(g.stride.h == g.stride.w && g.stride.w <= 2, "depthwise kernels take stride 1 or 2")
        self.height = height
        self.width = width
        self.geometry = g
        (outHeight, outWidth) = g.outputSize(height: height, width: width)
        let s = g.stride.w
        let paddedW = width + g.padding.left + g.padding.right, paddedH = height + g.padding.top + g.padding.bottom
        // Enough columns and rows that the last output's farthest tap stays inside, plus one row of slack.
        rowStride = max((paddedW + s - 1) / s, outWidth + (g.kernel.w - 1) / s)
        let rows = max((paddedH + s - 1) / s, outHeight + (g.kernel.h - 1) / s) + 1
        planeCount = s * s
        planeSize = rowStride * rows
        var offsets = [Int]()
        for i in 0..<g.kernel.h {
            for j in 0..<g.kernel.w {
                let phase = (i % s) * s + (j % s)
                offsets.append(phase * planeSize + (i / s) * rowStride + j / s)
            }
        }
        tapOffsets = offsets
    }

    var count: Int { planeCount * planeSize }
    var accumulatorCount: Int { outHeight * rowStride }

    /// Copies a plane in; the padding stays zero from the initial fill (never written).
    func fill(_ scratch: UnsafeMutablePointer<Float>, from x: UnsafePointer<Float>) {
        let pt = geometry.padding.top, pl = geometry.padding.left
        if planeCount == 1 {
            for y in 0..<height {
                (scratch + (y + pt) * rowStride + pl).update(from: x + y * width, count: width)
            }
            return
        }
        for y in 0..<height {
            let r = y + pt
            let src = x + y * width
            for b in 0..<2 {
                // Phase b holds padded columns 2c + b, i.e. source columns 2c + b - pl.
                let lo = max(0, (pl - b + 1) / 2), hi = (width - 1 + pl - b) / 2
                if hi < lo { continue }
                let dst = scratch + ((r % 2) * 2 + b) * planeSize + (r / 2) * rowStride
                let base = src + (b - pl)
                for c in lo...hi { dst[c] = base[2 &* c] }
            }
        }
    }
}

/// One channel of a depthwise convolution over a padded plane.
///
/// One long loop over the flattened output computes every value with all kernel taps summed
/// in registers, into `accumulator` (outHeight x rowStride: a few unused columns per row);
/// the valid columns are then copied out through the activation. Measured alternatives:
/// per-row loops (loop set-up on 32- or 64-wide rows cost more than the arithmetic), one
/// pass per tap (a load and a store per tap) and strided gathers were 1.5-3x slower.
func depthwisePlane(padded x: UnsafePointer<Float>, layout: PaddedPlane, kernel k: UnsafePointer<Float>,
                    accumulator acc: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>,
                    bias: Float, activation: Activation) {
    let kh = layout.geometry.kernel.h, kw = layout.geometry.kernel.w
    let oh = layout.outHeight, ow = layout.outWidth, rs = layout.rowStride
    let count = layout.accumulatorCount
    // 3x3 and 5x5 (every EfficientNet depthwise layer) are spelled out so the weights and the
    // tap pointers stay in registers.
    layout.tapOffsets.withUnsafeBufferPointer { o in
        withUnsafeTemporaryAllocation(of: Float.self, capacity: kh * kw) { weights in
            for t in 0..<(kh * kw) { weights[t] = k[t] }
            let w = UnsafePointer(weights.baseAddress ?? UnsafeMutablePointer(mutating: k))
            if kh == 3 && kw == 3 {
            let t0 = x + o[0], t1 = x + o[1], t2 = x + o[2], t3 = x + o[3], t4 = x + o[4]
            let t5 = x + o[5], t6 = x + o[6], t7 = x + o[7], t8 = x + o[8]
            for p in 0..<count {
                acc[p] = bias + w[0] * t0[p] + w[1] * t1[p] + w[2] * t2[p]
                    + w[3] * t3[p] + w[4] * t4[p] + w[5] * t5[p]
                    + w[6] * t6[p] + w[7] * t7[p] + w[8] * t8[p]
            }
            } else if kh == 5 && kw == 5 {
            let t0 = x + o[0], t1 = x + o[1], t2 = x + o[2], t3 = x + o[3], t4 = x + o[4]
            let t5 = x + o[5], t6 = x + o[6], t7 = x + o[7], t8 = x + o[8], t9 = x + o[9]
            let t10 = x + o[10], t11 = x + o[11], t12 = x + o[12], t13 = x + o[13], t14 = x + o[14]
            let t15 = x + o[15], t16 = x + o[16], t17 = x + o[17], t18 = x + o[18], t19 = x + o[19]
            let t20 = x + o[20], t21 = x + o[21], t22 = x + o[22], t23 = x + o[23], t24 = x + o[24]
            for p in 0..<count {
                acc[p] = bias + w[0] * t0[p] + w[1] * t1[p] + w[2] * t2[p]
                    + w[3] * t3[p] + w[4] * t4[p] + w[5] * t5[p]
                    + w[6] * t6[p] + w[7] * t7[p] + w[8] * t8[p]
                    + w[9] * t9[p] + w[10] * t10[p] + w[11] * t11[p]
                    + w[12] * t12[p] + w[13] * t13[p] + w[14] * t14[p]
                    + w[15] * t15[p] + w[16] * t16[p] + w[17] * t17[p]
                    + w[18] * t18[p] + w[19] * t19[p] + w[20] * t20[p]
                    + w[21] * t21[p] + w[22] * t22[p] + w[23] * t23[p]
                    + w[24] * t24[p]
            }
            } else {
                for p in 0..<count {
                    var v = bias
                    for t in 0..<(kh * kw) { v += w[t] * x[o[t] &+ p] }
                    acc[p] = v
                }
            }
        }
    }
    for oy in 0..<oh {
        let from = acc + oy * rs, to = y + oy * ow
        switch activation {
        case .none: to.update(from: from, count: ow)
        case .relu: for ox in 0..<ow { to[ox] = max(0, from[ox]) }
        case .relu6: for ox in 0..<ow { to[ox] = min(6, max(0, from[ox])) }
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
