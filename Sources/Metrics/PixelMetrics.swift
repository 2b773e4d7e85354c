/// Streaming pixel-level metrics over many anomaly maps without keeping the pixels.
///
/// Scores are binned into `binCount` equal bins over `range` (values outside are clamped
/// into the first/last bin). Pixel AUROC from binned counts is exact except for pairs that
/// share a bin, which count one half; `pixelAUROCErrorBound` states that error exactly.
/// AUPRO follows Bergmann et al. (MVTec AD, IJCV 2021): the per-region overlap, averaged
/// over connected ground-truth regions (8-connectivity), integrated over the false positive
/// rate of defect-free pixels up to `maxFPR` and divided by `maxFPR`.
public struct PixelMetricAccumulator: Sendable {
    /// Score range covered by the bins.
    public let range: ClosedRange<Double>
    /// Number of bins.
    public let binCount: Int
    var positives: [Int]
    var negatives: [Int]
    /// Per connected defect region: histogram of its pixels' scores.
    var regions: [[Int32]] = []

    /// Creates an empty accumulator.
    public init(range: ClosedRange<Double>, binCount: Int = 4096) {
        precondition(range.upperBound > range.lowerBound && binCount > 1)
        self.range = range
        self.binCount = binCount
        positives = [Int](repeating: 0, count: binCount)
        negatives = [Int](repeating: 0, count: binCount)
    }

    @inline(__always)
    func bin(_ score: Double) -> Int {
        guard score.isFinite else { return score > 0 ? binCount - 1 : 0 }
        let t = (score - range.lowerBound) / (range.upperBound - range.lowerBound)
        return min(binCount - 1, max(0, Int(t * Double(binCount))))
    }

    /// Adds one image: its anomaly map and its ground-truth mask, both (H, W) row-major.
    public mutating func add(map: [Float], mask: [Bool], width: Int, height: Int) {
        precondition(map.count == width * height && mask.count == map.count, "map and mask sizes differ")
        for i in 0..<map.count {
            let b = bin(Double(map[i]))
            if mask[i] { positives[b] += 1 } else { negatives[b] += 1 }
        }
        for component in connectedComponents(mask, width: width, height: height) {
            var histogram = [Int32](repeating: 0, count: binCount)
            for i in component { histogram[bin(Double(map[i]))] += 1 }
            regions.append(histogram)
        }
    }

    /// Adds everything another accumulator with the same bins has seen.
    public mutating func merge(_ other: PixelMetricAccumulator) {
        precondition(other.range == range && other.binCount == binCount, "merging accumulators with different bins")
        for b in 0..<binCount {
            positives[b] += other.positives[b]
            negatives[b] += other.negatives[b]
        }
        regions += other.regions
    }

    /// Pixel AUROC (nil without positive or negative pixels).
    public var pixelAUROC: Double? {
        let p = positives.reduce(0, +), n = negatives.reduce(0, +)
        guard p > 0, n > 0 else { return nil }
        var below = 0.0, auc = 0.0
        for b in 0..<binCount {
            auc += Double(positives[b]) * (below + 0.5 * Double(negatives[b]))
            below += Double(negatives[b])
        }
        return auc / (Double(p) * Double(n))
    }

    /// Largest possible difference between `pixelAUROC` and the exact value: half the share
    /// of positive-negative pairs that fall in one bin.
    public var pixelAUROCErrorBound: Double {
        let p = Double(positives.reduce(0, +)), n = Double(negatives.reduce(0, +))
        guard p > 0, n > 0 else { return 0 }
        return 0.5 * zip(positives, negatives).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / (p * n)
    }

    /// Normalized area under the PRO curve up to `maxFPR` (nil without regions or negatives).
    public func aupro(maxFPR: Double = 0.3) -> Double? {
        let n = Double(negatives.reduce(0, +))
        guard !regions.isEmpty, n > 0 else { return nil }
        // Sweep thresholds from the top bin down: at threshold = lower edge of bin b, pixels in
        // bins >= b are predicted anomalous.
        var curve: [(fpr: Double, pro: Double)] = [(0, 0)]
        var falsePositives = 0.0
        var covered = [Double](repeating: 0, count: regions.count)
        let sizes = regions.map { Double($0.reduce(0) { $0 + Int($1) }) }
        for b in stride(from: binCount - 1, through: 0, by: -1) {
            falsePositives += Double(negatives[b])
            var pro = 0.0
            for r in regions.indices {
                covered[r] += Double(regions[r][b])
                pro += covered[r] / sizes[r]
            }
            curve.append((falsePositives / n, pro / Double(regions.count)))
        }
        // Trapezoids up to maxFPR, interpolating the last segment.
        var area = 0.0
        for k in 1..<curve.count {
            let (x0, y0) = curve[k - 1], (x1, y1) = curve[k]
            if x0 >= maxFPR { break }
            if x1 <= maxFPR {
                area += (x1 - x0) * (y0 + y1) / 2
            } else {
                let y = y0 + (y1 - y0) * (maxFPR - x0) / (x1 - x0)
                area += (maxFPR - x0) * (y0 + y) / 2
                break
            }
        }
        return area / maxFPR
    }
}

/// Connected components of the true pixels of a (H, W) mask, 8-connectivity; each
/// component as a list of flat indices.
public func connectedComponents(_ mask: [Bool], width: Int, height: Int) -> [[Int]] {
    var label = [Int32](repeating: 0, count: mask.count)
    var components = [[Int]]()
    var stack = [Int]()
    for start in 0..<mask.count where mask[start] && label[start] == 0 {
        let id = Int32(components.count + 1)
        var members = [Int]()
        label[start] = id
        stack.append(start)
        while let i = stack.popLast() {
            members.append(i)
            let y = i / width, x = i % width
            for dy in -1...1 {
                for dx in -1...1 where dx != 0 || dy != 0 {
                    let ny = y + dy, nx = x + dx
                    guard ny >= 0, ny < height, nx >= 0, nx < width else { continue }
                    let j = ny * width + nx
                    if mask[j] && label[j] == 0 {
                        label[j] = id
                        stack.append(j)
                    }
                }
            }
        }
        components.append(members)
    }
    return components
}
