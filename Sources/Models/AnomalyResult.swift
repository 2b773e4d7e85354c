/// What a detector says about one image at model resolution.
public struct AnomalyResult: Sendable {
    /// Image-level score: the maximum of the map (raw units of the method).
    public var score: Float
    /// (height, width) anomaly map, row-major, raw units of the method.
    public var map: [Float]
    /// Map width.
    public var width: Int
    /// Map height.
    public var height: Int

    /// Creates a result; the score is the map's maximum.
    public init(map: [Float], width: Int, height: Int) {
        precondition(map.count == width * height)
        self.map = map
        self.width = width
        self.height = height
        score = map.max() ?? 0
    }
}
