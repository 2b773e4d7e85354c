import Imaging

/// The working resolution `train` picks from the training images' sizes when no option sets
/// it: square, modest images are squashed to 256x256 as always (measured best there, and
/// fastest); elongated or large ones keep their aspect and their native resolution up to a
/// pixel budget, cut into tiles of the backbone's preferred 256-pixel size.
public struct ResolutionChoice: Sendable, Equatable {
    /// Side of the square input, or with `keepsAspectRatio` the square root of the working area.
    public var inputSize: Int
    /// Whether images keep their aspect.
    public var keepsAspectRatio: Bool
    /// Tile side (0: untiled).
    public var tileSize: Int
    /// Median size of the images it was chosen from.
    public var medianWidth: Int, medianHeight: Int
    /// Images it was chosen from.
    public var sampled: Int

    /// Working pixels per image kept at most (about 16 tiles of 256x256).
    public static let pixelBudget = 1024 * 1024
    /// Tile side: the resolution the ImageNet backbone and the components work best at.
    public static let tile = 256
    /// Longer side over shorter side above which an image set counts as elongated.
    public static let elongation = 1.5

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
        let base = Self.tile
        if sizes.isEmpty || (ratio <= Self.elongation && area <= Double(4 * base * base)) {
            (inputSize, keepsAspectRatio, tileSize) = (base, false, 0)
        } else {
            let side = min(area, Double(Self.pixelBudget)).squareRoot()
            (inputSize, keepsAspectRatio, tileSize) = (min(1024, max(base, Int(side / 8) * 8)), true, base)
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
        let tiles = isTiled ? String(format: " in %d-pixel tiles overlapping %.0f%%", tileSize, tileOverlap * 100) : ""
        return keepsAspectRatio
            ? "aspect kept, about \(inputSize)x\(inputSize) pixels\(tiles)" : "\(inputSize)x\(inputSize)\(tiles)"
    }
}
