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

/// 3x3 mean, stride 1, padding 1 excluded from the count: separable running sums, the fast
/// path of `pool2d` for the patch-neighbourhood averaging of every detector embedding.
func boxAverage3x3(_ input: Tensor) -> Tensor {
    let n = input.batch, c = input.channels, h = input.height, w = input.width
    var rows = [Float](repeating: 0, count: h * w)
    return Tensor(shape: [n, c, h, w]) { out in
        input.storage.withUnsafeBufferPointer { src in
            rows.withUnsafeMutableBufferPointer { r in
                for plane in 0..<(n * c) {
                    let x = plane * h * w
                    for y in 0..<h {
                        let line = x + y * w
                        for i in 0..<w {
                            var s = src[line + i]
                            if i > 0 { s += src[line + i - 1] }
                            if i + 1 < w { s += src[line + i + 1] }
                            r[y * w + i] = s
                        }
                    }
                    for y in 0..<h {
                        let rowsUsed = Float(1 + (y > 0 ? 1 : 0) + (y + 1 < h ? 1 : 0))
                        for i in 0..<w {
                            var s = r[y * w + i]
                            if y > 0 { s += r[(y - 1) * w + i] }
                            if y + 1 < h { s += r[(y + 1) * w + i] }
                            let colsUsed = Float(1 + (i > 0 ? 1 : 0) + (i + 1 < w ? 1 : 0))
                            out[x + y * w + i] = s / (rowsUsed * colsUsed)
                        }
                    }
                }
            }
        }
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
    let n = input.batch, c = input.channels, h = input.height, w = input.width
    let ty = bilinearTaps(output: oh, input: h), tx = bilinearTaps(output: ow, input: w)
    return Tensor(shape: [n, c, oh, ow]) { out in
        input.storage.withUnsafeBufferPointer { src in
            for plane in 0..<(n * c) {
                let x = plane * h * w, y = plane * oh * ow
                for oy in 0..<oh {
                    let (y0, y1, fy) = ty[oy]
                    for ox in 0..<ow {
                        let (x0, x1, fx) = tx[ox]
                        let top = src[x + y0 * w + x0] * (1 - fx) + src[x + y0 * w + x1] * fx
                        let bottom = src[x + y1 * w + x0] * (1 - fx) + src[x + y1 * w + x1] * fx
                        out[y + oy * ow + ox] = top * (1 - fy) + bottom * fy
                    }
                }
            }
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
/// `eval`'s profile. Any exact selection returns the same value.
public func orderStatistic(_ values: UnsafeBufferPointer<Float>, _ k: Int) -> Float {
    precondition(k >= 0 && k < values.count, "order statistic \(k) of \(values.count) values")
    let n = values.count
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: 4 * n)
    defer { scratch.deallocate() }
    guard let base = values.baseAddress else { return 0 }
    scratch.update(from: base, count: n)
    // Two areas of 2n values, used in turn: the values left to search in one, the values
    // below and above the pivot written to the other.
    var source = UnsafeMutablePointer(scratch), count = n, k = k, inFirst = true
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
    for i in 1..<max(1, count) {
        let x = source[i]
        var j = i
        while j > 0 && source[j - 1] > x {
            source[j] = source[j - 1]
            j -= 1
        }
        source[j] = x
    }
    return source[k]
}

/// The median of `values` (NaN-free): the middle value, or the mean of the two middle ones; 0
/// when there are none. One `orderStatistic`, then a pass for the value just below it.
public func median(_ values: UnsafeBufferPointer<Float>) -> Float {
    let n = values.count
    guard n > 0 else { return 0 }
    let upper = orderStatistic(values, n / 2)
    guard n % 2 == 0 else { return upper }
    // The largest value under `upper`, unless upper itself is repeated below the middle (fewer
    // than n / 2 values under it).
    var below = 0, largest = -Float.infinity
    for x in values {
        below += x < upper ? 1 : 0
        largest = x < upper ? max(largest, x) : largest
    }
    return (upper + (below < n / 2 ? upper : largest)) / 2
}
