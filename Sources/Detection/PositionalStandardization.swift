/// Per-position statistics of a component's coarse map over held-out good images: a learned
/// component errs more at some positions of every normal image (image borders and corners,
/// where padding and cropping vary), and standardizing each position against its own normal
/// spread keeps those positions from dominating the image score.
public struct PositionalStandardization: Sendable, Equatable {
    /// (h * w) mean of the map at each position.
    public var mean: [Float]
    /// (h * w) spread at each position, floored at the median spread.
    public var scale: [Float]

    /// Wraps stored statistics.
    public init(mean: [Float], scale: [Float]) {
        precondition(mean.count == scale.count)
        self.mean = mean
        self.scale = scale
    }

    /// Statistics of equally sized maps (at least one).
    public init(of maps: [[Float]]) {
        let p = maps.first?.count ?? 0, n = Double(max(maps.count, 1))
        var mean = [Float](repeating: 0, count: p), spread = [Float](repeating: 0, count: p)
        for i in 0..<p {
            var s = 0.0, q = 0.0
            for m in maps { s += Double(m[i]); q += Double(m[i]) * Double(m[i]) }
            mean[i] = Float(s / n)
            spread[i] = Float(max(q / n - (s / n) * (s / n), 0).squareRoot())
        }
        let floor = max(spread.isEmpty ? 1e-6 : quantile(spread, 0.5), 1e-6)
        self.mean = mean
        scale = spread.map { max($0, floor) }
    }

    /// A map standardized position by position.
    public func apply(_ map: [Float]) -> [Float] {
        precondition(map.count == mean.count)
        return (0..<map.count).map { (map[$0] - mean[$0]) / scale[$0] }
    }
}
