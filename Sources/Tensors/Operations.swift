/// Applies an activation to every element.
public func activate(_ x: Tensor, _ activation: Activation) -> Tensor {
    Tensor(shape: x.shape) { out in
        x.storage.withUnsafeBufferPointer { src in
            for i in 0..<out.count { out[i] = activation.apply(src[i]) }
        }
    }
}

/// Pooling reductions.
public enum PoolKind: Sendable {
    /// Mean over the window; padded positions are excluded from the count.
    case average
    /// Maximum over the window; padded positions are ignored.
    case max
}

/// 2-D pooling with a square window, stride and symmetric zero padding.
///
/// input (N, C, H, W) -> (N, C, OH, OW), OH = (H + 2 pad - kernel) / stride + 1.
public func pool2d(_ input: Tensor, kind: PoolKind, kernel: Int, stride: Int, padding: Int = 0) -> Tensor {
    let n = input.batch, c = input.channels, h = input.height, w = input.width
    let oh = (h + 2 * padding - kernel) / stride + 1, ow = (w + 2 * padding - kernel) / stride + 1
    precondition(oh > 0 && ow > 0, "pooling window larger than input")
    if kind == .average && stride == 1 && kernel == 3 && padding == 1 {
        return boxAverage3x3(input)
    }
    return Tensor(shape: [n, c, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            for plane in 0..<(n * c) {
                let x = plane * h * w, y = plane * oh * ow
                for oy in 0..<oh {
                    let y0 = max(0, oy * stride - padding), y1 = min(h, oy * stride - padding + kernel)
                    for ox in 0..<ow {
                        let x0 = max(0, ox * stride - padding), x1 = min(w, ox * stride - padding + kernel)
                        var acc: Float = kind == .max ? -.infinity : 0
                        for iy in y0..<y1 {
                            for ix in x0..<x1 {
                                let v = src[x + iy * w + ix]
                                acc = kind == .max ? Swift.max(acc, v) : acc + v
                            }
                        }
                        out[y + oy * ow + ox] = kind == .max ? acc : acc / Float((y1 - y0) * (x1 - x0))
                    }
                }
            }
        }
    }
}

/// 3x3 mean, stride 1, padding 1 excluded from the count, plane by plane: the fast path of
/// `pool2d` for the patch-neighbourhood averaging of every detector embedding.
func boxAverage3x3(_ input: Tensor) -> Tensor {
    let planes = input.batch * input.channels, h = input.height, w = input.width
    let rows = UnsafeMutablePointer<Float>.allocate(capacity: max(1, h * w))
    defer { rows.deallocate() }
    return Tensor(shape: input.shape) { out in
        input.storage.withUnsafeBufferPointer { src in
            guard let x = src.baseAddress, let y = out.baseAddress else { return }
            for p in 0..<planes {
                boxAverage3x3(plane: x + p * h * w, height: h, width: w, rows: rows, into: y + p * h * w)
            }
        }
    }
}

/// One (H, W) plane's 3x3 mean (padding excluded from the count) into `out`, through `rows`
/// (H * W scratch): row sums (centre, left, right), then column sums of those (centre, above,
/// below) over the taps' count. Edges are separate, so the inner loops have no branches and
/// vectorize; every value is summed in the same order as at the edges.
public func boxAverage3x3(
    plane src: UnsafePointer<Float>, height h: Int, width w: Int, rows r: UnsafeMutablePointer<Float>,
    into out: UnsafeMutablePointer<Float>
) {
    for y in 0..<h {
        let s = src + y * w, t = r + y * w
        guard w > 1 else {
            t[0] = s[0]
            continue
        }
        t[0] = s[0] + s[1]
        for i in 1..<max(1, w - 1) { t[i] = s[i] + s[i - 1] + s[i + 1] }
        t[w - 1] = s[w - 1] + s[w - 2]
    }
    for y in 0..<h {
        let t = r + y * w, o = out + y * w
        let above = y > 0 ? t - w : nil, below = y + 1 < h ? t + w : nil
        let rowsUsed = Float(1 + (above == nil ? 0 : 1) + (below == nil ? 0 : 1))
        @inline(__always) func column(_ i: Int) -> Float {
            var s = t[i]
            if let a = above { s += a[i] }
            if let b = below { s += b[i] }
            return s
        }
        let edge = rowsUsed * Float(w > 1 ? 2 : 1), middle = rowsUsed * 3
        o[0] = column(0) / edge
        guard w > 1 else { continue }
        switch (above, below) {
        case let (a?, b?): for i in 1..<max(1, w - 1) { o[i] = (t[i] + a[i] + b[i]) / middle }
        case let (a?, nil): for i in 1..<max(1, w - 1) { o[i] = (t[i] + a[i]) / middle }
        case let (nil, b?): for i in 1..<max(1, w - 1) { o[i] = (t[i] + b[i]) / middle }
        case (nil, nil): for i in 1..<max(1, w - 1) { o[i] = t[i] / middle }
        }
        o[w - 1] = column(w - 1) / edge
    }
}

/// For each output index along one axis of a half-pixel-centred bilinear resize: the two
/// input indices it reads and the weight of the second.
public func bilinearTaps(output: Int, input size: Int) -> [(Int, Int, Float)] {
    let scale = Float(size) / Float(output)
    return (0..<output).map { i in
        let s = max(0, (Float(i) + 0.5) * scale - 0.5)
        let i0 = min(size - 1, Int(s))
        let i1 = min(size - 1, i0 + 1)
        return (i0, i1, s - Float(i0))
    }
}

/// Bilinear resize of every (H, W) plane with half-pixel centres (align_corners = false),
/// the convention of PyTorch `interpolate(mode="bilinear")` and TensorFlow 2 `resize`.
public func upsampleBilinear(_ input: Tensor, height oh: Int, width ow: Int) -> Tensor {
    let planes = input.batch * input.channels, h = input.height, w = input.width
    let ty = bilinearTaps(output: oh, input: h), tx = bilinearTaps(output: ow, input: w)
    return Tensor(shape: [input.batch, input.channels, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            guard let x = src.baseAddress, let y = out.baseAddress else { return }
            for p in 0..<planes {
                upsampleBilinear(
                    plane: x + p * h * w, height: h, width: w, rowTaps: ty, columnTaps: tx, into: y + p * oh * ow)
            }
        }
    }
}

/// One (H, W) plane resized to (rowTaps.count, columnTaps.count) with `bilinearTaps`' taps.
///
/// Each input row is first resampled along x (every output row mixes two of them), then each
/// output row is the two rows mixed, sixteen values a vector: the same products and sums per
/// value as the formula pixel by pixel, which took a pixel's four reads and seven operations
/// each (1% of `eval`'s profile, for the maps' refinement).
public func upsampleBilinear(
    plane src: UnsafePointer<Float>, height h: Int, width w: Int, rowTaps ty: [(Int, Int, Float)],
    columnTaps tx: [(Int, Int, Float)], into out: UnsafeMutablePointer<Float>
) {
    let ow = tx.count
    let rows = UnsafeMutablePointer<Float>.allocate(capacity: max(1, h * ow))
    defer { rows.deallocate() }
    for y in 0..<h {
        let line = src + y * w, resampled = rows + y * ow
        for (ox, (x0, x1, fx)) in tx.enumerated() { resampled[ox] = line[x0] * (1 - fx) + line[x1] * fx }
    }
    typealias V = SIMD16<Float>
    for (oy, (y0, y1, fy)) in ty.enumerated() {
        let top = rows + y0 * ow, bottom = rows + y1 * ow, o = out + oy * ow
        let (keep, take) = (V(repeating: 1 - fy), V(repeating: fy))
        var ox = 0
        while ox + V.scalarCount <= ow {
            store(load(top + ox, as: V.self) * keep + load(bottom + ox, as: V.self) * take, o + ox)
            ox += V.scalarCount
        }
        while ox < ow {
            o[ox] = top[ox] * (1 - fy) + bottom[ox] * fy
            ox += 1
        }
    }
}

/// Concatenates (N, Ci, H, W) tensors along channels.
public func concatChannels(_ parts: [Tensor]) -> Tensor {
    precondition(!parts.isEmpty)
    let n = parts[0].batch, h = parts[0].height, w = parts[0].width
    precondition(parts.allSatisfy { $0.batch == n && $0.height == h && $0.width == w }, "concat: spatial mismatch")
    let total = parts.reduce(0) { $0 + $1.channels }
    var storage = [Float]()
    storage.reserveCapacity(n * total * h * w)
    for b in 0..<n {
        for p in parts {
            let size = p.channels * h * w
            storage.append(contentsOf: p.storage[(b * size)..<((b + 1) * size)])
        }
    }
    return Tensor(shape: [n, total, h, w], storage: storage)
}

/// The k-th smallest of `values` (0-based; NaN-free input): a quickselect whose partitions are
/// branch-free (each value is written to both sides, and only the side's count moves on).
///
/// The per-channel medians of the shift features select among 1,024 values per channel, and a
/// branching partition mispredicted on about every other value: 1.3 ms per image, 4% of
/// `eval`'s profile. From 256 values on, one branch-free pass first keeps only the values
/// between two order statistics of a small strided sample that bracket the k-th with high
/// probability (the sampling step of Floyd and Rivest, CACM 1975), and the quickselect runs on
/// those; when the bracket misses, on all of them. On magnetic_tile's shift features it kept
/// 319 of 1,024 values on average and missed 775 times in 88,464; the order statistics went
/// from 3.6% of `eval`'s profile to 2.3%. Any exact selection returns the same value.
public func orderStatistic(_ values: UnsafeBufferPointer<Float>, _ k: Int) -> Float {
    precondition(k >= 0 && k < values.count, "order statistic \(k) of \(values.count) values")
    let n = values.count, samples = 32
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * n + samples)
    defer { scratch.deallocate() }
    guard let base = values.baseAddress else { return 0 }
    var count = n, k = k
    if n >= 256, let (kept, rank) = bracketing(base, n, k, sample: scratch + 4 * n, samples: samples, into: scratch) {
        (count, k) = (kept, rank)
    } else {
        scratch.update(from: base, count: n)
    }
    // Two areas of 2n values, used in turn: the values left to search in one, the values
    // below and above the pivot written to the other.
    var source = UnsafeMutablePointer(scratch), inFirst = true
    while count > 16 {
        let a = source[0], b = source[count / 2], c = source[count - 1]
        let pivot = max(min(a, b), min(max(a, b), c))  // median of three
        let below = inFirst ? scratch + 2 * n : scratch, above = below + n
        var l = 0, g = 0
        for i in 0..<count {
            let x = source[i]
            below[l] = x
            above[g] = x
            l += x < pivot ? 1 : 0
            g += x > pivot ? 1 : 0
        }
        if k < l {
            (source, count) = (below, l)
        } else if k < count - g {
            return pivot
        } else {
            (source, k, count) = (above, k - (count - g), g)
        }
        inFirst.toggle()
    }
    // Few left: insertion sort.
    insertionSort(source, count: count)
    return source[k]
}

/// Sorts the `count` floats at `p` in place by insertion: for the few values `orderStatistic`
/// ends on, and its bracket's sample.
@inline(__always)
private func insertionSort(_ p: UnsafeMutablePointer<Float>, count: Int) {
    for i in 1..<max(1, count) {
        let x = p[i]
        var j = i
        while j > 0 && p[j - 1] > x {
            p[j] = p[j - 1]
            j -= 1
        }
        p[j] = x
    }
}

/// `orderStatistic`'s first pass: the values of `base` (n of them) between the order
/// statistics of `samples` strided values that should surround the k-th, written to `kept`,
/// with the k-th's rank among them; nil when the k-th is not among them. `sample` holds
/// `samples` floats.
private func bracketing(
    _ base: UnsafePointer<Float>, _ n: Int, _ k: Int, sample: UnsafeMutablePointer<Float>, samples: Int,
    into kept: UnsafeMutablePointer<Float>
) -> (count: Int, rank: Int)? {
    // One value from each of `samples` equal runs, at a place within the run that moves from
    // run to run: at a fixed place, a 32 x 32 map's 32 samples all came from one column.
    let step = n / samples
    for i in 0..<samples { sample[i] = base[i * step + (i * 37 + step / 2) % step] }
    insertionSort(sample, count: samples)
    // Five sample places either side: a sample's order statistic misses the k-th by about
    // n / (2 sqrt(samples)) places (one standard deviation at the median, 90 of 1,024), so the
    // bracket rarely misses.
    let expected = (k * samples + n / 2) / n
    let low = sample[max(0, expected - 5)], high = sample[min(samples - 1, expected + 5)]
    var below = 0, count = 0
    for i in 0..<n {
        let x = base[i]
        kept[count] = x
        // Bool's bytes as counts: a conditional here compiled to a branch that mispredicted.
        below &+= Int(unsafeBitCast(x < low, to: UInt8.self))
        count &+= Int(unsafeBitCast(x >= low, to: UInt8.self) & unsafeBitCast(x <= high, to: UInt8.self))
    }
    return k >= below && k < below + count ? (count, k - below) : nil
}

/// The median of `values` (NaN-free): the middle value, or the mean of the two middle ones; 0
/// when there are none. One `orderStatistic`, then a pass for the value just below it, sixteen
/// values a vector (as a scalar loop it took as long as the selection).
public func median(_ values: UnsafeBufferPointer<Float>) -> Float {
    let n = values.count
    guard n > 0, let base = values.baseAddress else { return 0 }
    let upper = orderStatistic(values, n / 2)
    guard n % 2 == 0 else { return upper }
    // The largest value under `upper`, unless upper itself is repeated below the middle (fewer
    // than n / 2 values under it).
    typealias V = SIMD16<Float>
    let bound = V(repeating: upper)
    var counts = SIMD16<Int32>(), largestLanes = V(repeating: -.infinity)
    var i = 0
    while i + V.scalarCount <= n {
        let v = load(base + i, as: V.self)
        let under = v .< bound
        counts &-= unsafeBitCast(under, to: SIMD16<Int32>.self)  // a true lane is -1
        // Not `pointwiseMax`, which compiles to a loop over the lanes.
        largestLanes.replace(with: v, where: under .& (v .> largestLanes))
        i += V.scalarCount
    }
    var below = Int(counts.wrappedSum()), largest = largestLanes.max()
    while i < n {
        let x = base[i]
        below += x < upper ? 1 : 0
        largest = x < upper ? max(largest, x) : largest
        i += 1
    }
    return (upper + (below < n / 2 ? upper : largest)) / 2
}
