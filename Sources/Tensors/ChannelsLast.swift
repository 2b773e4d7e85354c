/// Channels-last (NHWC) inference kernels: an image is (H, W, C) with the channels of a pixel
/// contiguous, so a 1x1 convolution is a small matrix product over pixels and a depthwise
/// convolution vectorizes across channels. SIMD8/SIMD16 Float compile to AVX2 + FMA registers
/// with `-target-cpu haswell`, and SIMD16 to AVX-512 ones in `-DANOMAP_AVX512` builds
/// (`addingProduct` lowers to vfmadd). The oracle for every kernel
/// is `naiveConv2d` on the same data in (N, C, H, W) (see ChannelsLastTests).

#if ANOMAP_AVX512
    /// One vector register of the build's widest vectors: AVX-512 (built with `-DANOMAP_AVX512`,
    /// which the Makefile sets with `-target-cpu skylake-avx512` on CPUs that have AVX-512).
    /// SIMD32 is not used: the standard library lowers it lane by lane.
    @usableFromInline typealias Lanes = SIMD16<Float>
#else
    /// One vector register of the build's widest vectors: AVX2.
    @usableFromInline typealias Lanes = SIMD8<Float>
#endif

/// Convolution weights packed once for the channels-last kernels: rows ordered (i, j, c) —
/// tap row, tap column, input channel, as a channels-last patch is — and the output channels
/// contiguous in each row.
///
/// Immutable after `init` (hence `@unchecked Sendable`); the storage is freed with the object.
public final class PackedConvolution: @unchecked Sendable {
    /// Input channels (per group for depthwise weights: 1).
    public let inChannels: Int
    /// Output channels.
    public let outChannels: Int
    /// Kernel height and width.
    public let kernel: Int
    /// Whether this is a depthwise convolution (one filter per channel).
    public let isDepthwise: Bool
    /// Activation applied after the bias.
    public let activation: Activation
    /// Dense: (k * k * C, O); depthwise: (k * k, C). Row-major.
    public let weights: UnsafeMutablePointer<Float>
    /// (O); zeros when the convolution has none.
    public let bias: UnsafeMutablePointer<Float>

    /// Packs a dense (O, C, k, k) or depthwise (C, 1, k, k) weight with its bias (or none).
    public init(weight: Tensor, bias: [Float], depthwise: Bool, activation: Activation) {
        precondition(weight.shape.count == 4 && weight.shape[2] == weight.shape[3])
        let o = weight.shape[0], c = weight.shape[1], k = weight.shape[2]
        precondition(!depthwise || c == 1, "depthwise weights are (C, 1, k, k)")
        precondition(bias.isEmpty || bias.count == o)
        outChannels = o
        inChannels = depthwise ? 1 : c
        kernel = k
        isDepthwise = depthwise
        self.activation = activation
        weights = .allocate(capacity: weight.count)
        self.bias = .allocate(capacity: o)
        self.bias.initialize(repeating: 0, count: o)
        for (index, value) in bias.enumerated() { self.bias[index] = value }
        weight.storage.withUnsafeBufferPointer { src in
            for oc in 0..<o {
                for ic in 0..<c {
                    for i in 0..<k {
                        for j in 0..<k {
                            weights[((i * k + j) * c + ic) * o + oc] = src[((oc * c + ic) * k + i) * k + j]
                        }
                    }
                }
            }
        }
    }

    deinit {
        weights.deallocate()
        bias.deallocate()
    }

    /// Rows of the packed matrix: the reduction length of one output.
    public var reduction: Int { kernel * kernel * inChannels }

    /// The weight back in the layout it was packed from: dense (O, C, k, k), depthwise
    /// (C, 1, k, k) (for planar passes such as the backbone's input gradient).
    public var unpackedWeight: Tensor {
        let o = outChannels, c = inChannels, k = kernel
        return Tensor(shape: [o, c, k, k]) { w in
            for oc in 0..<o {
                for ic in 0..<c {
                    for i in 0..<k {
                        for j in 0..<k { w[((oc * c + ic) * k + i) * k + j] = weights[((i * k + j) * c + ic) * o + oc] }
                    }
                }
            }
        }
    }

    /// The bias, (O).
    public var biasValues: [Float] { Array(UnsafeBufferPointer(start: bias, count: outChannels)) }
}

@inline(__always)
@usableFromInline
func load<V: SIMD>(_ p: UnsafePointer<Float>, as _: V.Type) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

@inline(__always)
@usableFromInline
func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Applies `activation` in place to `count` values: a separate pass over data the kernel has
/// just written (still in L1), on concrete scalars that auto-vectorize to vmaxps/vminps. The
/// standard library's generic `pointwiseMax` stays an out-of-line lane loop when called from
/// the generic kernels on AVX-512 builds (measured: 40x slower than the whole kernel).
@usableFromInline
func activate(_ y: UnsafeMutablePointer<Float>, count: Int, _ activation: Activation) {
    switch activation {
    case .none: return
    case .relu: for i in 0..<count { y[i] = max(y[i], 0) }
    case .relu6: for i in 0..<count { y[i] = min(max(y[i], 0), 6) }
    case .leakyRelu:
        let slope = Activation.leakySlope
        for i in 0..<count { y[i] = max(y[i], slope * y[i]) }
    }
}

/// y (P, O) = act(x (P, K) W (K, O) + b) [+ r (P, O)], rows `ldx`, `ldy`, `ldr` floats apart.
///
/// Every output element is the same chain of fused multiply-adds over k = 0..<K whichever tile
/// computes it, so the result does not depend on how the pixels are split between threads.
public func packedProduct(
    _ x: UnsafePointer<Float>, ldx: Int, pixels: Int, weights w: PackedConvolution,
    into y: UnsafeMutablePointer<Float>, ldy: Int, residual: UnsafePointer<Float>? = nil, ldr: Int = 0
) {
    let o = w.outChannels
    precondition(residual == nil || w.activation == .none, "a residual follows a linear projection")
    var o0 = 0
    while o0 + 2 * Lanes.scalarCount <= o {
        productColumnPairs(Lanes.self, x, ldx, pixels, w, o0, y, ldy, residual, ldr)
        o0 += 2 * Lanes.scalarCount
    }
    while o0 + Lanes.scalarCount <= o {
        productColumns(Lanes.self, x, ldx, pixels, w, o0, y, ldy, residual, ldr)
        o0 += Lanes.scalarCount
    }
    while o0 + 8 <= o {
        productColumns(SIMD8<Float>.self, x, ldx, pixels, w, o0, y, ldy, residual, ldr)
        o0 += 8
    }
    // Channels past the last multiple of 8: the same chain per element, one lane at a time.
    let k = w.reduction
    for oc in o0..<o {
        for p in 0..<pixels {
            var acc: Float = 0
            for c in 0..<k { acc = acc.addingProduct(x[p * ldx + c], w.weights[c * o + oc]) }
            var v = acc + w.bias[oc]
            if let r = residual { v += r[p * ldr + oc] }
            y[p * ldy + oc] = v
        }
    }
    if ldy == o {
        activate(y, count: pixels * o, w.activation)
    } else {
        for p in 0..<pixels { activate(y + p * ldy, count: o, w.activation) }
    }
}

/// Output channels o0..<o0 + 2 V.scalarCount for all pixels: `productColumns` with two
/// vectors per pixel (12 accumulators; each weight row is two loads shared by six pixels).
@inline(__always)
func productColumnPairs<V: SIMD>(
    _: V.Type, _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ w: PackedConvolution, _ o0: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ residual: UnsafePointer<Float>?, _ ldr: Int
) where V.Scalar == Float {
    let k = w.reduction, ldw = w.outChannels, n = V.scalarCount
    let wp = UnsafePointer(w.weights) + o0
    let bias0 = load(w.bias + o0, as: V.self), bias1 = load(w.bias + o0 + n, as: V.self)
    @inline(__always) func finish(_ a: V, _ b: V, _ p: Int) {
        var u = a + bias0, v = b + bias1
        if let r = residual {
            u += load(r + p * ldr + o0, as: V.self)
            v += load(r + p * ldr + o0 + n, as: V.self)
        }
        store(u, y + p * ldy + o0)
        store(v, y + p * ldy + o0 + n)
    }
    var p = 0
    if pixels >= 6 {
        while p < pixels {
            let q = min(p, pixels - 6)
            let x0 = x + q * ldx, x1 = x0 + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V()
            var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V()
            for c in 0..<k {
                let u = load(wp + c * ldw, as: V.self), v = load(wp + c * ldw + n, as: V.self)
                var e = V(repeating: x0[c])
                a0 = a0.addingProduct(e, u)
                b0 = b0.addingProduct(e, v)
                e = V(repeating: x1[c])
                a1 = a1.addingProduct(e, u)
                b1 = b1.addingProduct(e, v)
                e = V(repeating: x2[c])
                a2 = a2.addingProduct(e, u)
                b2 = b2.addingProduct(e, v)
                e = V(repeating: x3[c])
                a3 = a3.addingProduct(e, u)
                b3 = b3.addingProduct(e, v)
                e = V(repeating: x4[c])
                a4 = a4.addingProduct(e, u)
                b4 = b4.addingProduct(e, v)
                e = V(repeating: x5[c])
                a5 = a5.addingProduct(e, u)
                b5 = b5.addingProduct(e, v)
            }
            finish(a0, b0, q)
            finish(a1, b1, q + 1)
            finish(a2, b2, q + 2)
            finish(a3, b3, q + 3)
            finish(a4, b4, q + 4)
            finish(a5, b5, q + 5)
            p = q + 6
        }
        return
    }
    for q in 0..<pixels {
        let x0 = x + q * ldx
        var a0 = V(), b0 = V()
        for c in 0..<k {
            let e = V(repeating: x0[c])
            a0 = a0.addingProduct(e, load(wp + c * ldw, as: V.self))
            b0 = b0.addingProduct(e, load(wp + c * ldw + n, as: V.self))
        }
        finish(a0, b0, q)
    }
}

/// Output channels o0..<o0 + V.scalarCount for all pixels, six pixels per tile (at most 12
/// vector accumulators plus the weights fit the 16 AVX2 or 32 AVX-512 registers). A short tail re-runs the
/// last full tile shifted back (the overlapping pixels are recomputed to the same values).
@inline(__always)
func productColumns<V: SIMD>(
    _: V.Type, _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ w: PackedConvolution, _ o0: Int,
    _ y: UnsafeMutablePointer<Float>, _ ldy: Int, _ residual: UnsafePointer<Float>?, _ ldr: Int
) where V.Scalar == Float {
    let k = w.reduction, ldw = w.outChannels
    let wp = UnsafePointer(w.weights) + o0
    let bias = load(w.bias + o0, as: V.self)
    @inline(__always) func finish(_ acc: V, _ p: Int) {
        var v = acc + bias
        if let r = residual { v += load(r + p * ldr + o0, as: V.self) }
        store(v, y + p * ldy + o0)
    }
    var p = 0
    if pixels >= 6 {
        while p < pixels {
            let q = min(p, pixels - 6)
            let x0 = x + q * ldx, x1 = x0 + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V()
            for c in 0..<k {
                let wv = load(wp + c * ldw, as: V.self)
                a0 = a0.addingProduct(V(repeating: x0[c]), wv)
                a1 = a1.addingProduct(V(repeating: x1[c]), wv)
                a2 = a2.addingProduct(V(repeating: x2[c]), wv)
                a3 = a3.addingProduct(V(repeating: x3[c]), wv)
                a4 = a4.addingProduct(V(repeating: x4[c]), wv)
                a5 = a5.addingProduct(V(repeating: x5[c]), wv)
            }
            finish(a0, q)
            finish(a1, q + 1)
            finish(a2, q + 2)
            finish(a3, q + 3)
            finish(a4, q + 4)
            finish(a5, q + 5)
            p = q + 6
        }
        return
    }
    for q in 0..<pixels {
        let x0 = x + q * ldx
        var a0 = V()
        for c in 0..<k { a0 = a0.addingProduct(V(repeating: x0[c]), load(wp + c * ldw, as: V.self)) }
        finish(a0, q)
    }
}

/// One output row of a channels-last depthwise convolution with bias and activation:
/// out (OW, C) from the k zero-padded input rows its taps read. `rows[i]` is input row
/// y * stride + i - padTop with its padding columns included — element (column ix, channel ch)
/// at `rows[i][(ix + padLeft) * C + ch]`, at least (OW - 1) * stride + k columns — or an
/// all-zero row where that row is padding: no tap needs a bounds check.
///
/// Taps are summed in the same order (i, then j) for every pixel, so any split of the rows
/// between threads gives the same numbers.
public func depthwiseRow(
    _ rows: UnsafePointer<UnsafePointer<Float>>, stride s: Int, outWidth: Int, weights w: PackedConvolution,
    into out: UnsafeMutablePointer<Float>
) {
    precondition(w.isDepthwise)
    let c = w.outChannels, k = w.kernel
    var c0 = 0
    while c0 + 16 <= c {
        switch k {
        // Constant kernel sizes let the compiler unroll the taps.
        case 3: depthwiseColumns(SIMD16<Float>.self, 3, rows, s, outWidth, w, c0, out)
        case 5: depthwiseColumns(SIMD16<Float>.self, 5, rows, s, outWidth, w, c0, out)
        default: depthwiseColumns(SIMD16<Float>.self, k, rows, s, outWidth, w, c0, out)
        }
        c0 += 16
    }
    while c0 + 8 <= c {
        depthwiseColumns(SIMD8<Float>.self, k, rows, s, outWidth, w, c0, out)
        c0 += 8
    }
    for ch in c0..<c {
        for x in 0..<outWidth {
            var acc: Float = 0
            for i in 0..<k {
                for j in 0..<k {
                    acc = acc.addingProduct(rows[i][(x * s + j) * c + ch], w.weights[(i * k + j) * c + ch])
                }
            }
            out[x * c + ch] = acc + w.bias[ch]
        }
    }
    activate(out, count: outWidth * c, w.activation)
}

/// Channels c0..<c0 + V.scalarCount of one depthwise output row, four pixels per tile sharing
/// each weight load.
@inline(__always)
func depthwiseColumns<V: SIMD>(
    _: V.Type, _ k: Int, _ rows: UnsafePointer<UnsafePointer<Float>>, _ s: Int, _ outWidth: Int,
    _ w: PackedConvolution, _ c0: Int, _ out: UnsafeMutablePointer<Float>
) where V.Scalar == Float {
    let c = w.outChannels
    let wp = UnsafePointer(w.weights) + c0
    let bias = load(w.bias + c0, as: V.self)
    let step = s * c
    var x = 0
    while x + 4 <= outWidth {
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        for i in 0..<k {
            let line = rows[i] + x * step + c0
            for j in 0..<k {
                let wv = load(wp + (i * k + j) * c, as: V.self)
                let p = line + j * c
                a0 = a0.addingProduct(load(p, as: V.self), wv)
                a1 = a1.addingProduct(load(p + step, as: V.self), wv)
                a2 = a2.addingProduct(load(p + 2 * step, as: V.self), wv)
                a3 = a3.addingProduct(load(p + 3 * step, as: V.self), wv)
            }
        }
        store(a0 + bias, out + x * c + c0)
        store(a1 + bias, out + (x + 1) * c + c0)
        store(a2 + bias, out + (x + 2) * c + c0)
        store(a3 + bias, out + (x + 3) * c + c0)
        x += 4
    }
    while x < outWidth {
        var acc = V()
        for i in 0..<k {
            let line = rows[i] + x * step + c0
            for j in 0..<k {
                acc = acc.addingProduct(load(line + j * c, as: V.self), load(wp + (i * k + j) * c, as: V.self))
            }
        }
        store(acc + bias, out + x * c + c0)
        x += 1
    }
}

/// Gathers one output row's patches of a dense k x k convolution over a channels-last image:
/// patches (OW, k * k * C) in (i, j, c) order, zeros where a tap falls into the padding.
///
/// input (H, W, C); the row's taps read input rows y * stride + i - padTop.
public func gatherPatches(
    _ input: UnsafePointer<Float>, height: Int, width: Int, channels c: Int, kernel k: Int, stride s: Int,
    padTop: Int, padLeft: Int, outputRow y: Int, outWidth: Int, into patches: UnsafeMutablePointer<Float>
) {
    let span = k * k * c
    for x in 0..<outWidth {
        let patch = patches + x * span
        for i in 0..<k {
            let iy = y * s + i - padTop
            for j in 0..<k {
                let ix = x * s + j - padLeft
                let dst = patch + (i * k + j) * c
                if iy < 0 || iy >= height || ix < 0 || ix >= width {
                    dst.update(repeating: 0, count: c)
                } else {
                    dst.update(from: input + (iy * width + ix) * c, count: c)
                }
            }
        }
    }
}

/// `gatherPatches` reading a planar (C, H, W) image (the network's input): the stem's patches
/// straight from the normalized input, without a channels-last copy of it first.
public func gatherPlanarPatches(
    _ input: UnsafePointer<Float>, height: Int, width: Int, channels c: Int, kernel k: Int, stride s: Int,
    padTop: Int, padLeft: Int, outputRow y: Int, outWidth: Int, into patches: UnsafeMutablePointer<Float>
) {
    let plane = height * width, span = k * k * c
    for i in 0..<k {
        let iy = y * s + i - padTop
        for j in 0..<k {
            // Output columns whose tap (i, j) lies inside the image; zeros on either side.
            let x0 = min(outWidth, max(0, (padLeft - j + s - 1) / s))
            let x1 = max(x0, min(outWidth, (width + padLeft - j + s - 1) / s))
            for ch in 0..<c {
                let column = (i * k + j) * c + ch
                guard iy >= 0 && iy < height else {
                    for x in 0..<outWidth { patches[x * span + column] = 0 }
                    continue
                }
                let row = input + ch * plane + iy * width
                for x in 0..<x0 { patches[x * span + column] = 0 }
                for x in x0..<x1 { patches[x * span + column] = row[x * s + j - padLeft] }
                for x in x1..<outWidth { patches[x * span + column] = 0 }
            }
        }
    }
}

/// `upsampleBilinear` on a channels-last batch: (N, H, W, C) -> (N, OH, OW, C), the same
/// half-pixel taps and the same arithmetic per element.
public func upsampleBilinearChannelsLast(
    _ input: [Float], batch n: Int, height h: Int, width w: Int, channels c: Int, toHeight oh: Int, width ow: Int
) -> [Float] {
    let ty = bilinearTaps(output: oh, input: h), tx = bilinearTaps(output: ow, input: w)
    let count = n * oh * ow * c
    return [Float](unsafeUninitializedCapacity: max(count, 1)) { out, done in
        input.withUnsafeBufferPointer { src in
            for b in 0..<n {
                let x = b * h * w * c, y = b * oh * ow * c
                for oy in 0..<oh {
                    let (y0, y1, fy) = ty[oy]
                    for ox in 0..<ow {
                        let (x0, x1, fx) = tx[ox]
                        let a = x + (y0 * w + x0) * c, bb = x + (y0 * w + x1) * c
                        let cc = x + (y1 * w + x0) * c, d = x + (y1 * w + x1) * c
                        let o = y + (oy * ow + ox) * c
                        for ch in 0..<c {
                            let top = src[a + ch] * (1 - fx) + src[bb + ch] * fx
                            let bottom = src[cc + ch] * (1 - fx) + src[d + ch] * fx
                            out[o + ch] = top * (1 - fy) + bottom * fy
                        }
                    }
                }
            }
        }
        done = count
    }
}

/// (N, C, H, W) -> (N, H, W, C).
public func channelsLast(_ t: Tensor) -> [Float] {
    let n = t.batch, c = t.channels, hw = t.height * t.width
    return [Float](unsafeUninitializedCapacity: max(t.count, 1)) { out, done in
        t.storage.withUnsafeBufferPointer { src in
            for b in 0..<n {
                for ch in 0..<c {
                    for p in 0..<hw { out[(b * hw + p) * c + ch] = src[(b * c + ch) * hw + p] }
                }
            }
        }
        done = t.count
    }
}

/// (N, H, W, C) elements -> an (N, C, H, W) tensor.
public func channelsFirst(_ values: [Float], batch n: Int, height h: Int, width w: Int, channels c: Int) -> Tensor {
    let hw = h * w
    precondition(values.count == n * hw * c, "channelsFirst: \(values.count) values for \([n, h, w, c])")
    return Tensor(shape: [n, c, h, w]) { out in
        values.withUnsafeBufferPointer { values in
            for b in 0..<n {
                // 16 pixels at a time: their rows stay in L1 while every channel's run is written.
                for p0 in Swift.stride(from: 0, to: hw, by: 16) {
                    let p1 = min(hw, p0 + 16)
                    for ch in 0..<c {
                        let plane = out.baseAddress.map { $0 + (b * c + ch) * hw }
                        for p in p0..<p1 { plane?[p] = values[(b * hw + p) * c + ch] }
                    }
                }
            }
        }
    }
}
