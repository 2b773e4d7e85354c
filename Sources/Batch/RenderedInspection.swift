import Detection
import Foundation
import Imaging
import SafeFiles

/// The pictures drawn for one inspected image, all at the photo's resolution.
public struct RenderedInspection: Sendable {
    /// Colormapped normalized map.
    public var heatmap: Image
    /// Heatmap blended on the photo, predicted regions outlined in green.
    public var overlay: Image
    /// Predicted defect pixels, white on black (one channel).
    public var mask: Image

    /// Wraps images read back from disk (e.g. by `anomap merge`).
    public init(heatmap: Image, overlay: Image, mask: Image) {
        (self.heatmap, self.overlay, self.mask) = (heatmap, overlay, mask)
    }

    /// Draws the pictures of `inspection` over `photo`; `heatmapTop` is the normalized value
    /// drawn with the colormap's last colour.
    public init(_ inspection: Inspection, photo: Image, colormap: Colormap = .inferno, heatmapTop: Float = 2) throws {
        heatmap = try colormap.colorize(
            inspection.map, width: inspection.width, height: inspection.height,
            low: 0, high: heatmapTop)
        let weights = inspection.map.map { min(1, max(0, $0 / max(inspection.threshold, 1e-6))) }
        overlay = try photo.overlaid(with: heatmap, alpha: 0.6, weights: weights)
        let mask = inspection.mask
        Self.outline(mask, width: inspection.width, height: inspection.height, on: &overlay)
        self.mask = try Image(
            width: inspection.width, height: inspection.height, channels: 1,
            pixels: mask.map { $0 ? 255 : 0 })
    }

    /// Draws the boundary pixels of predicted regions in bright green.
    static func outline(_ mask: [Bool], width: Int, height: Int, on image: inout Image) {
        precondition(image.channels == 3 && image.width == width && image.height == height)
        mask.withUnsafeBufferPointer { m in
            image.pixels.withUnsafeMutableBufferPointer { p in
                for y in 0..<height {
                    for x in 0..<width where m[y * width + x] {
                        let i = y * width + x
                        let edge =
                            x == 0 || y == 0 || x == width - 1 || y == height - 1 || !m[i - 1] || !m[i + 1]
                            || !m[i - width] || !m[i + width]
                        if edge { (p[3 * i], p[3 * i + 1], p[3 * i + 2]) = (0, 255, 0) }
                    }
                }
            }
        }
    }
}
