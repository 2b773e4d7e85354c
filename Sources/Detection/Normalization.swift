/// Maps raw distances to a scale where 0 is the median normal pixel and 1 is the peak of
/// the held-out good images (their 99th-percentile image score).
public struct Normalization: Codable, Equatable, Sendable {
    /// Median raw pixel value over the calibration maps.
    public var normalLevel: Float
    /// 99th percentile of the calibration images' raw scores.
    public var peakLevel: Float

    /// Creates a normalization from its two levels.
    public init(normalLevel: Float, peakLevel: Float) {
        self.normalLevel = normalLevel
        self.peakLevel = peakLevel
    }

    /// The normalized value of a raw one.
    @inlinable
    public func apply(_ raw: Float) -> Float { (raw - normalLevel) / max(peakLevel - normalLevel, 1e-6) }
}
