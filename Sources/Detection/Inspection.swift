import Imaging
import Metrics
import Models

/// What anomap concludes about one image.
///
/// The verdict and the picture follow one rule: an anomalous image outlines the pixels whose
/// map reaches the threshold and, when none does (the image score and the heatmap have their
/// own calibrations), its most anomalous region: the pixels around the map's peak that reach
/// half of it. A normal image outlines nothing.
public struct Inspection: Sendable {
    /// Raw image score (distance units).
    public var rawScore: Float
    /// Normalized image score (0 normal median, 1 peak of good images).
    public var score: Float
    /// Normalized map at the image's resolution, (height, width).
    public let map: [Float]
    /// Image width.
    public let width: Int
    /// Image height.
    public let height: Int
    /// Threshold used for the verdict and the mask.
    public let threshold: Float
    /// Predicted defect pixels, computed once: the area, the boxes and the mask image all read it.
    public let mask: [Bool]

    /// Assembles an inspection.
    public init(rawScore: Float, score: Float, map: [Float], width: Int, height: Int, threshold: Float) {
        precondition(map.count == width * height)
        (self.rawScore, self.score, self.map, self.width, self.height, self.threshold) = (
            rawScore, score, map, width, height, threshold
        )
        mask = Inspection.outline(
            map, width: width, height: height, threshold: threshold, anomalous: score >= threshold)
    }

    /// The predicted defect pixels of a map under the rule above.
    static func outline(_ map: [Float], width: Int, height: Int, threshold: Float, anomalous: Bool) -> [Bool] {
        guard anomalous else { return [Bool](repeating: false, count: map.count) }
        let above = map.map { $0 >= threshold }
        // The peak is looked for only when no pixel reaches the threshold (rare; one pass).
        guard !above.contains(true), var peak = map.indices.first else { return above }
        for i in map.indices where map[i] > map[peak] { peak = i }
        // Half the peak on the normalized scale (0 = the median normal pixel), the region
        // holding the peak only; a peak at or below normal outlines the peak pixel alone.
        let level = map[peak] > 0 ? map[peak] / 2 : map[peak]
        var mask = [Bool](repeating: false, count: map.count)
        let regions = connectedComponents(map.map { $0 >= level }, width: width, height: height)
        for i in regions.first(where: { $0.contains(peak) }) ?? [peak] { mask[i] = true }
        return mask
    }

    /// Whether the image is judged anomalous.
    public var isAnomalous: Bool { score >= threshold }
    /// Share of the image predicted defective.
    public var defectArea: Double { Double(mask.filter { $0 }.count) / Double(max(1, map.count)) }
    /// Bounding boxes of the connected predicted regions, largest first.
    public var regions: [BoundingBox] {
        connectedRegions(mask, width: width, height: height)
    }
}

extension Detector {
    /// Full inspection of one image: normalized map at the image's own size, verdict, regions.
    public func inspect(_ image: Image) -> Inspection {
        let raw = analyze(image)
        let resized = resizePlanes(
            raw.map, channels: 1, width: raw.width, height: raw.height,
            toWidth: image.width, toHeight: image.height, method: .bilinear)
        let map = resized.map { normalization.apply($0) }
        let score = (hasScoreMap ? scoreNormalization : normalization).apply(raw.score)
        return Inspection(
            rawScore: raw.score, score: score, map: map,
            width: image.width, height: image.height, threshold: threshold)
    }
}

/// Bounding boxes of 8-connected true regions of a mask, largest area first.
func connectedRegions(_ mask: [Bool], width: Int, height: Int) -> [BoundingBox] {
    connectedComponents(mask, width: width, height: height)
        .sorted { $0.count > $1.count }
        .map { members in
            var (x0, y0, x1, y1) = (width, height, -1, -1)
            for i in members {
                let y = i / width, x = i % width
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            }
            return BoundingBox(x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1)
        }
}
