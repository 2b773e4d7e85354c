import Foundation
import Tensors

// Training kernels, llm.c style: each forward next to its backward. They run single-threaded
// on one image at a time; training parallelizes across networks instead (the GEMMs of a
// small student are too small to split well across cores).

/// Scatter-adds columns back into an image: the adjoint of `im2col`.
///
/// columns: (C * kh * kw, OH * OW); adds into `input`, (C, H, W).
public func col2im(
    _ columns: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
    geometry g: ConvGeometry, input: UnsafeMutablePointer<Float>
) {
    let (oh, ow) = g.outputSize(height: height, width: width)
    let kh = g.kernel.h, kw = g.kernel.w, sh = g.stride.h, sw = g.stride.w
    let pt = g.padding.top, pl = g.padding.left
    var row = 0
    for c in 0..<channels {
        let plane = input + c * height * width
        for i in 0..<kh {
            for j in 0..<kw {
                let src = columns + row * oh * ow
                for y in 0..<oh {
                    let iy = y * sh + i - pt
                    if iy < 0 || iy >= height { continue }
                    let line = plane + iy * width, from = src + y * ow
                    for x in 0..<ow {
                        let ix = x * sw + j - pl
                        if ix >= 0 && ix < width { line[ix] += from[x] }
                    }
                }
                row += 1
            }
        }
    }
}

/// Dense convolution of one image for training: y = W * x + b, keeping the im2col columns
/// for the backward pass.
///
/// x (1, C, H, W), weight (O, C, k, k), bias (O); returns (1, O, OH, OW).
public func convolutionForward(
    _ x: Tensor, weight: Tensor, bias: [Float], geometry g: ConvGeometry,
    columns: inout [Float]
) -> Tensor {
    precondition(x.batch == 1 && x.channels == g.inChannels && g.groups == 1 && weight.shape == g.weightShape)
    let (oh, ow) = g.outputSize(height: x.height, width: x.width)
    let k = g.inChannels * g.kernel.h * g.kernel.w, spatial = oh * ow
    if columns.count != k * spatial { columns = [Float](repeating: 0, count: k * spatial) }
    var y = Tensor(shape: [1, g.outChannels, oh, ow])
    for o in 0..<g.outChannels where !bias.isEmpty {
        for i in 0..<spatial { y.storage[o * spatial + i] = bias[o] }
    }
    x.storage.withUnsafeBufferPointer { xs in
        columns.withUnsafeMutableBufferPointer { cs in
            weight.storage.withUnsafeBufferPointer { ws in
                y.storage.withUnsafeMutableBufferPointer { ys in
                    guard let xp = xs.baseAddress, let cp = cs.baseAddress, let wp = ws.baseAddress,
                        let yp = ys.baseAddress
                    else { return }
                    im2col(xp, channels: g.inChannels, height: x.height, width: x.width, geometry: g, columns: cp)
                    sgemm(
                        m: g.outChannels, n: spatial, k: k, a: wp, lda: k, b: cp, ldb: spatial, beta: 1, c: yp,
                        ldc: spatial)
                }
            }
        }
    }
    return y
}

/// Backward of `convolutionForward`: accumulates dL/dW and dL/db and returns dL/dx (or nil
/// when `needsInputGradient` is false, as for a network's first layer). An empty
/// `weightGradient` (or `biasGradient`) is not wanted and costs nothing: a generator needs only
/// dL/dx through the discriminator it is trained against.
///
/// dy (1, O, OH, OW); columns as kept by the forward; inputShape (1, C, H, W).
public func convolutionBackward(
    _ dy: Tensor, weight: Tensor, geometry g: ConvGeometry, columns: [Float],
    inputShape: [Int], weightGradient: inout [Float], biasGradient: inout [Float],
    needsInputGradient: Bool
) -> Tensor? {
    let (h, w) = (inputShape[2], inputShape[3])
    let spatial = dy.height * dy.width, k = g.inChannels * g.kernel.h * g.kernel.w, o = g.outChannels
    precondition(columns.count == k * spatial && (weightGradient.isEmpty || weightGradient.count == o * k))
    for c in 0..<o where !biasGradient.isEmpty {
        var acc: Float = 0
        for i in 0..<spatial { acc += dy.storage[c * spatial + i] }
        biasGradient[c] += acc
    }
    var dx: Tensor? = needsInputGradient ? Tensor(shape: inputShape) : nil
    var dColumns = [Float](repeating: 0, count: needsInputGradient ? k * spatial : 0)
    dy.storage.withUnsafeBufferPointer { ds in
        columns.withUnsafeBufferPointer { cs in
            weight.storage.withUnsafeBufferPointer { ws in
                weightGradient.withUnsafeMutableBufferPointer { gs in
                    guard let dp = ds.baseAddress, let cp = cs.baseAddress, let wp = ws.baseAddress else { return }
                    // (An empty array's buffer may still have an address: test the count.)
                    if !gs.isEmpty, let gp = gs.baseAddress {
                        // dW (O, K) += dY (O, S) x columns^T (S, K)
                        sgemm(
                            transposeB: true, m: o, n: k, k: spatial, a: dp, lda: spatial, b: cp, ldb: spatial,
                            beta: 1, c: gp, ldc: k)
                    }
                    guard needsInputGradient else { return }
                    dColumns.withUnsafeMutableBufferPointer { dcs in
                        guard let dcp = dcs.baseAddress else { return }
                        // dColumns (K, S) = W^T (K, O) x dY (O, S)
                        sgemm(
                            transposeA: true, m: k, n: spatial, k: o, a: wp, lda: k, b: dp, ldb: spatial,
                            c: dcp, ldc: spatial)
                        dx?.storage.withUnsafeMutableBufferPointer { xs in
                            guard let xp = xs.baseAddress else { return }
                            col2im(dcp, channels: g.inChannels, height: h, width: w, geometry: g, input: xp)
                        }
                    }
                }
            }
        }
    }
    return dx
}

/// Visits every tap of a planar depthwise convolution row by row: `visit(tap, out, input,
/// count)` for output elements out..<out + count (consecutive) reading input elements
/// input, input + stride, ... (only those inside the image: the padding reads nothing).
@inline(__always)
func depthwiseRows(
    _ g: ConvGeometry, channels c: Int, height h: Int, width w: Int, weight: UnsafeBufferPointer<Float>,
    _ visit: (Float, Int, Int, Int) -> Void
) {
    let (oh, ow) = g.outputSize(height: h, width: w)
    let kh = g.kernel.h, kw = g.kernel.w, s = g.stride.w
    for ch in 0..<c {
        for i in 0..<kh {
            for j in 0..<kw {
                // ix = ox * s + j - padLeft must lie in 0..<w.
                let offset = j - g.padding.left
                let first = offset >= 0 ? 0 : (-offset + s - 1) / s
                let last = min(ow, (w - 1 - offset) / s + 1)
                guard last > first else { continue }
                let tap = weight[(ch * kh + i) * kw + j]
                for oy in 0..<oh {
                    let iy = oy * g.stride.h + i - g.padding.top
                    guard iy >= 0 && iy < h else { continue }
                    visit(tap, (ch * oh + oy) * ow + first, (ch * h + iy) * w + offset + first * s, last - first)
                }
            }
        }
    }
}

/// Depthwise convolution of one image (one k x k filter per channel), planar: the frozen
/// backbone's depthwise layers, for its input gradient (`depthwiseInputGradient`).
///
/// x (1, C, H, W), weight (C, 1, k, k), bias (C) or empty; returns (1, C, OH, OW).
public func depthwiseForward(_ x: Tensor, weight: Tensor, bias: [Float], geometry g: ConvGeometry) -> Tensor {
    let c = x.channels, h = x.height, w = x.width
    precondition(x.batch == 1 && g.groups == c && g.inChannels == c && weight.shape == g.weightShape)
    precondition(bias.isEmpty || bias.count == c)
    let (oh, ow) = g.outputSize(height: h, width: w)
    let s = g.stride.w
    return Tensor(shape: [1, c, oh, ow]) { y in
        guard let yp = y.baseAddress else { return }
        for ch in 0..<c { (yp + ch * oh * ow).initialize(repeating: bias.isEmpty ? 0 : bias[ch], count: oh * ow) }
        x.storage.withUnsafeBufferPointer { xs in
            weight.storage.withUnsafeBufferPointer { ws in
                guard let xp = xs.baseAddress else { return }
                depthwiseRows(g, channels: c, height: h, width: w, weight: ws) { tap, out, input, count in
                    let row = yp + out, line = xp + input
                    // Stride 1 apart: contiguous, so it vectorizes.
                    if s == 1 {
                        for k in 0..<count { row[k] += tap * line[k] }
                    } else {
                        for k in 0..<count { row[k] += tap * line[k * s] }
                    }
                }
            }
        }
    }
}

/// Backward of `depthwiseForward` with respect to its input (the adjoint of the convolution):
/// every output's gradient flows back to the input pixels its taps read.
///
/// dy (1, C, OH, OW), weight (C, 1, k, k); returns dL/dx, `inputShape` (1, C, H, W).
public func depthwiseInputGradient(
    _ dy: Tensor, weight: Tensor, geometry g: ConvGeometry, inputShape: [Int]
) -> Tensor {
    let c = inputShape[1], h = inputShape[2], w = inputShape[3]
    let (oh, ow) = g.outputSize(height: h, width: w)
    precondition(dy.shape == [1, c, oh, ow] && weight.shape == g.weightShape)
    let s = g.stride.w
    return Tensor(shape: inputShape) { dx in
        dx.initialize(repeating: 0)
        guard let dxp = dx.baseAddress else { return }
        dy.storage.withUnsafeBufferPointer { ds in
            weight.storage.withUnsafeBufferPointer { ws in
                guard let dp = ds.baseAddress else { return }
                depthwiseRows(g, channels: c, height: h, width: w, weight: ws) { tap, out, input, count in
                    let row = dp + out, line = dxp + input
                    if s == 1 {
                        for k in 0..<count { line[k] += tap * row[k] }
                    } else {
                        for k in 0..<count { line[k * s] += tap * row[k] }
                    }
                }
            }
        }
    }
}

/// Backward of ReLU given its output: dx = dy where y > 0, else 0.
public func reluBackward(_ dy: Tensor, output y: Tensor) -> Tensor {
    precondition(dy.shape == y.shape)
    return Tensor(shape: dy.shape) { dx in
        for i in 0..<dy.count { dx[i] = y.storage[i] > 0 ? dy.storage[i] : 0 }
    }
}

/// Backward of `activate` given its output y. For ReLU and leaky ReLU the sign of y is
/// the sign of the input, so the output alone decides the slope: dx = dy where y > 0, else 0
/// (ReLU) or 0.2 dy (leaky ReLU); ReLU6 also stops the gradient where it clipped at 6.
public func activationBackward(_ dy: Tensor, output y: Tensor, _ activation: Activation) -> Tensor {
    precondition(dy.shape == y.shape)
    switch activation {
    case .none: return dy
    case .relu: return reluBackward(dy, output: y)
    case .relu6:
        return Tensor(shape: dy.shape) { dx in
            for i in 0..<dy.count { dx[i] = y.storage[i] > 0 && y.storage[i] < 6 ? dy.storage[i] : 0 }
        }
    case .leakyRelu:
        let slope = Activation.leakySlope
        return Tensor(shape: dy.shape) { dx in
            for i in 0..<dy.count { dx[i] = y.storage[i] > 0 ? dy.storage[i] : slope * dy.storage[i] }
        }
    }
}

/// Binary cross-entropy with logits, averaged over every element, and its gradient: for a
/// logit z and target t in [0, 1], softplus(z) - t z, whose derivative is sigmoid(z) - t.
/// softplus is evaluated as max(z, 0) + log(1 + exp(-|z|)), which never overflows.
public func binaryCrossEntropy(logits z: Tensor, target t: Float) -> (loss: Float, gradient: Tensor) {
    binaryCrossEntropy(logits: z, targets: [Float](repeating: t, count: z.count))
}

/// Binary cross-entropy with logits against one target per element (a label map).
public func binaryCrossEntropy(logits z: Tensor, targets t: [Float]) -> (loss: Float, gradient: Tensor) {
    precondition(t.count == z.count)
    let n = Float(max(z.count, 1))
    var total = 0.0
    let gradient = Tensor(shape: z.shape) { g in
        for i in 0..<z.count {
            let v = z.storage[i]
            total += Double(softplus(v) - t[i] * v)
            g[i] = (sigmoid(v) - t[i]) / n
        }
    }
    return (Float(total / Double(n)), gradient)
}

/// log(1 + e^x), without overflow.
@inlinable public func softplus(_ x: Float) -> Float { max(x, 0) + log1p(exp(-abs(x))) }

/// 1 / (1 + e^-x), without overflow.
@inlinable public func sigmoid(_ x: Float) -> Float {
    x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x))
}

/// Backward of `upsampleBilinear`: each output gradient is spread back onto the four input
/// pixels with the forward's weights. dy (N, C, OH, OW) -> (N, C, height, width).
public func upsampleBilinearBackward(_ dy: Tensor, height h: Int, width w: Int) -> Tensor {
    let n = dy.batch, c = dy.channels, oh = dy.height, ow = dy.width
    let ty = bilinearTaps(output: oh, input: h), tx = bilinearTaps(output: ow, input: w)
    var dx = Tensor(shape: [n, c, h, w])
    dx.storage.withUnsafeMutableBufferPointer { out in
        dy.storage.withUnsafeBufferPointer { src in
            for plane in 0..<(n * c) {
                let x = plane * h * w, y = plane * oh * ow
                for oy in 0..<oh {
                    let (y0, y1, fy) = ty[oy]
                    for ox in 0..<ow {
                        let (x0, x1, fx) = tx[ox]
                        let g = src[y + oy * ow + ox]
                        out[x + y0 * w + x0] += g * (1 - fy) * (1 - fx)
                        out[x + y0 * w + x1] += g * (1 - fy) * fx
                        out[x + y1 * w + x0] += g * fy * (1 - fx)
                        out[x + y1 * w + x1] += g * fy * fx
                    }
                }
            }
        }
    }
    return dx
}

/// Mean squared error over the hardest elements, and its gradient.
///
/// With `hardShare` = 1 this is the plain mean of (prediction - target)^2. With a smaller
/// share only elements whose squared error is at or above the (1 - hardShare) quantile count
/// (the hard-feature loss of EfficientAD, Batzner et al. WACV 2024), so training spends its
/// effort where the student is still wrong. Returns the loss and dL/dprediction.
public func meanSquaredError(
    _ prediction: Tensor, _ target: Tensor, hardShare: Float = 1
) -> (loss: Float, gradient: Tensor) {
    precondition(prediction.shape == target.shape && hardShare > 0 && hardShare <= 1)
    let n = prediction.count
    var errors = [Float](repeating: 0, count: n)
    for i in 0..<n {
        let d = prediction.storage[i] - target.storage[i]
        errors[i] = d * d
    }
    var cutoff = -Float.infinity
    if hardShare < 1 {
        let keep = max(1, Int((Float(n) * hardShare).rounded()))
        var sorted = errors
        sorted.sort(by: >)
        cutoff = sorted[keep - 1]
    }
    var count = 0, total = 0.0
    for e in errors where e >= cutoff { count += 1; total += Double(e) }
    let scale = 2 / Float(max(count, 1))
    let gradient = Tensor(shape: prediction.shape) { g in
        for i in 0..<n { g[i] = errors[i] >= cutoff ? scale * (prediction.storage[i] - target.storage[i]) : 0 }
    }
    return (Float(total / Double(max(count, 1))), gradient)
}
