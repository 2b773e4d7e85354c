import Dispatch

/// How to resample an image.
public enum ResizeMethod: String, Sendable, CaseIterable {
    /// Bilinear interpolation with half-pixel centres (no antialiasing): for enlarging.
    case bilinear
    /// Exact box-filter averaging over each output pixel's footprint: for shrinking.
    /// When enlarging it equals bilinear.
    case area
    /// Nearest neighbour: for label masks.
    case nearest
}

/// One output sample's contributing source indices and weights along one axis.
struct ResampleTaps {
    var start: [Int32] = []  // first source index per output index
    var count: [Int32] = []  // number of taps per output index
    var offset: [Int32] = []  // where this output's weights begin in `weights`
    var weights: [Float] = []

    init(from n: Int, to m: Int, method: ResizeMethod) {
        let scale = Double(n) / Double(m)
        let boxed = method == .area && m < n
        for i in 0..<m {
            offset.append(Int32(weights.count))
            if method == .nearest {
                start.append(Int32(min(n - 1, Int((Double(i) + 0.5) * scale))))
                count.append(1)
                weights.append(1)
            } else if boxed {
                let lo = Double(i) * scale, hi = Double(i + 1) * scale
                let first = Int(lo), last = min(n - 1, Int((hi - 1e-9).rounded(.down)))
                start.append(Int32(first))
                count.append(Int32(last - first + 1))
                for j in first...last {
                    let overlap = min(hi, Double(j + 1)) - max(lo, Double(j))
                    weights.append(Float(overlap / scale))
                }
            } else {
                let src = max(0, (Double(i) + 0.5) * scale - 0.5)
                let i0 = min(n - 1, Int(src))
                let f = Float(src - Double(i0))
                if i0 + 1 < n && f > 0 {
                    start.append(Int32(i0)); count.append(2)
                    weights.append(1 - f); weights.append(f)
                } else {
                    start.append(Int32(i0)); count.append(1)
                    weights.append(1)
                }
            }
        }
    }
}

/// Resizes (C, H, W) float planes; separable, horizontal pass then vertical. `threads` > 1
/// splits each pass into bands of rows (each value is computed the same way, so the output
/// does not depend on it): a model input and a map brought to the photo's size are both on
/// one image's path.
public func resizePlanes(
    _ planes: [Float], channels: Int, width: Int, height: Int,
    toWidth: Int, toHeight: Int, method: ResizeMethod, threads: Int = 1
) -> [Float] {
    precondition(planes.count == channels * width * height && toWidth > 0 && toHeight > 0)
    if toWidth == width && toHeight == height { return planes }
    let tx = ResampleTaps(from: width, to: toWidth, method: method)
    let ty = ResampleTaps(from: height, to: toHeight, method: method)
    var mid = [Float](repeating: 0, count: height * toWidth)
    var out = [Float](repeating: 0, count: channels * toHeight * toWidth)
    // The taps as raw buffers: the checked array reads cost more than the arithmetic.
    func raw<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
        let b = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, a.count))
        _ = b.initialize(from: a)
        return b
    }
    let (xStart, xCount, xOffset, xWeights) = (raw(tx.start), raw(tx.count), raw(tx.offset), raw(tx.weights))
    let (yStart, yCount, yOffset, yWeights) = (raw(ty.start), raw(ty.count), raw(ty.offset), raw(ty.weights))
    defer { [xStart, xCount, xOffset, yStart, yCount, yOffset].forEach { $0.deallocate() } }
    defer { [xWeights, yWeights].forEach { $0.deallocate() } }
    // `body(rows)` over `0..<rows` in up to `threads` bands of at least 16 rows.
    func bands(_ rows: Int, _ body: (Range<Int>) -> Void) {
        let n = max(1, min(threads, rows / 16))
        guard n > 1 else { return body(0..<rows) }
        DispatchQueue.concurrentPerform(iterations: n) { b in body((rows * b / n)..<(rows * (b + 1) / n)) }
    }
    planes.withUnsafeBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            mid.withUnsafeMutableBufferPointer { tmp in
                for c in 0..<channels {
                    let plane = c * width * height
                    bands(height) { rows in
                        for y in rows {
                            let row = plane + y * width
                            for x in 0..<toWidth {
                                let s = Int(xStart[x]), n = Int(xCount[x]), o = Int(xOffset[x])
                                var acc: Float = 0
                                for k in 0..<n { acc += xWeights[o + k] * src[row + s + k] }
                                tmp[y * toWidth + x] = acc
                            }
                        }
                    }
                    let target = c * toWidth * toHeight
                    bands(toHeight) { rows in
                        guard let d = dst.baseAddress, let t = tmp.baseAddress else { return }
                        for y in rows {
                            let s = Int(yStart[y]), n = Int(yCount[y]), o = Int(yOffset[y])
                            for k in 0..<n {
                                addScaled(
                                    yWeights[o + k], t + (s + k) * toWidth, to: d + target + y * toWidth, count: toWidth
                                )
                            }
                        }
                    }
                }
            }
        }
    }
    return out
}

extension Image {
    /// The image resampled to `width` x `height`.
    public func resized(width newWidth: Int, height newHeight: Int, method: ResizeMethod) -> Image {
        if newWidth == width && newHeight == height { return self }
        let out = resizePlanes(
            planes(), channels: channels, width: width, height: height,
            toWidth: newWidth, toHeight: newHeight, method: method)
        var pixels = [UInt8](repeating: 0, count: out.count)
        let hw = newWidth * newHeight
        for k in 0..<channels {
            for i in 0..<hw {
                pixels[i * channels + k] = UInt8(min(255, max(0, out[k * hw + i].rounded())))
            }
        }
        return Image(unchecked: newWidth, newHeight, channels, pixels)
    }

    /// The centred `width` x `height` crop (each no larger than the image).
    public func centerCropped(width cw: Int, height ch: Int) -> Image {
        let cw = min(cw, width), ch = min(ch, height)
        let left = (width - cw) / 2, top = (height - ch) / 2
        var pixels = [UInt8]()
        pixels.reserveCapacity(cw * ch * channels)
        for y in top..<(top + ch) {
            let start = (y * width + left) * channels
            pixels.append(contentsOf: self.pixels[start..<(start + cw * channels)])
        }
        return Image(unchecked: cw, ch, channels, pixels)
    }
}
