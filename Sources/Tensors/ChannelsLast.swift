import CCPUGuard

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

/// Room for `count` floats starting on a 64-byte boundary: a cache line, and an AVX-512 vector.
/// A vector load that straddles two lines costs about two; Lite0's 5x5 depthwise rows ran
/// 1.7-2x faster from aligned rows than from the 16-byte-aligned ones `allocate` gives (every
/// expanded channel count is a multiple of 16, so each row of an aligned buffer is aligned too).
/// Free it with `deallocateAligned`.
public func allocateAligned(_ count: Int) -> UnsafeMutablePointer<Float> {
    UnsafeMutableRawPointer.allocate(byteCount: 4 * max(1, count), alignment: 64)
        .bindMemory(to: Float.self, capacity: max(1, count))
}

/// Asks for the cache line at `p` in L2 without waiting for it (prefetcht1); a hint that never
/// faults, so `p` may lie past the data.
@inline(__always)
func prefetchToL2(_ p: UnsafePointer<Float>) { anomap_prefetch_l2(p) }

/// A vector of floats the kernels can clamp in registers (vmaxps + vminps, from `CCPUGuard`'s
/// vector_ops.h).
protocol ClampingLanes: SIMD where Scalar == Float {
    /// min(max(self, low), high), lane by lane.
    func clamped(_ low: Self, _ high: Self) -> Self
}

extension SIMD16: ClampingLanes where Scalar == Float {
    @inline(__always) func clamped(_ low: Self, _ high: Self) -> Self { anomap_clamp16(self, low, high) }
}

extension SIMD8: ClampingLanes where Scalar == Float {
    @inline(__always) func clamped(_ low: Self, _ high: Self) -> Self { anomap_clamp8(self, low, high) }
}

/// ReLU and ReLU6 applied by the kernels to each vector before they store it, where a separate
/// pass read every output again (5% of Lite0's classifier profile; Lite0 at batch 1 took
/// 0.92-0.96x the time without it, paired); the others (`fused` false) still take that pass.
/// The same values: max(x, 0) then min(x, 6), +0 for -0.
struct FusedActivation<V: ClampingLanes> {
    /// Whether the kernel applies the activation.
    let fused: Bool
    let low: V, high: V

    @inline(__always)
    init(_ activation: Activation) {
        switch activation {
        case .relu6: (fused, low, high) = (true, V(), V(repeating: 6))
        case .relu: (fused, low, high) = (true, V(), V(repeating: .infinity))
        case .none, .leakyRelu: (fused, low, high) = (false, V(), V())
        }
    }

    @inline(__always)
    func callAsFunction(_ v: V) -> V { fused ? v.clamped(low, high) : v }
}

extension Activation {
    /// Whether the vector kernels apply it themselves (`FusedActivation`).
    var isFused: Bool { self == .relu || self == .relu6 }

    /// The activation as `activate` applies it to one value.
    @inline(__always)
    func scalar(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(x, 0)
        case .relu6: return min(max(x, 0), 6)
        case .leakyRelu: return max(x, Activation.leakySlope * x)
        }
    }
}

/// Frees what `allocateAligned` returned.
public func deallocateAligned(_ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).deallocate()
}

/// Convolution weights packed once for the channels-last kernels: rows ordered (i, j, c) —
/// tap row, tap column, input channel, as a channels-last patch is — in panels of
/// `panelWidth` output channels, each panel (K, width) row-major, one after the other.
///
/// Panels keep the weights a tile reads in one sequential stream: with the whole (K, O) matrix
/// row-major, a tile of 32 outputs read two cache lines per k at a stride of O floats, and on
/// the deep 1x1 layers (K = 1152) that pattern kept the product at about half its speed.
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
    /// Dense: panels of (k * k * C, width) (see `denseIndex`); depthwise: (k * k, C) row-major.
    public let weights: UnsafeMutablePointer<Float>

    /// Output channels per panel of a dense weight: the two vectors of `productColumnPairs`.
    public static let panelWidth = 2 * Lanes.scalarCount
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
        weights = allocateAligned(weight.count)
        self.bias = allocateAligned(o)
        self.bias.initialize(repeating: 0, count: o)
        for (index, value) in bias.enumerated() { self.bias[index] = value }
        let weights = self.weights
        weight.storage.withUnsafeBufferPointer { src in
            for oc in 0..<o {
                for ic in 0..<c {
                    for i in 0..<k {
                        for j in 0..<k {
                            let row = (i * k + j) * c + ic
                            weights[depthwise ? row * o + oc : denseIndex(row, oc)] =
                                src[((oc * c + ic) * k + i) * k + j]
                        }
                    }
                }
            }
        }
    }

    /// Where a dense weight's (row, output channel) element is stored: in its channel's panel.
    @inlinable
    public func denseIndex(_ row: Int, _ oc: Int) -> Int {
        let p = Self.panelWidth, start = oc / p * p
        return start * reduction + row * min(p, outChannels - start) + (oc - start)
    }

    deinit {
        deallocateAligned(weights)
        deallocateAligned(bias)
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
                        for j in 0..<k {
                            let row = (i * k + j) * c + ic
                            w[((oc * c + ic) * k + i) * k + j] =
                                weights[isDepthwise ? row * o + oc : denseIndex(row, oc)]
                        }
                    }
                }
            }
        }
    }

    /// The bias, (O).
    public var biasValues: [Float] { Array(UnsafeBufferPointer(start: bias, count: outChannels)) }
}

/// The vector of floats at `p`, which need not be aligned.
@inlinable @inline(__always)
public func load<V: SIMD>(_ p: UnsafePointer<Float>, as _: V.Type) -> V where V.Scalar == Float {
    UnsafeRawPointer(p).loadUnaligned(as: V.self)
}

/// Writes the vector `v` at `p`, which need not be aligned.
@inlinable @inline(__always)
public func store<V: SIMD>(_ v: V, _ p: UnsafeMutablePointer<Float>) where V.Scalar == Float {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
}

/// Applies `activation` in place to `count` values: a separate pass over data the kernel has
/// just written (still in L1), on concrete scalars that auto-vectorize; what the kernels do not
/// fuse (the leaky ReLU). The standard library's generic `pointwiseMax` stays an out-of-line
/// lane loop when called from the generic kernels on AVX-512 builds (measured: 40x slower than
/// the whole kernel), hence the C clamp of `FusedActivation`.
/// Each activation gets its own loop over one formula (`Activation.scalar`, the kernels' scalar
/// tails' too), so that each vectorizes.
@usableFromInline
func activate(_ y: UnsafeMutablePointer<Float>, count: Int, _ activation: Activation) {
    switch activation {
    case .none: return
    case .relu: for i in 0..<count { y[i] = Activation.relu.scalar(y[i]) }
    case .relu6: for i in 0..<count { y[i] = Activation.relu6.scalar(y[i]) }
    case .leakyRelu: for i in 0..<count { y[i] = Activation.leakyRelu.scalar(y[i]) }
    }
}

/// y (P, O) = act(x (P, K) W (K, O) + b) [+ r (P, O)], rows `ldx`, `ldy`, `ldr` floats apart.
///
/// `gaps`, when given, lays the output out in rows: after every `gaps.pixels` pixels the next
/// one starts `gaps.floats` further on (a padded row's padding columns), so that an expansion
/// is written straight into the rows the depthwise convolution reads.
///
/// Every output element is the same chain of fused multiply-adds over k = 0..<K whichever tile
/// computes it, so the result does not depend on how the pixels are split between threads.
public func packedProduct(
    _ x: UnsafePointer<Float>, ldx: Int, pixels: Int, weights w: PackedConvolution,
    into y: UnsafeMutablePointer<Float>, ldy: Int, gaps: OutputGaps? = nil, residual: UnsafePointer<Float>? = nil,
    ldr: Int = 0
) {
    precondition(residual == nil || w.activation == .none, "a residual follows a linear projection")
    // One specialization per layout: the kernels are not inlined, and evenly spaced pixels
    // (the stem's reductions of 9, the early blocks' of 16-24) keep tiles free of row checks.
    if let gaps {
        packedProduct(x, ldx, pixels, w, y, ldy, residual, ldr, layout: gaps)
    } else {
        packedProduct(x, ldx, pixels, w, y, ldy, residual, ldr, layout: EvenPixels())
    }
}

/// `packedProduct` for one output layout.
@inline(__always)
func packedProduct<L: PixelLayout>(
    _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ w: PackedConvolution, _ y: UnsafeMutablePointer<Float>,
    _ ldy: Int, _ residual: UnsafePointer<Float>?, _ ldr: Int, layout: L
) {
    let o = w.outChannels, k = w.reduction, width = PackedConvolution.panelWidth
    var o0 = 0
    while o0 + width <= o {
        // The deep layers' weights (K >= 128) come from L3 and are fetched ahead (the rest of
        // the stream from this panel on).
        if k >= 128 {
            productColumnPairs(
                Lanes.self, x, ldx, pixels, w.weights + o0 * k, width, k, w.bias, o0, y, ldy, residual, ldr,
                layout: layout, FetchAhead.self, prefetchRows: (o - o0) * k / width, activation: w.activation)
        } else {
            productColumnPairs(
                Lanes.self, x, ldx, pixels, w.weights + o0 * k, width, k, w.bias, o0, y, ldy, residual, ldr,
                layout: layout, NoFetchAhead.self, activation: w.activation)
        }
        o0 += width
    }
    // The last, narrower panel: (K, rest).
    let panel = UnsafePointer(w.weights + o0 * k), rest = o - o0
    var j = 0
    if rest == 24 && Lanes.scalarCount == 16 {
        productColumnsMixed(
            SIMD16<Float>.self, SIMD8<Float>.self, x, ldx, pixels, panel, rest, k, w.bias, o0, y, ldy, residual, ldr,
            layout: layout, activation: w.activation)
        j = 24
    }
    while j + Lanes.scalarCount <= rest {
        productColumns(
            Lanes.self, x, ldx, pixels, panel + j, rest, k, w.bias, o0 + j, y, ldy, residual, ldr, layout: layout,
            activation: w.activation)
        j += Lanes.scalarCount
    }
    while j + 8 <= rest {
        productColumns(
            SIMD8<Float>.self, x, ldx, pixels, panel + j, rest, k, w.bias, o0 + j, y, ldy, residual, ldr,
            layout: layout, activation: w.activation)
        j += 8
    }
    // Channels past the last multiple of 8: the same chain per element, one lane at a time.
    for oc in (o0 + j)..<o {
        for p in 0..<pixels {
            var acc: Float = 0
            for c in 0..<k { acc = acc.addingProduct(x[p * ldx + c], panel[c * rest + oc - o0]) }
            var v = acc + w.bias[oc]
            if let r = residual { v += r[p * ldr + oc] }
            layout.pixel(p, y, ldy)[oc] = w.activation.isFused ? w.activation.scalar(v) : v
        }
    }
    guard !w.activation.isFused else { return }
    if ldy == o {
        // Each run of contiguous pixels at once: the whole output, or each of its rows.
        let run = layout.contiguous(pixels)
        for p in Swift.stride(from: 0, to: pixels, by: max(run, 1)) {
            activate(layout.pixel(p, y, ldy), count: min(run, pixels - p) * o, w.activation)
        }
    } else {
        for p in 0..<pixels { activate(layout.pixel(p, y, ldy), count: o, w.activation) }
    }
}

/// Where a product kernel writes its output pixels: `EvenPixels` or `OutputGaps`. The kernels
/// are specialized per layout.
protocol PixelLayout {
    /// The output.
    typealias Output = UnsafeMutablePointer<Float>
    /// What a tile of up to eight pixels needs to place them.
    associatedtype Tile
    /// The tile starting at pixel `p`.
    func tile(_ p: Int) -> Tile
    /// Where pixel `p + i` of the tile `t = tile(p)` starts (i < 8).
    func pixel(_ p: Int, _ i: Int, _ t: Tile, _ y: Output, _ ldy: Int) -> Output
    /// How many of `pixels` pixels from pixel 0 on lie `ldy` apart without a gap.
    func contiguous(_ pixels: Int) -> Int
}

extension PixelLayout {
    /// Where pixel `p` starts.
    @inline(__always)
    func pixel(_ p: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int) -> UnsafeMutablePointer<Float> {
        pixel(p, 0, tile(p), y, ldy)
    }
}

/// Output pixels `ldy` floats apart throughout.
struct EvenPixels: PixelLayout {
    @inline(__always) func tile(_ p: Int) {}
    @inline(__always)
    func pixel(_ p: Int, _ i: Int, _ t: Void, _ y: Output, _ ldy: Int) -> Output {
        y + (p + i) * ldy
    }
    @inline(__always) func contiguous(_ pixels: Int) -> Int { pixels }
}

/// Gaps in a product's output (see `packedProduct`): after every `pixels` output pixels, the
/// next starts `floats` further on.
public struct OutputGaps: PixelLayout, Sendable {
    /// Pixels per row.
    public let pixels: Int
    /// Floats skipped after each row.
    public let floats: Int

    /// Rows of `pixels` pixels, `floats` floats apart beyond their own.
    public init(pixels: Int, floats: Int) {
        precondition(pixels > 0 && floats >= 0)
        self.pixels = pixels
        self.floats = floats
    }

    /// The tile's row and how many of its pixels lie in that row: one division a tile, not
    /// one a pixel.
    @inline(__always)
    func tile(_ p: Int) -> (row: Int, inRow: Int) {
        let row = p / pixels
        return (row, (row + 1) * pixels - p)
    }

    @inline(__always)
    func pixel(
        _ p: Int, _ i: Int, _ t: (row: Int, inRow: Int), _ y: UnsafeMutablePointer<Float>, _ ldy: Int
    ) -> UnsafeMutablePointer<Float> {
        y + (p + i) * ldy + (i < t.inRow ? t.row : (p + i) / pixels) * floats
    }

    @inline(__always) func contiguous(_ count: Int) -> Int { min(count, pixels) }
}

/// Whether a product kernel fetches the next block of its weights ahead (see
/// `productColumnPairs`); the kernels are specialized per choice, so that short reductions
/// keep their loops free of it.
protocol WeightFetching { static var ahead: Bool { get } }
/// The next block of weights is fetched into L2 while the current one is used.
enum FetchAhead: WeightFetching { static var ahead: Bool { true } }
/// Weights are read as the tiles need them.
enum NoFetchAhead: WeightFetching { static var ahead: Bool { false } }

/// Output channels o0..<o0 + 2 V.scalarCount for all pixels, their weights (K, 2 V) at `wp`
/// with rows `ldw` apart: `productColumns` with two vectors per pixel, `pairTile` pixels a tile
/// (each weight row is two loads shared by the tile's pixels). `y` must not overlap `x`.
///
/// `continuing`: start from the sums a previous call left in y (the reduction split across
/// calls, as `denseRow` splits it by kernel rows); without `finishing`, leave the sums there
/// instead of adding the bias and the residual. Either way each output is one chain of FMAs.
///
/// `prefetchRows`: how many rows of the weight stream from `wp` on (this panel, then the next)
/// may be fetched ahead. In a forward each layer's weights come from L3 (a deep 1x1 layer reads
/// 0.9-1.6 MB that nothing else touched since the last image), and the first tile over each
/// block of rows waits for them; the second tile, which finds its block in L1, asks for the next
/// block into L2. Lite0's 8x8 blocks at batch 1 took 0.90-0.94x the time (paired), the others
/// the same.
@inline(__always)
func productColumnPairs<V: ClampingLanes, L: PixelLayout, F: WeightFetching>(
    _: V.Type, _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ wp: UnsafePointer<Float>, _ ldw: Int,
    _ k: Int, _ bias: UnsafePointer<Float>, _ o0: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
    _ residual: UnsafePointer<Float>?, _ ldr: Int, continuing: Bool = false, finishing: Bool = true,
    layout: L, _: F.Type, prefetchRows: Int = 0, activation: Activation
) where V.Scalar == Float {
    let n = V.scalarCount, act = FusedActivation<V>(activation)
    let bias0 = load(bias + o0, as: V.self), bias1 = load(bias + o0 + n, as: V.self)
    // The reduction in blocks of `productBlock`: a block of the panel (32 KB) stays in L1 while
    // every pixel tile passes over it, where a whole panel (K = 672: 86 KB) came from L2 for
    // each tile. Between blocks a tile's sums wait in y, as floats: the same chain of FMAs.
    var k0 = 0
    while k0 < k {
        let k1 = min(k, k0 + productBlock), first = k0 == 0 && !continuing, last = k1 == k && finishing
        var p = 0
        while p < pixels {
            // Pixels past `count` (the last tile only) read the last pixel again, and are neither
            // loaded nor stored.
            let count = min(pairTile, pixels - p), t = layout.tile(p)
            @inline(__always) func out(_ i: Int) -> UnsafeMutablePointer<Float> { layout.pixel(p, i, t, y, ldy) + o0 }
            @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { x + (p + min(i, count - 1)) * ldx }
            @inline(__always) func sums(_ i: Int) -> (V, V) {
                guard !first && i < count else { return (V(), V()) }
                let at = out(i)
                return (load(at, as: V.self), load(at + n, as: V.self))
            }
            @inline(__always) func step(_ e: Float, _ u: V, _ v: V, _ a: inout V, _ b: inout V) {
                let e = V(repeating: e)
                a = a.addingProduct(e, u)
                b = b.addingProduct(e, v)
            }
            let x0 = row(0), x1 = row(1), x2 = row(2), x3 = row(3), x4 = row(4), x5 = row(5)
            var (a0, b0) = sums(0), (a1, b1) = sums(1), (a2, b2) = sums(2)
            var (a3, b3) = sums(3), (a4, b4) = sums(4), (a5, b5) = sums(5)
            #if ANOMAP_AVX512
                let x6 = row(6), x7 = row(7)
                var (a6, b6) = sums(6), (a7, b7) = sums(7)
            #endif
            // The second tile fetches the next block's rows (k1 - k0 on), one row per step.
            let ahead = F.ahead && p == pairTile ? k0 + min(k1 - k0, prefetchRows - k1) : k0
            let next = wp + (k1 - k0) * ldw
            for c in k0..<k1 {
                let u = load(wp + c * ldw, as: V.self), v = load(wp + c * ldw + n, as: V.self)
                if c < ahead {
                    prefetchToL2(next + c * ldw)
                    prefetchToL2(next + c * ldw + n)
                }
                step(x0[c], u, v, &a0, &b0)
                step(x1[c], u, v, &a1, &b1)
                step(x2[c], u, v, &a2, &b2)
                step(x3[c], u, v, &a3, &b3)
                step(x4[c], u, v, &a4, &b4)
                step(x5[c], u, v, &a5, &b5)
                #if ANOMAP_AVX512
                    step(x6[c], u, v, &a6, &b6)
                    step(x7[c], u, v, &a7, &b7)
                #endif
            }
            @inline(__always) func done(_ a: V, _ b: V, _ i: Int) {
                guard i < count else { return }
                let at = out(i)
                if last {
                    var u = a + bias0, v = b + bias1
                    if let r = residual {
                        u += load(r + (p + i) * ldr + o0, as: V.self)
                        v += load(r + (p + i) * ldr + o0 + n, as: V.self)
                    }
                    store(act(u), at)
                    store(act(v), at + n)
                } else {
                    store(a, at)
                    store(b, at + n)
                }
            }
            done(a0, b0, 0)
            done(a1, b1, 1)
            done(a2, b2, 2)
            done(a3, b3, 3)
            done(a4, b4, 4)
            done(a5, b5, 5)
            #if ANOMAP_AVX512
                done(a6, b6, 6)
                done(a7, b7, 7)
            #endif
            p += count
        }
        k0 = k1
    }
}

/// Pixels per tile of `productColumnPairs`: eight with AVX-512's 32 registers (16 accumulators,
/// two weight vectors and a broadcast), six with AVX2's 16. Eight divides the pixel counts
/// Lite0's layers hand it at batch 1 (a thread's half of an 8x8 or 16x16 map, a 32- or 64-pixel
/// row), where six took six tiles for 32 pixels; Lite0 at batch 1 took 0.92x the time
/// (2 threads, paired, 8x8 blocks 0.87x), with the same bytes.
#if ANOMAP_AVX512
    let pairTile = 8
#else
    let pairTile = 6
#endif

/// Rows of the reduction per block in `productColumnPairs`: 256 rows of a 32-wide panel are
/// 32 KB, within L1 (48 KB) beside a tile's inputs.
let productBlock = 256

/// Output channels o0..<o0 + V.scalarCount for all pixels (weights (K, V) at `wp`, rows `ldw`
/// apart), eight pixels per tile: eight independent FMA chains keep both FMA ports busy through
/// the 4-cycle latency, where six left a quarter of them idle. A short tail re-runs the last
/// full tile shifted back, storing only the pixels the tiles before it did not.
///
/// `continuing` / `finishing`: as in `productColumnPairs`.
@inline(__always)
func productColumns<V: ClampingLanes, L: PixelLayout>(
    _: V.Type, _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ wp: UnsafePointer<Float>, _ ldw: Int,
    _ k: Int, _ biases: UnsafePointer<Float>, _ o0: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
    _ residual: UnsafePointer<Float>?, _ ldr: Int, continuing: Bool = false, finishing: Bool = true,
    layout: L, activation: Activation
) where V.Scalar == Float {
    let bias = load(biases + o0, as: V.self), act = FusedActivation<V>(activation)
    @inline(__always) func sum(_ at: UnsafeMutablePointer<Float>) -> V { continuing ? load(at, as: V.self) : V() }
    @inline(__always) func finish(_ acc: V, _ p: Int, _ at: UnsafeMutablePointer<Float>) {
        guard finishing else {
            store(acc, at)
            return
        }
        var v = acc + bias
        if let r = residual { v += load(r + p * ldr + o0, as: V.self) }
        store(act(v), at)
    }
    var p = 0
    if pixels >= 8 {
        while p < pixels {
            // The tail tile starts at q < p; its first `p - q` pixels are done already.
            let q = min(p, pixels - 8), fresh = p - q, t = layout.tile(q)
            @inline(__always) func out(_ i: Int) -> UnsafeMutablePointer<Float> { layout.pixel(q, i, t, y, ldy) + o0 }
            let x0 = x + q * ldx, x1 = x0 + ldx, x2 = x1 + ldx, x3 = x2 + ldx, x4 = x3 + ldx, x5 = x4 + ldx
            let x6 = x5 + ldx, x7 = x6 + ldx
            @inline(__always) func start(_ i: Int) -> V { i >= fresh ? sum(out(i)) : V() }
            var a0 = start(0), a1 = start(1), a2 = start(2), a3 = start(3)
            var a4 = start(4), a5 = start(5), a6 = start(6), a7 = start(7)
            for c in 0..<k {
                let wv = load(wp + c * ldw, as: V.self)
                a0 = a0.addingProduct(V(repeating: x0[c]), wv)
                a1 = a1.addingProduct(V(repeating: x1[c]), wv)
                a2 = a2.addingProduct(V(repeating: x2[c]), wv)
                a3 = a3.addingProduct(V(repeating: x3[c]), wv)
                a4 = a4.addingProduct(V(repeating: x4[c]), wv)
                a5 = a5.addingProduct(V(repeating: x5[c]), wv)
                a6 = a6.addingProduct(V(repeating: x6[c]), wv)
                a7 = a7.addingProduct(V(repeating: x7[c]), wv)
            }
            @inline(__always) func done(_ a: V, _ i: Int) { if i >= fresh { finish(a, q + i, out(i)) } }
            done(a0, 0)
            done(a1, 1)
            done(a2, 2)
            done(a3, 3)
            done(a4, 4)
            done(a5, 5)
            done(a6, 6)
            done(a7, 7)
            p = q + 8
        }
        return
    }
    for q in 0..<pixels {
        let x0 = x + q * ldx, at = layout.pixel(q, y, ldy) + o0
        var a0 = sum(at)
        for c in 0..<k { a0 = a0.addingProduct(V(repeating: x0[c]), load(wp + c * ldw, as: V.self)) }
        finish(a0, q, at)
    }
}

/// Output channels o0..<o0 + U.scalarCount + V.scalarCount for all pixels, a vector of each
/// width per pixel (weights (K, U + V) at `wp`): Lite0's 24-channel projections as 16 + 8 lanes
/// in one pass of twelve chains, where two passes of six chains each were latency-bound.
@inline(__always)
func productColumnsMixed<U: ClampingLanes, V: ClampingLanes, L: PixelLayout>(
    _: U.Type, _: V.Type, _ x: UnsafePointer<Float>, _ ldx: Int, _ pixels: Int, _ wp: UnsafePointer<Float>,
    _ ldw: Int, _ k: Int, _ bias: UnsafePointer<Float>, _ o0: Int, _ y: UnsafeMutablePointer<Float>, _ ldy: Int,
    _ residual: UnsafePointer<Float>?, _ ldr: Int, layout: L, activation: Activation
) where U.Scalar == Float, V.Scalar == Float {
    let n = U.scalarCount, actU = FusedActivation<U>(activation), actV = FusedActivation<V>(activation)
    let bias0 = load(bias + o0, as: U.self), bias1 = load(bias + o0 + n, as: V.self)
    @inline(__always) func finish(_ a: U, _ b: V, _ p: Int) {
        var u = a + bias0, v = b + bias1
        if let r = residual {
            u += load(r + p * ldr + o0, as: U.self)
            v += load(r + p * ldr + o0 + n, as: V.self)
        }
        let at = layout.pixel(p, y, ldy) + o0
        store(actU(u), at)
        store(actV(v), at + n)
    }
    var p = 0
    while p < pixels {
        let q = pixels >= 6 ? min(p, pixels - 6) : p
        let count = min(6, pixels - q)
        // Pixels past `count` (fewer than six in all) read the last pixel again and are not stored.
        let x0 = x + q * ldx, x1 = x0 + min(1, count - 1) * ldx, x2 = x0 + min(2, count - 1) * ldx
        let x3 = x0 + min(3, count - 1) * ldx, x4 = x0 + min(4, count - 1) * ldx, x5 = x0 + min(5, count - 1) * ldx
        var a0 = U(), a1 = U(), a2 = U(), a3 = U(), a4 = U(), a5 = U()
        var b0 = V(), b1 = V(), b2 = V(), b3 = V(), b4 = V(), b5 = V()
        for c in 0..<k {
            let u = load(wp + c * ldw, as: U.self), v = load(wp + c * ldw + n, as: V.self)
            var e = x0[c]
            a0 = a0.addingProduct(U(repeating: e), u)
            b0 = b0.addingProduct(V(repeating: e), v)
            e = x1[c]
            a1 = a1.addingProduct(U(repeating: e), u)
            b1 = b1.addingProduct(V(repeating: e), v)
            e = x2[c]
            a2 = a2.addingProduct(U(repeating: e), u)
            b2 = b2.addingProduct(V(repeating: e), v)
            e = x3[c]
            a3 = a3.addingProduct(U(repeating: e), u)
            b3 = b3.addingProduct(V(repeating: e), v)
            e = x4[c]
            a4 = a4.addingProduct(U(repeating: e), u)
            b4 = b4.addingProduct(V(repeating: e), v)
            e = x5[c]
            a5 = a5.addingProduct(U(repeating: e), u)
            b5 = b5.addingProduct(V(repeating: e), v)
        }
        finish(a0, b0, q)
        if count > 1 { finish(a1, b1, q + 1) }
        if count > 2 { finish(a2, b2, q + 2) }
        if count > 3 { finish(a3, b3, q + 3) }
        if count > 4 { finish(a4, b4, q + 4) }
        if count > 5 { finish(a5, b5, q + 5) }
        p = q + count
    }
}

/// Output rows of a channels-last depthwise convolution with bias and activation: `count` rows
/// out (count, OW, C), row r from the k zero-padded input rows `rows[r * k + i]` (i < k). Each
/// `rows[r * k + i]` is input row y * stride + i - padTop of output row y, its padding columns
/// included — element (column ix, channel ch) at `[(ix + padLeft) * C + ch]`, at least
/// (OW - 1) * stride + k columns — or an all-zero row where that row is padding: no tap needs
/// a bounds check.
///
/// Each vector of channels walks down all `count` rows before the next: on Lite0's deep maps a
/// row's k input rows span 60-300 KB, more than L1 (48 KB), and the k - stride rows an output
/// row shares with the next are then read again while still in L1.
/// Taps are summed in the same order (i, then j) for every pixel, so any split of the rows
/// between threads or calls gives the same numbers.
public func depthwiseRows(
    _ rows: UnsafePointer<UnsafePointer<Float>>, count: Int = 1, stride s: Int, outWidth: Int,
    weights w: PackedConvolution, into out: UnsafeMutablePointer<Float>
) {
    precondition(w.isDepthwise)
    let c = w.outChannels, k = w.kernel, perRow = outWidth * c
    var c0 = 0
    while c0 + 16 <= c {
        for r in 0..<count {
            let taps = rows + r * k, o = out + r * perRow
            switch (k, s) {
            #if ANOMAP_AVX512
                // Stride 1 on AVX-512: the row's inputs held in registers (see `slidingColumns`).
                case (3, 1):
                    let x = slidingColumns(SIMD16<Float>.self, ThreeTaps.self, taps, outWidth, w, c0, o)
                    depthwiseColumns(SIMD16<Float>.self, 3, taps, s, outWidth, w, c0, o, from: x)
                case (5, 1):
                    let x = slidingColumns(SIMD16<Float>.self, FiveTaps.self, taps, outWidth, w, c0, o)
                    depthwiseColumns(SIMD16<Float>.self, 5, taps, s, outWidth, w, c0, o, from: x)
            #endif
            // Constant kernel sizes let the compiler unroll the taps.
            case (3, _): depthwiseColumns(SIMD16<Float>.self, 3, taps, s, outWidth, w, c0, o)
            case (5, _): depthwiseColumns(SIMD16<Float>.self, 5, taps, s, outWidth, w, c0, o)
            default: depthwiseColumns(SIMD16<Float>.self, k, taps, s, outWidth, w, c0, o)
            }
        }
        c0 += 16
    }
    while c0 + 8 <= c {
        for r in 0..<count {
            depthwiseColumns(SIMD8<Float>.self, k, rows + r * k, s, outWidth, w, c0, out + r * perRow)
        }
        c0 += 8
    }
    for r in 0..<count {
        let taps = rows + r * k, o = out + r * perRow
        for ch in c0..<c {
            for x in 0..<outWidth {
                var acc: Float = 0
                for i in 0..<k {
                    for j in 0..<k {
                        acc = acc.addingProduct(taps[i][(x * s + j) * c + ch], w.weights[(i * k + j) * c + ch])
                    }
                }
                o[x * c + ch] = w.activation.isFused ? w.activation.scalar(acc + w.bias[ch]) : acc + w.bias[ch]
            }
        }
    }
    if !w.activation.isFused { activate(out, count: count * perRow, w.activation) }
}

/// Channels c0..<c0 + V.scalarCount of one depthwise output row from pixel `x0` on, eight
/// pixels per tile sharing each weight load (then four, then one).
///
/// Eight independent accumulators: each output is a chain of k x k fused multiply-adds, and with
/// four chains the 4-cycle FMA latency left one of the two FMA ports idle (35 GFLOP/s on block
/// 0's 3x3, measured by `anomap-bench --kernels`).
@inline(__always)
func depthwiseColumns<V: ClampingLanes>(
    _: V.Type, _ k: Int, _ rows: UnsafePointer<UnsafePointer<Float>>, _ s: Int, _ outWidth: Int,
    _ w: PackedConvolution, _ c0: Int, _ out: UnsafeMutablePointer<Float>, from x0: Int = 0
) {
    let c = w.outChannels, act = FusedActivation<V>(w.activation)
    let wp = UnsafePointer(w.weights) + c0
    let bias = load(w.bias + c0, as: V.self)
    let step = s * c
    var x = x0
    while x + 8 <= outWidth {
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
        for i in 0..<k {
            let line = rows[i] + x * step + c0
            for j in 0..<k {
                let wv = load(wp + (i * k + j) * c, as: V.self)
                let p = line + j * c
                a0 = a0.addingProduct(load(p, as: V.self), wv)
                a1 = a1.addingProduct(load(p + step, as: V.self), wv)
                a2 = a2.addingProduct(load(p + 2 * step, as: V.self), wv)
                a3 = a3.addingProduct(load(p + 3 * step, as: V.self), wv)
                a4 = a4.addingProduct(load(p + 4 * step, as: V.self), wv)
                a5 = a5.addingProduct(load(p + 5 * step, as: V.self), wv)
                a6 = a6.addingProduct(load(p + 6 * step, as: V.self), wv)
                a7 = a7.addingProduct(load(p + 7 * step, as: V.self), wv)
            }
        }
        let o = out + x * c + c0
        store(act(a0 + bias), o)
        store(act(a1 + bias), o + c)
        store(act(a2 + bias), o + 2 * c)
        store(act(a3 + bias), o + 3 * c)
        store(act(a4 + bias), o + 4 * c)
        store(act(a5 + bias), o + 5 * c)
        store(act(a6 + bias), o + 6 * c)
        store(act(a7 + bias), o + 7 * c)
        x += 8
    }
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
        store(act(a0 + bias), out + x * c + c0)
        store(act(a1 + bias), out + (x + 1) * c + c0)
        store(act(a2 + bias), out + (x + 2) * c + c0)
        store(act(a3 + bias), out + (x + 3) * c + c0)
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
        store(act(acc + bias), out + x * c + c0)
        x += 1
    }
}

/// A depthwise kernel's size as a type, so that `slidingColumns` is compiled once per size with
/// its taps unrolled (as a run-time argument, the kernel was not inlined and its column
/// lookups stayed a jump table).
protocol TapCount { static var k: Int { get } }
/// 3x3 kernels.
enum ThreeTaps: TapCount { static var k: Int { 3 } }
/// 5x5 kernels.
enum FiveTaps: TapCount { static var k: Int { 5 } }

/// `depthwiseColumns`' eight-pixel tiles for stride 1, with each kernel row's 7 + k input
/// vectors loaded once into registers and used by every output that reads them, where the
/// plain tile loads one for each of its k x 8 products (21 of AVX-512's 32 registers for 5x5:
/// the columns, eight sums and a weight). Each output still sums its taps in the order (i, j),
/// so the values are the same bit for bit. Returns the first pixel it left (fewer than eight
/// remain). `anomap-bench --kernels`, one thread: 5x5 on 32x32x240 115 against 71 GFLOP/s,
/// on 16x16x672 84 against 56, on 8x8x1152 50 against 46; 3x3 15-25% faster.
@inline(__always)
func slidingColumns<V: ClampingLanes, T: TapCount>(
    _: V.Type, _: T.Type, _ rows: UnsafePointer<UnsafePointer<Float>>, _ outWidth: Int, _ w: PackedConvolution,
    _ c0: Int, _ out: UnsafeMutablePointer<Float>
) -> Int {
    let k = T.k, c = w.outChannels, span = 7 + k, act = FusedActivation<V>(w.activation)
    let wp = UnsafePointer(w.weights) + c0
    let bias = load(w.bias + c0, as: V.self)
    var x = 0
    while x + 8 <= outWidth {
        var sums = EightSums<V>()
        for i in 0..<k {
            let line = rows[i] + x * c + c0
            @inline(__always) func at(_ n: Int) -> V { n < span ? load(line + n * c, as: V.self) : V() }
            let v0 = at(0), v1 = at(1), v2 = at(2), v3 = at(3), v4 = at(4), v5 = at(5), v6 = at(6), v7 = at(7)
            let v8 = at(8), v9 = at(9), v10 = at(10), v11 = at(11)
            @inline(__always) func column(_ n: Int) -> V {
                switch n {
                case 0: return v0
                case 1: return v1
                case 2: return v2
                case 3: return v3
                case 4: return v4
                case 5: return v5
                case 6: return v6
                case 7: return v7
                case 8: return v8
                case 9: return v9
                case 10: return v10
                default: return v11
                }
            }
            // The sums are passed in, not captured: a captured `var` lives on the heap.
            @inline(__always) func tap(_ j: Int, _ a: inout EightSums<V>) {
                let wv = load(wp + (i * k + j) * c, as: V.self)
                a.s0 = a.s0.addingProduct(column(j), wv)
                a.s1 = a.s1.addingProduct(column(1 + j), wv)
                a.s2 = a.s2.addingProduct(column(2 + j), wv)
                a.s3 = a.s3.addingProduct(column(3 + j), wv)
                a.s4 = a.s4.addingProduct(column(4 + j), wv)
                a.s5 = a.s5.addingProduct(column(5 + j), wv)
                a.s6 = a.s6.addingProduct(column(6 + j), wv)
                a.s7 = a.s7.addingProduct(column(7 + j), wv)
            }
            tap(0, &sums)
            tap(1, &sums)
            tap(2, &sums)
            if k > 3 {
                tap(3, &sums)
                tap(4, &sums)
            }
        }
        let o = out + x * c + c0
        store(act(sums.s0 + bias), o)
        store(act(sums.s1 + bias), o + c)
        store(act(sums.s2 + bias), o + 2 * c)
        store(act(sums.s3 + bias), o + 3 * c)
        store(act(sums.s4 + bias), o + 4 * c)
        store(act(sums.s5 + bias), o + 5 * c)
        store(act(sums.s6 + bias), o + 6 * c)
        store(act(sums.s7 + bias), o + 7 * c)
        x += 8
    }
    return x
}

/// Eight pixels' sums of one channel vector.
struct EightSums<V: SIMD> where V.Scalar == Float {
    var s0 = V(), s1 = V(), s2 = V(), s3 = V(), s4 = V(), s5 = V(), s6 = V(), s7 = V()
}

/// Gathers one output row's patches of a dense k x k convolution over a channels-last image:
/// patches (OW, k * k * C) in (i, j, c) order, zeros where a tap falls into the padding.
///
/// input (H, W, C); the row's taps read input rows y * stride + i - padTop. The inference
/// paths read their patches in place (`denseRow`); this is the plain form they are checked
/// against, bit for bit.
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

/// One output row of a dense k x k convolution read in place from k channels-last input rows,
/// zero-padded as `depthwiseRows`' are (`rows[i]` holds input row y * stride + i - padTop with
/// its padding columns, element (padded column, channel) at `[column * C + channel]`):
/// out (OW, O) = act(bias + taps).
///
/// The taps are summed in `gatherPatches`' column order (i, j, c), so the result is
/// `packedProduct` on gathered patches, bit for bit, without writing them. Built for the stem
/// (C = 3): its patches are three runs of 9 floats in such rows, and gathering them from the
/// planar input cost as much as the product. The students' and the autoencoder's 3x3 layers
/// read their rows the same way (see `ConvStack.forward`).
public func denseRow(
    _ rows: UnsafePointer<UnsafePointer<Float>>, channels c: Int, stride s: Int, outWidth: Int,
    weights w: PackedConvolution, into out: UnsafeMutablePointer<Float>
) {
    precondition(!w.isDepthwise && w.inChannels == c)
    let o = w.outChannels, k = w.kernel, reduction = w.reduction, width = PackedConvolution.panelWidth
    let run = k * c
    var o0 = 0
    while o0 + width <= o {
        // One kernel row at a time: its patches are runs of k C floats, s C apart, so each is a
        // product over the row itself; the sums carry over in `out`.
        for i in 0..<k {
            productColumnPairs(
                Lanes.self, rows[i], s * c, outWidth, w.weights + o0 * reduction + i * run * width, width, run,
                w.bias, o0, out, o, nil, 0, continuing: i > 0, finishing: i == k - 1, layout: EvenPixels(),
                NoFetchAhead.self, activation: w.activation)
        }
        o0 += width
    }
    // The last, narrower panel (K, rest): whole vectors, kernel row by kernel row as above.
    let rest = o - o0, panel = w.weights + o0 * reduction
    var j = 0
    @inline(__always) func columns<V: ClampingLanes>(_: V.Type) {
        while j + V.scalarCount <= rest {
            for i in 0..<k {
                productColumns(
                    V.self, rows[i], s * c, outWidth, panel + i * run * rest + j, rest, run, w.bias, o0 + j, out, o,
                    nil, 0, continuing: i > 0, finishing: i == k - 1, layout: EvenPixels(), activation: w.activation)
            }
            j += V.scalarCount
        }
    }
    columns(Lanes.self)
    columns(SIMD8<Float>.self)
    // Channels past the last multiple of 8: the same chain per element, one lane at a time.
    for oc in (o0 + j)..<o {
        for x in 0..<outWidth {
            var acc: Float = 0
            for i in 0..<k {
                for r in 0..<(k * c) {
                    acc = acc.addingProduct(rows[i][x * s * c + r], panel[(i * k * c + r) * rest + oc - o0])
                }
            }
            out[x * o + oc] = w.activation.isFused ? w.activation.scalar(acc + w.bias[oc]) : acc + w.bias[oc]
        }
    }
    if !w.activation.isFused { activate(out, count: outWidth * o, w.activation) }
}

/// Writes `count` zero-padded channels-last rows, each (left + W + right) * C floats, one after
/// the other at `band`: row r holds input row `first + r`, written by `inputRow(iy, into)`
/// between `left` and `right` zero columns, or zeros where that row is above or below the
/// image's `height` rows. The band the padded-row kernels (`denseRow`, `depthwiseRows`) read.
public func fillPaddedRows(
    _ band: UnsafeMutablePointer<Float>, count: Int, first: Int, height: Int, width: Int, channels c: Int,
    left: Int, right: Int, inputRow: (Int, UnsafeMutablePointer<Float>) -> Void
) {
    let line = (left + width + right) * c
    for r in 0..<count {
        let row = band + r * line, iy = first + r
        guard iy >= 0 && iy < height else {
            row.initialize(repeating: 0, count: line)
            continue
        }
        zeroPaddingColumns(row, left: left, width: width, right: right, channels: c)
        inputRow(iy, row + left * c)
    }
}

/// Zeros the `left` and `right` padding columns of one padded channels-last row
/// ((left + width + right) * channels floats at `row`), leaving its pixels as they are.
public func zeroPaddingColumns(
    _ row: UnsafeMutablePointer<Float>, left: Int, width: Int, right: Int, channels c: Int
) {
    row.initialize(repeating: 0, count: left * c)
    (row + (left + width) * c).initialize(repeating: 0, count: right * c)
}

/// Output rows `rows` of a dense k x k convolution, out (OH, OW, O) channels-last, each read in
/// place by `denseRow` from the band of input rows its taps need, copied once with their zero
/// padding: `inputRow(iy, into)` writes input row iy, (W, C) channels-last, where the band
/// holds it. Rows above and below the image are zeros. The stem fills its rows from the planar
/// network input, `ConvStack` from its channels-last activations.
public func denseConvolutionRows(
    _ rows: Range<Int>, height ih: Int, width iw: Int, geometry g: ConvGeometry, weights: PackedConvolution,
    into y: UnsafeMutablePointer<Float>, inputRow: (Int, UnsafeMutablePointer<Float>) -> Void
) {
    guard !rows.isEmpty else { return }
    let c = weights.inChannels, o = weights.outChannels, k = g.kernel.h, s = g.stride.h
    let ow = g.outputSize(height: ih, width: iw).w, top = g.padding.top, left = g.padding.left
    // Only the columns the last output pixel's taps reach.
    let right = max(0, (ow - 1) * s + k - left - iw), line = (left + iw + right) * c
    let first = rows.lowerBound * s - top, count = (rows.count - 1) * s + k
    let band = allocateAligned(count * line)
    let taps = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: k)
    defer {
        deallocateAligned(band)
        taps.deallocate()
    }
    fillPaddedRows(
        band, count: count, first: first, height: ih, width: iw, channels: c, left: left, right: right,
        inputRow: inputRow)
    for oy in rows {
        for i in 0..<k { taps[i] = UnsafePointer(band + (oy * s + i - top - first) * line) }
        denseRow(taps, channels: c, stride: s, outWidth: ow, weights: weights, into: y + oy * ow * o)
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
            guard let s = src.baseAddress, let t = out.baseAddress else { return }
            for b in 0..<n {
                let x = b * h * w * c, y = b * oh * ow * c
                for oy in 0..<oh {
                    let (y0, y1, fy) = ty[oy]
                    for ox in 0..<ow {
                        let (x0, x1, fx) = tx[ox]
                        let a = x + (y0 * w + x0) * c, bb = x + (y0 * w + x1) * c
                        let cc = x + (y1 * w + x0) * c, d = x + (y1 * w + x1) * c
                        let o = y + (oy * ow + ox) * c
                        // Sixteen channels a vector, the same operations per value (as a loop
                        // over the buffers it stayed scalar: 2% of `eval`'s profile).
                        typealias V = SIMD16<Float>
                        let (keepX, takeX) = (V(repeating: 1 - fx), V(repeating: fx))
                        let (keepY, takeY) = (V(repeating: 1 - fy), V(repeating: fy))
                        var ch = 0
                        while ch + V.scalarCount <= c {
                            let top = load(s + a + ch, as: V.self) * keepX + load(s + bb + ch, as: V.self) * takeX
                            let bottom = load(s + cc + ch, as: V.self) * keepX + load(s + d + ch, as: V.self) * takeX
                            store(top * keepY + bottom * takeY, t + o + ch)
                            ch += V.scalarCount
                        }
                        while ch < c {
                            let top = s[a + ch] * (1 - fx) + s[bb + ch] * fx
                            let bottom = s[cc + ch] * (1 - fx) + s[d + ch] * fx
                            t[o + ch] = top * (1 - fy) + bottom * fy
                            ch += 1
                        }
                    }
                }
            }
        }
        done = count
    }
}

/// A batch of feature maps held channels-last, (N, H, W, C): what the networks pass from one
/// stack of layers to the next, so they convert from and to planar tensors once.
public struct ChannelsLastBatch: Sendable {
    /// (N, H, W, C) values.
    public var values: [Float]
    /// N, H, W, C.
    public var batch: Int, height: Int, width: Int, channels: Int

    /// Wraps values already in (N, H, W, C) order.
    public init(values: [Float], batch: Int, height: Int, width: Int, channels: Int) {
        precondition(values.count == batch * height * width * channels, "channels-last batch: count and shape differ")
        self.values = values
        (self.batch, self.height, self.width, self.channels) = (batch, height, width, channels)
    }

    /// A planar (N, C, H, W) tensor's values, reordered.
    public init(_ t: Tensor) {
        self.init(values: channelsLast(t), batch: t.batch, height: t.height, width: t.width, channels: t.channels)
    }

    /// The same values as a planar (N, C, H, W) tensor.
    public var planar: Tensor { channelsFirst(values, batch: batch, height: height, width: width, channels: channels) }

    /// Each pixel's channels followed by `other`'s (same N, H, W): `concatChannels`, channels-last.
    public func stacked(with other: ChannelsLastBatch) -> ChannelsLastBatch {
        precondition(other.batch == batch && other.height == height && other.width == width, "stack: shapes differ")
        let pixels = batch * height * width, (a, b) = (channels, other.channels)
        let out = [Float](unsafeUninitializedCapacity: max(pixels * (a + b), 1)) { out, done in
            values.withUnsafeBufferPointer { x in
                other.values.withUnsafeBufferPointer { y in
                    guard let o = out.baseAddress, let x = x.baseAddress, let y = y.baseAddress else { return }
                    for p in 0..<pixels {
                        (o + p * (a + b)).initialize(from: x + p * a, count: a)
                        (o + p * (a + b) + a).initialize(from: y + p * b, count: b)
                    }
                }
            }
            done = pixels * (a + b)
        }
        return ChannelsLastBatch(values: out, batch: batch, height: height, width: width, channels: a + b)
    }

    /// Bilinear upsampling to (OH, OW): `upsampleBilinear`'s taps and arithmetic per element.
    public func upsampled(height oh: Int, width ow: Int) -> ChannelsLastBatch {
        ChannelsLastBatch(
            values: upsampleBilinearChannelsLast(
                values, batch: batch, height: height, width: width, channels: channels, toHeight: oh, width: ow),
            batch: batch, height: oh, width: ow, channels: channels)
    }
}

/// (N, C, H, W) -> (N, H, W, C).
public func channelsLast(_ t: Tensor) -> [Float] {
    let n = t.batch, c = t.channels, hw = t.height * t.width
    return [Float](unsafeUninitializedCapacity: max(t.count, 1)) { out, done in
        t.storage.withUnsafeBufferPointer { src in
            guard let x = src.baseAddress, let y = out.baseAddress else { return }
            // An RGB image (the students' input, 1.3 M values at 416x1024): three streams in and
            // one out, a pixel at a time, which vectorizes as an interleaving store; the blocked
            // loop below wrote each value on its own at a stride of three.
            if c == 3 {
                for b in 0..<n {
                    let r = x + b * 3 * hw, g = r + hw, bl = g + hw, o = y + b * hw * 3
                    for p in 0..<hw {
                        o[3 * p] = r[p]
                        o[3 * p + 1] = g[p]
                        o[3 * p + 2] = bl[p]
                    }
                }
                return
            }
            for b in 0..<n {
                // 16 pixels at a time, as in `channelsFirst`: the pixels' rows being written stay in
                // L1 across the channels (one channel at a time over the whole plane wrote a new
                // cache line per value on wide maps).
                for p0 in Swift.stride(from: 0, to: hw, by: 16) {
                    let p1 = min(hw, p0 + 16)
                    for ch in 0..<c {
                        let plane = (b * c + ch) * hw
                        for p in p0..<p1 { out[(b * hw + p) * c + ch] = src[plane + p] }
                    }
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

/// y (N, O) = x (N, K) W^T + b for W (O, K) row-major: a fully connected layer as one dot
/// product per output, split across `threads` by blocks of outputs.
///
/// At batch 1 the layer is a matrix-vector product that reads every weight once: rows of W
/// are read in order (the prefetcher's best case) and each core reads only its block of them.
/// Lite0's 1280 -> 1000 classifier, weights cold: 0.16 ms on one thread, 0.08-0.10 on two,
/// against 0.46 for `sgemm` (`anomap-bench --kernels`). Each dot sums k in a fixed order (four
/// vector partial sums over blocks of 4 x 16 values, then the lanes, then the scalar tail), so
/// the bytes do not depend on the thread count.
public func denseRows(
    _ x: UnsafePointer<Float>, batch n: Int, weights w: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
    inputs k: Int, outputs o: Int, into y: UnsafeMutablePointer<Float>, threads: Int = computeThreads
) {
    let blocks = min(max(1, threads), max(1, o / 64))
    let xs = UnsafeSendable(x), ws = UnsafeSendable(w), ys = UnsafeSendable(y), bs = bias.map { UnsafeSendable($0) }
    parallelLayer(iterations: blocks, threads: threads) { block in
        let x = xs.pointer, w = ws.pointer, y = ys.pointer
        for oc in (o * block / blocks)..<(o * (block + 1) / blocks) {
            let row = w + oc * k
            for b in 0..<n {
                let v = x + b * k
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var c = 0
                while c + 64 <= k {
                    a0 = a0.addingProduct(load(v + c, as: SIMD16<Float>.self), load(row + c, as: SIMD16<Float>.self))
                    a1 = a1.addingProduct(
                        load(v + c + 16, as: SIMD16<Float>.self), load(row + c + 16, as: SIMD16<Float>.self))
                    a2 = a2.addingProduct(
                        load(v + c + 32, as: SIMD16<Float>.self), load(row + c + 32, as: SIMD16<Float>.self))
                    a3 = a3.addingProduct(
                        load(v + c + 48, as: SIMD16<Float>.self), load(row + c + 48, as: SIMD16<Float>.self))
                    c += 64
                }
                var sum = ((a0 + a1) + (a2 + a3)).sum()
                while c < k {
                    sum = sum.addingProduct(v[c], row[c])
                    c += 1
                }
                y[b * o + oc] = sum + (bs.map { $0.pointer[oc] } ?? 0)
            }
        }
    }
}
