import Imaging
import Metrics
import Models
import Tensors

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
    /// Whether the whole image looks unlike the training set (nil: the model has no shift detectors).
    public var shift: ShiftVerdict?

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
        // Filled from the peak, so only the region itself is visited; the marks are the mask.
        var mask = [Bool](repeating: false, count: map.count)
        _ = floodRegion(from: peak, width: width, height: height, visited: &mask) { map[$0] >= level }
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
    /// Full inspection of one image: normalized map at `size` (default: the image's own size;
    /// the full size of an image decoded smaller, see `read(contentsOf:)`), verdict, regions.
    public func inspect(_ image: Image, size: (width: Int, height: Int)? = nil) -> Inspection {
        let (raw, features) = examine(image)
        let (width, height) = size ?? (image.width, image.height)
        let resized = resizePlanes(
            raw.map, channels: 1, width: raw.width, height: raw.height,
            toWidth: width, toHeight: height, method: .bilinear, threads: computeThreads)
        // A loop over the buffer, which vectorizes: `resized.map` took 4 ms on a 2560x1024 map.
        let map = [Float](unsafeUninitializedCapacity: resized.count) { out, done in
            resized.withUnsafeBufferPointer { src in
                for i in src.indices { out[i] = normalization.apply(src[i]) }
            }
            done = resized.count
        }
        let score = (hasScoreMap ? scoreNormalization : normalization).apply(raw.score)
        var inspection = Inspection(
            rawScore: raw.score, score: score, map: map, width: width, height: height, threshold: threshold)
        if let shift, let features {
            inspection.shift = shift.verdict(features) {
                HeadOutput(
                    backbone: extractor.backbone, input: settings.input(for: image),
                    perturbing: shift.detectors[shift.primary].readsPerturbedHead
                        ? Lite0InputGradient(extractor.backbone) : nil)
            }
        }
        return inspection
    }

    /// Reads an image file as this detector's model sees it (`settings.decodeOptions`: a large
    /// JPEG may come out smaller), with its full size, which `inspect(_:size:)` maps take.
    public func read(contentsOf path: String) throws -> (image: Image, size: (width: Int, height: Int)) {
        let decoded = try ImageCodec.readReporting(contentsOf: path, options: settings.decodeOptions)
        return (decoded.image, (decoded.fullWidth, decoded.fullHeight))
    }

    /// `read(contentsOf:)`, and the photo at full size to draw on: the same image when the
    /// model's came out whole, else a second decode of the bytes read once.
    public func readWithPhoto(
        contentsOf path: String
    ) throws -> (
        image: Image, size: (width: Int, height: Int), photo: Image
    ) {
        try decodeWithPhoto(try ImageCodec.readBytes(contentsOf: path, options: settings.decodeOptions), name: path)
    }

    /// `readWithPhoto(contentsOf:)` on bytes already in memory (an upload); `name` names them
    /// in errors. `photo: false` skips the full-size picture when none will be drawn.
    public func decodeWithPhoto(
        _ bytes: [UInt8], name: String, photo: Bool = true
    ) throws -> (
        image: Image, size: (width: Int, height: Int), photo: Image
    ) {
        let options = settings.decodeOptions
        var fullOptions = options
        fullOptions.minimumSide = nil
        let decoded = try ImageCodec.decodeReporting(bytes, path: name, options: options)
        let size = (decoded.fullWidth, decoded.fullHeight), image = decoded.image
        let whole = (image.width, image.height) == size
        return (image, size, whole || !photo ? image : try ImageCodec.decode(bytes, path: name, options: fullOptions))
    }
}

/// Bounding boxes of 8-connected true regions of a mask, largest area first (ties in scan order).
func connectedRegions(_ mask: [Bool], width: Int, height: Int) -> [BoundingBox] {
    connectedRegionExtents(mask, width: width, height: height)
        .sorted { ($0.count, $1.first) > ($1.count, $0.first) }
        .map { BoundingBox(x: $0.minX, y: $0.minY, width: $0.maxX - $0.minX + 1, height: $0.maxY - $0.minY + 1) }
}
