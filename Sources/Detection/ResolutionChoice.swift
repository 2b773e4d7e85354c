import Imaging

/// The working resolution `train` picks from the training images' sizes when no option sets
/// it: square, modest images are squashed to 256x256 as always (measured best there, and
/// fastest); elongated images of one aspect keep it at one common size of up to a pixel
/// budget, untiled, with the teacher's stride-4 features; other large or elongated sets keep
/// each image's aspect at native resolution up to a larger budget, cut into tiles of the
/// backbone's preferred 256-pixel size.
///
/// Measured on the small-defect benchmark (1024x2560 parts, fast preset, `make bench`; README,
/// "Measured accuracy and speed"): one common size at about 640^2 pixels beats 256-pixel tiles
/// at 1024^2 on every metric (image AUROC 0.986 against 0.881, pixel AUROC 0.976 against 0.961,
/// AUPRO 0.991 against 0.990) at a fifth of the time: a per-position model of a part that is
/// always photographed the same way knows more than a model shared by every tile. On large
/// square images (2048x2048) tiles keep the hairline cracks a common 640x640 loses.
public struct ResolutionChoice: Sendable, Equatable {
    /// Side of the square input, or with `keepsAspectRatio` the square root of the working area.
    public var inputSize: Int
    /// Whether images keep their aspect.
    public var keepsAspectRatio: Bool
    /// Tile side (0: untiled; with `keepsAspectRatio`, every image at the set's common size).
    public var tileSize: Int
    /// Whether the embedding adds the teacher's stride-4 stage.
    public var includesStride4: Bool
    /// Median size of the images it was chosen from.
    public var medianWidth: Int, medianHeight: Int
    /// Images it was chosen from.
    public var sampled: Int

    /// Working pixels per image kept at most when tiled (about 16 tiles of 256x256).
    public static let pixelBudget = 1024 * 1024
    /// Working pixels kept at most at a common size: the per-position Gaussian's statistics
    /// grow with the grid (at 640^2 pixels, about 6,600 cells of 100-channel precision matrices,
    /// about 135 MB; `train` models 100 channels at a common size).
    public static let commonPixelBudget = 640 * 640
    /// Tile side: the resolution the ImageNet backbone and the components work best at.
    public static let tile = 256
    /// Longer side over shorter side above which an image set counts as elongated.
    public static let elongation = 1.5
    /// How far (as a ratio) an image's aspect may be from the median for a set of one aspect.
    public static let aspectTolerance = 1.1

    /// The choice for images of the given sizes (width, height); the defaults when empty.
    public init(sizes: [(width: Int, height: Int)]) {
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.isEmpty ? 0 : s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        sampled = sizes.count
        medianWidth = Int(median(sizes.map { Double($0.width) }))
        medianHeight = Int(median(sizes.map { Double($0.height) }))
        let area = median(sizes.map { Double($0.width * $0.height) })
        let ratio = median(sizes.map { Double(max($0.width, $0.height)) / Double(max(1, min($0.width, $0.height))) })
        let aspects = sizes.map { Double($0.width) / Double(max(1, $0.height)) }
        let aspect = median(aspects)
        let oneAspect = aspects.allSatisfy { max($0 / aspect, aspect / $0) <= Self.aspectTolerance }
        let base = Self.tile
        includesStride4 = false
        if sizes.isEmpty || (ratio <= Self.elongation && area <= Double(4 * base * base)) {
            (inputSize, keepsAspectRatio, tileSize) = (base, false, 0)
        } else if ratio > Self.elongation && oneAspect {
            let side = min(area, Double(Self.commonPixelBudget)).squareRoot()
            (inputSize, keepsAspectRatio, tileSize, includesStride4) = (max(base, Int(side / 8) * 8), true, 0, true)
        } else {
            let side = min(area, Double(Self.pixelBudget)).squareRoot()
            (inputSize, keepsAspectRatio, tileSize, includesStride4) = (
                min(1024, max(base, Int(side / 8) * 8)), true, base, true
            )
        }
    }

    /// Why, in words: the sample it was chosen from.
    public var basis: String {
        "chosen from \(sampled) training images of median size \(medianWidth)x\(medianHeight)"
    }
}

extension DetectorSettings {
    /// The working resolution in words ("256x256", "aspect kept, ... in 256-pixel tiles").
    public var resolutionDescription: String {
        let fine = includesStride4 ? ", stride-4 features added" : ""
        if hasCommonSize {
            return
                "aspect kept, every image resized to the training images' common size \(commonWidth)x\(commonHeight)\(fine)"
        }
        let tiles = isTiled ? String(format: " in %d-pixel tiles overlapping %.0f%%", tileSize, tileOverlap * 100) : ""
        return keepsAspectRatio
            ? "aspect kept, about \(inputSize)x\(inputSize) pixels\(tiles)\(fine)"
            : "\(inputSize)x\(inputSize)\(tiles)\(fine)"
    }
}
