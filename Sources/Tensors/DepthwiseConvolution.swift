import Dispatch

/// Depthwise convolution (one filter per channel) as a direct loop, split across cores by channel.
///
/// input (N, C, H, W), weight (C, 1, kh, kw), bias (C) or empty; returns (N, C, OH, OW).
public func depthwiseConv2d(
    _ input: Tensor, weight: Tensor, bias: [Float] = [], geometry g: ConvGeometry,
    activation: Activation = .none
) -> Tensor {
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
                            depthwisePlane(
                                padded: scratch, layout: layout,
                                kernel: ws.pointer + ch * g.kernel.h * g.kernel.w, accumulator: accumulator,
                                output: ys.pointer + plane * oh * ow, bias: bsp?.pointer[ch] ?? 0,
                                activation: activation)
                        }
                    }
                    if chunks == 1 {
                        work(0)
                    } else {
                        DispatchQueue.concurrentPerform(iterations: chunks, execute: work)
                    }
                }
            }
        }
    }
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
func depthwisePlane(
    padded x: UnsafePointer<Float>, layout: PaddedPlane, kernel k: UnsafePointer<Float>,
    accumulator acc: UnsafeMutablePointer<Float>, output y: UnsafeMutablePointer<Float>,
    bias: Float, activation: Activation
) {
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
                    acc[p] =
                        bias + w[0] * t0[p] + w[1] * t1[p] + w[2] * t2[p]
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
                    acc[p] =
                        bias + w[0] * t0[p] + w[1] * t1[p] + w[2] * t2[p]
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
