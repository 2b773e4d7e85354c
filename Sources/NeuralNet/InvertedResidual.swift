import Dispatch
import Tensors

/// An inverted-residual block for channels-last inference (MobileNetV2, Sandler et al. 2018):
/// 1x1 expansion + activation, depthwise k x k with stride + activation, 1x1 projection, and
/// the input added back when the shapes allow. Inference only: the teacher is frozen.
///
/// Fused by rows: on large maps each output row expands only the input rows its taps need into
/// a ring of k rows (each expanded row is computed once per band), so the expanded activations
/// — 6x the input's channels — never leave the cache as a whole map. Maps of up to 32x32 are
/// expanded whole first (they fit in L2) and filtered and projected in chunks of rows.
public struct InvertedResidual: Sendable {
    /// 1x1 expansion, or nil when the block has none (expansion ratio 1).
    public let expand: PackedConvolution?
    /// Depthwise k x k convolution.
    public let depthwise: PackedConvolution
    /// 1x1 projection (no activation).
    public let project: PackedConvolution
    /// Stride of the depthwise convolution.
    public let stride: Int
    /// Whether the input is added to the output.
    public let residual: Bool

    /// Packs the block's (batch-norm folded) layers; padding is TensorFlow 'SAME'.
    public init(expand: Conv2d?, depthwise: Conv2d, project: Conv2d, residual: Bool) {
        func pack(_ layer: Conv2d, depthwise: Bool = false) -> PackedConvolution {
            PackedConvolution(
                weight: layer.weight, bias: layer.bias, depthwise: depthwise, activation: layer.activation)
        }
        self.expand = expand.map { pack($0) }
        self.depthwise = pack(depthwise, depthwise: true)
        self.project = pack(project)
        stride = depthwise.stride
        self.residual = residual
        precondition(!residual || (stride == 1 && inChannels == outChannels))
    }

    /// The largest map (pixels) whose expansion runs whole before its rows: up to 32x32 the
    /// expanded map (at most about 1 MB on Lite0) stays in L2.
    public static let wholeExpansionPixels = 32 * 32

    /// Input channels.
    public var inChannels: Int { expand?.inChannels ?? depthwise.outChannels }
    /// Output channels.
    public var outChannels: Int { project.outChannels }

    /// The depthwise geometry ('SAME' padding) for an input of `height` x `width`.
    public func geometry(height: Int, width: Int) -> ConvGeometry {
        let c = depthwise.outChannels
        return .same(
            inChannels: c, outChannels: c, kernel: depthwise.kernel, stride: stride, height: height, width: width,
            groups: c)
    }

    /// The expansion of a whole (small) map, x (N, H, W, C_in) -> (N, H, W, C_mid), written
    /// straight into the padded rows the depthwise taps read (see `ExpandedMap`), in one product
    /// per thread over a band of rows (the first phase of a small map's two-phase forward, see
    /// `forward`). Split by output channels instead, so that each thread reads half the weights,
    /// it measured 5-13% slower on Lite0 at batch 1.
    public func expandAll(
        _ x: UnsafePointer<Float>, images n: Int, height h: Int, width w: Int, threads: Int = computeThreads
    ) -> ExpandedMap? {
        guard let expand else { return nil }
        let padding = geometry(height: h, width: w).padding, mid = depthwise.outChannels, cin = inChannels
        let map = ExpandedMap(
            images: n, height: h, width: w, channels: mid, left: padding.left, right: padding.right)
        let rows = n * h, bands = max(1, min(threads, rows)), line = map.line
        let xs = UnsafeSendable(UnsafeMutablePointer(mutating: x)), values = UnsafeSendable(map.values)
        let gaps = OutputGaps(pixels: w, floats: (padding.left + padding.right) * mid)
        parallelLayer(iterations: bands, threads: threads) { b in
            let lo = rows * b / bands, hi = rows * (b + 1) / bands
            for r in lo..<hi {
                zeroPaddingColumns(
                    values.pointer + r * line, left: padding.left, width: w, right: padding.right, channels: mid)
            }
            packedProduct(
                xs.pointer + lo * w * cin, ldx: cin, pixels: (hi - lo) * w, weights: expand,
                into: values.pointer + lo * line + padding.left * mid, ldy: mid, gaps: gaps)
        }
        return map
    }

    /// Output rows `rows` of one image: x (H, W, C_in) -> y (OH, OW, C_out), channels-last.
    ///
    /// `expanded`, when given, is the whole batch's expansion (`expandAll`), of which this is
    /// image `image`: on small maps, splitting the rows between threads would make each band
    /// recompute k - stride expanded rows of halo (half the work on an 8x8 map), so the
    /// expansion runs first as its own phase.
    public func forward(
        _ x: UnsafePointer<Float>, height h: Int, width w: Int, rows: Range<Int>, into y: UnsafeMutablePointer<Float>,
        expanded: ExpandedMap? = nil, image: Int = 0
    ) {
        let g = geometry(height: h, width: w)
        let (oh, ow) = g.outputSize(height: h, width: w)
        let k = depthwise.kernel, s = stride, mid = depthwise.outChannels, cin = inChannels, cout = outChannels
        if let expanded {
            forward(x, height: h, width: w, rows: rows, into: y, expansion: expanded, image: image)
            return
        }
        // A whole small image (one thread's share of a batch, or a single image on one thread):
        // its expansion in one product first, as `expandAll` does for an image split into bands;
        // a row of 8 or 16 pixels alone wastes up to half of the product's last tile.
        if rows == 0..<oh, h * w <= Self.wholeExpansionPixels,
            let whole = expandAll(x, images: 1, height: h, width: w, threads: 1)
        {
            forward(x, height: h, width: w, rows: rows, into: y, expansion: whole, image: 0)
            return
        }
        // Larger maps (or no expansion): ring rows carry the depthwise padding columns (zeros,
        // written once), so the depthwise kernel needs no bounds checks; rows above and below
        // the image read one zero row.
        let line = (g.padding.left + w + g.padding.right) * mid, interior = g.padding.left * mid
        let ring = allocateAligned((k + 1) * line)
        // Only the padding columns and the zero row: every slot's pixels are written before they
        // are read (zeroing whole rings was 1.3% of Lite0's time, mostly on the 64- and 128-wide
        // maps).
        for slot in 0..<k {
            zeroPaddingColumns(
                ring + slot * line, left: g.padding.left, width: w, right: g.padding.right, channels: mid)
        }
        (ring + k * line).initialize(repeating: 0, count: line)
        let zeros = UnsafePointer(ring + k * line)
        // Narrow rows are projected a few at a time: a product over 8 pixels would spend a third
        // of its work on the shifted last tile.
        let group = max(1, 48 / max(ow, 1))
        let filtered = allocateAligned(group * ow * mid)
        let taps = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: k)
        var held = [Int](repeating: -1, count: k)  // input row held by each ring slot
        defer {
            deallocateAligned(ring)
            deallocateAligned(filtered)
            taps.deallocate()
        }
        for oy in rows {
            for i in 0..<k {
                let iy = oy * s + i - g.padding.top
                guard iy >= 0 && iy < h else {
                    taps[i] = zeros
                    continue
                }
                // k consecutive rows fall into k different slots, and a slot is reused only
                // for a row below every row an earlier output row needed.
                let slot = iy % k, row = ring + slot * line
                if held[slot] != iy {
                    if let expand {
                        packedProduct(
                            x + iy * w * cin, ldx: cin, pixels: w, weights: expand, into: row + interior, ldy: mid)
                    } else {
                        (row + interior).update(from: x + iy * w * cin, count: w * cin)
                    }
                    held[slot] = iy
                }
                taps[i] = UnsafePointer(row)
            }
            let slot = (oy - rows.lowerBound) % group
            depthwiseRows(taps, stride: s, outWidth: ow, weights: depthwise, into: filtered + slot * ow * mid)
            guard slot == group - 1 || oy == rows.upperBound - 1 else { continue }
            let first = oy - slot  // output rows first...oy are in `filtered`, and contiguous in y
            packedProduct(
                filtered, ldx: mid, pixels: (slot + 1) * ow, weights: project, into: y + first * ow * cout, ldy: cout,
                residual: residual ? x + first * w * cin : nil, ldr: cin)
        }
    }

    /// `forward` from a whole image's expansion (image `image` of `expanded`): output rows in
    /// chunks of about 128 pixels, filtered as a whole by `depthwiseRows` straight from the
    /// expansion's padded rows (each channel vector down all the chunk's rows) and projected in
    /// one product. Against a ring row by row, Lite0 at batch 1 took 0.94x the time to stride 8
    /// and 0.98x for the classifier (2 threads, paired), the same bytes. Reading the rows in
    /// place, where each chunk's rows were copied with their padding into a band first, took
    /// blocks 4, 5 and 11 0.66-0.88x the time (batch 1, paired); the others within 5%.
    func forward(
        _ x: UnsafePointer<Float>, height h: Int, width w: Int, rows: Range<Int>, into y: UnsafeMutablePointer<Float>,
        expansion expanded: ExpandedMap, image: Int
    ) {
        let g = geometry(height: h, width: w)
        let (_, ow) = g.outputSize(height: h, width: w)
        let k = depthwise.kernel, s = stride, mid = depthwise.outChannels, cin = inChannels, cout = outChannels
        let chunk = max(1, min(rows.count, 128 / max(ow, 1)))
        let filtered = allocateAligned(chunk * ow * mid)
        let taps = UnsafeMutablePointer<UnsafePointer<Float>>.allocate(capacity: chunk * k)
        defer {
            deallocateAligned(filtered)
            taps.deallocate()
        }
        var first = rows.lowerBound
        while first < rows.upperBound {
            let count = min(chunk, rows.upperBound - first)
            for r in 0..<count {
                for i in 0..<k { taps[r * k + i] = expanded.row(image, (first + r) * s + i - g.padding.top) }
            }
            depthwiseRows(taps, count: count, stride: s, outWidth: ow, weights: depthwise, into: filtered)
            packedProduct(
                filtered, ldx: mid, pixels: count * ow, weights: project, into: y + first * ow * cout, ldy: cout,
                residual: residual ? x + first * w * cin : nil, ldr: cin)
            first += count
        }
    }
}

/// A small map's whole expansion (N, H, W, C), laid out as the depthwise taps read it: each row
/// between its zero padding columns ((left + W + right) * C floats a row, on a 64-byte
/// boundary), the rows of all images one after the other, then one row of zeros for the taps
/// above and below the map. The expansion's product writes its rows in place (`OutputGaps`),
/// so no row is copied.
public final class ExpandedMap: @unchecked Sendable {
    /// Floats per padded row.
    public let line: Int
    /// Rows per image.
    public let height: Int
    /// Padding columns left of each row.
    public let left: Int
    /// Pixels per row (without padding), channels per pixel.
    public let width: Int, channels: Int
    /// Images.
    public let images: Int
    /// The rows, then the zero row.
    let values: UnsafeMutablePointer<Float>

    /// Room for the rows; the zero row is written, the rows (padding included) are not.
    init(images: Int, height: Int, width: Int, channels: Int, left: Int, right: Int) {
        self.images = images
        self.height = height
        self.width = width
        self.channels = channels
        self.left = left
        line = (left + width + right) * channels
        values = allocateAligned((images * height + 1) * line)
        (values + images * height * line).initialize(repeating: 0, count: line)
    }

    deinit { deallocateAligned(values) }

    /// Row `iy` of image `image` from its first padding column, or the zero row when `iy` lies
    /// above or below the map.
    @inline(__always)
    func row(_ image: Int, _ iy: Int) -> UnsafePointer<Float> {
        UnsafePointer(values + (iy >= 0 && iy < height ? image * height + iy : images * height) * line)
    }

    /// The expansion without its padding, (N, H, W, C).
    public var unpadded: [Float] {
        var out = [Float]()
        out.reserveCapacity(images * height * width * channels)
        for r in 0..<(images * height) {
            let start = values + r * line + left * channels
            out.append(contentsOf: UnsafeBufferPointer(start: start, count: width * channels))
        }
        return out
    }

    /// Every float of the layout, padding and zero row included.
    public var padded: [Float] { Array(UnsafeBufferPointer(start: values, count: (images * height + 1) * line)) }
}

/// Runs a channels-last layer over a batch: `body(image, its input, rows, its output)` for every
/// image and band of output rows, split across `threads` workers — by images when the
/// batch has enough of them, else by rows — and returns the (N, OH, OW, C_out) output.
///
/// Every output row is computed by the same code whatever the split, so the bytes do not
/// depend on the thread count.
public func channelsLastLayer(
    _ input: [Float], batch n: Int, inputPerImage: Int, outputRows: Int, outputPerRow: Int,
    threads: Int = computeThreads, body: (Int, UnsafePointer<Float>, Range<Int>, UnsafeMutablePointer<Float>) -> Void
) -> [Float] {
    precondition(input.count == n * inputPerImage)
    let perImage = outputRows * outputPerRow, count = n * perImage
    let bands = n >= threads ? 1 : min(threads, outputRows)
    return [Float](unsafeUninitializedCapacity: max(count, 1)) { out, done in
        input.withUnsafeBufferPointer { src in
            guard let x = src.baseAddress, let y = out.baseAddress else { return }
            let xs = UnsafeSendable(x), ys = UnsafeSendable(y)
            let units = n * bands
            func work(_ unit: Int) {
                let image = unit / bands, band = unit % bands
                let rows = (outputRows * band / bands)..<(outputRows * (band + 1) / bands)
                body(image, xs.pointer + image * inputPerImage, rows, ys.pointer + image * perImage)
            }
            if bands == 1 && units > threads {
                // Whole images per worker: each worker takes every threads-th image.
                parallelLayer(iterations: threads, threads: threads) { worker in
                    for unit in Swift.stride(from: worker, to: units, by: threads) { work(unit) }
                }
            } else {
                parallelLayer(iterations: units, threads: threads) { work($0) }
            }
        }
        done = count
    }
}
