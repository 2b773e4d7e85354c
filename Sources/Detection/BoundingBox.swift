import Imaging
import Metrics
import Models

/// A rectangle in image pixels.
public struct BoundingBox: Codable, Equatable, Sendable {
    /// Left column, top row, width and height.
    public var x: Int, y: Int, width: Int, height: Int

    /// Creates a box.
    public init(x: Int, y: Int, width: Int, height: Int) {
        (self.x, self.y, self.width, self.height) = (x, y, width, height)
    }
}
