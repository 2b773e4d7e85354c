import Batch
import Detection
import Foundation
import Imaging
import Models
import SyntheticData
import Tensors
import XCTest

/// Tiling: the layout covers the image on the stride-8 lattice, stitching blends overlaps
/// without seams, a defect on a tile border is found as one region, and every component
/// trains and inspects images of mixed sizes and aspects, tiled or not, without trapping.
final class TilingTests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    func testTileStartsCoverTheImageOnTheStride8Lattice() {
        for length in stride(from: 64, through: 1200, by: 8) {
            for tile in [64, 128, 256] where tile <= length {
                for overlap in [0, 0.25, 0.5, 0.75] {
                    let starts = TileLayout(width: length, height: tile, tile: tile, overlap: overlap).origins.map(\.x)
                    XCTAssertEqual(starts.first, 0)
                    XCTAssertEqual(starts.last, length - tile, "\(length) \(tile) \(overlap)")
                    XCTAssertTrue(starts.allSatisfy { $0 % 8 == 0 })
                    // Neighbours never further apart than a tile minus the overlap (rounded to the lattice).
                    let limit = max(8, Int(Double(tile) * (1 - overlap) / 8) * 8)
                    for (a, b) in zip(starts, starts.dropFirst()) {
                        XCTAssertTrue(b > a && b - a <= limit, "\(length) \(tile) \(overlap): \(starts)")
                    }
                }
            }
        }
        XCTAssertEqual(TileLayout(width: 256, height: 256, tile: 256, overlap: 0.25).count, 1)
    }

    func testCropMatchesNaiveIndexing() {
        let layout = TileLayout(width: 200, height: 136, tile: 64, overlap: 0.25)
        let image = Tensor(shape: [1, 3, 136, 200], storage: (0..<(3 * 136 * 200)).map { Float($0 % 9973) })
        for t in 0..<layout.count {
            let crop = layout.crop(image, tile: t), (x0, y0) = layout.origins[t]
            XCTAssertEqual(crop.shape, [1, 3, 64, 64])
            for c in 0..<3 {
                for y in [0, 17, 63] {
                    for x in [0, 31, 63] {
                        XCTAssertEqual(crop[0, c, y, x], image[0, c, y0 + y, x0 + x])
                    }
                }
            }
        }
    }

    /// Oracle: each tile samples one smooth function of the whole image's cell (so a correct
    /// stitch reproduces it exactly), and two different constants blend monotonically with
    /// small steps across an overlap.
    func testStitchingReproducesTheWholeMapAndBlendsWithoutSeams() {
        let layout = TileLayout(width: 328, height: 200, tile: 128, overlap: 0.25)
        let (gh, gw) = layout.grid, t = 16
        func f(_ x: Int, _ y: Int) -> Float { sinf(Float(x) * 0.3) + Float(y) * 0.1 }
        let maps = (0..<layout.count).map { i -> [Float] in
            let (cx, cy) = layout.cellOffset(i)
            return (0..<(t * t)).map { f(cx + $0 % t, cy + $0 / t) }
        }
        let stitched = layout.stitch(maps)
        XCTAssertEqual(stitched.count, gh * gw)
        for y in 0..<gh {
            for x in 0..<gw { XCTAssertEqual(stitched[y * gw + x], f(x, y), accuracy: 1e-5) }
        }
        // The left tile says 0, the right one 1: the stitched rows rise from 0 to 1 without a jump.
        let two = TileLayout(width: 224, height: 128, tile: 128, overlap: 0.25)
        XCTAssertEqual(two.count, 2)
        let blended = two.stitch([[Float](repeating: 0, count: t * t), [Float](repeating: 1, count: t * t)])
        let row = Array(blended[0..<two.grid.width])
        XCTAssertEqual(row.first, 0)
        XCTAssertEqual(row.last, 1)
        for (a, b) in zip(row, row.dropFirst()) { XCTAssertTrue(b >= a && b - a <= 0.26, "\(row)") }
    }

    func smallSettings() -> DetectorSettings {
        var s = DetectorSettings()
        s.inputSize = 128
        s.bankSize = 300
        s.maxCandidates = 4000
        s.calibrationShare = 0.25
        s.scoreComponents = []
        s.learning.studentWidth = 16
        s.learning.studentEpochs = 2
        s.learning.autoencoderEpochs = 2
        s.learning.memorySize = 8
        s.learning.latentChannels = 8
        s.learning.batchSize = 4
        s.learning.positionalNormalization = true
        return s
    }

    func testADefectOnATileBorderIsFoundAsOneRegion() throws {
        let (extractor, sha) = try requireBackbone()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tile-border-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 5)
        var paths = [String]()
        for i in 0..<12 {
            let path = dir + "/\(i).png"
            try ImageCodec.writePNG(try SyntheticParts.good(size: 192, generator: &g), to: path)
            paths.append(path)
        }
        var settings = smallSettings()
        settings.components = [.knn]
        settings.inputSize = 192
        settings.tileSize = 96
        settings.tileOverlap = 0.25
        let (detector, _) = try Trainer.train(
            paths: paths, extractor: extractor, backboneSHA256: sha, settings: settings)
        let layout = TileLayout(width: 192, height: 192, settings: settings)
        XCTAssertEqual(layout.count, 9)
        // A dark spot centred on the second column of tiles' left border.
        var image = try SyntheticParts.good(size: 192, generator: &g)
        let cx = layout.origins[1].x, cy = 100, r = 9
        for y in (cy - r)...(cy + r) {
            for x in (cx - r)...(cx + r) where (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r {
                image.pixels[y * 192 + x] = 20
            }
        }
        let inspection = detector.inspect(image)
        XCTAssertTrue(inspection.isAnomalous, "score \(inspection.score)")
        let regions = inspection.regions
        XCTAssertEqual(regions.count, 1, "\(regions)")
        if let box = regions.first {
            XCTAssertTrue(box.x <= cx - r / 2 && box.x + box.width >= cx + r / 2, "\(box) vs spot at \(cx), \(cy)")
            XCTAssertTrue(box.y <= cy && box.y + box.height >= cy, "\(box)")
        }
    }

    /// Every component, folders of mixed sizes and aspects, untiled / tiled / aspect kept and
    /// tiled / aspect kept at a common size (with the stride-4 features too), inspected at
    /// other sizes again: results everywhere, and the combinations that cannot work are
    /// refused with one line.
    func testEveryComponentTrainsAndInspectsMixedSizesWithAndWithoutTiles() throws {
        let (extractor, sha) = try requireBackbone()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tile-mixed-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var g = SeededGenerator(seed: 8)
        let paths = try writeGoodParts(
            [(96, 240), (120, 200), (80, 260), (100, 220), (160, 150), (90, 250), (110, 230), (96, 96)], to: dir,
            generator: &g)
        let all: [Component] = [.gaussian, .knn, .st, .variance, .ae]
        for (keep, tile, common) in [
            (false, 0, false), (false, 64, false), (true, 64, false), (true, 0, false), (true, 0, true),
        ] {
            var settings = smallSettings()
            settings.components = keep && tile == 0 && !common ? [.knn] : all
            settings.keepsAspectRatio = keep
            settings.tileSize = tile
            settings.wideBlurSigma = 6
            if common {
                // The median of the folder above (100 x 230) at about 128^2 pixels: 96 x 192.
                (settings.commonWidth, settings.commonHeight) = settings.commonSize(medianWidth: 100, medianHeight: 230)
                XCTAssertEqual([settings.commonWidth, settings.commonHeight], [96, 192])
                settings.includesStride4 = true
                settings.gaussianChannels = settings.featureDimension
            }
            let (detector, report) = try Trainer.train(
                paths: paths, extractor: extractor, backboneSHA256: sha, settings: settings)
            XCTAssertTrue(report.failures.isEmpty, "\(report.failures)")
            let path = dir + "/model.safetensors"
            try ModelBundle.write(detector, to: path)
            let loaded = try ModelBundle.read(path, extractor: extractor, backboneSHA256: sha)
            XCTAssertEqual(loaded.settings, settings)
            for (w, h) in [(96, 240), (300, 70), (64, 64), (250, 250)] {
                let image = try SyntheticParts.good(size: 160, generator: &g).resized(
                    width: w, height: h, method: .bilinear)
                let inspection = loaded.inspect(image)
                XCTAssertEqual(inspection.map.count, w * h)
                XCTAssertTrue(
                    inspection.map.allSatisfy(\.isFinite) && inspection.score.isFinite,
                    "keep \(keep) tile \(tile) common \(common): \(w)x\(h)")
            }
            if common {
                // A bundle whose common size was tampered with (or a typo's) is refused with one
                // line before anything that large is allocated.
                var tampered = settings
                tampered.commonWidth = 1 << 20
                let bad = Detector(
                    extractor: extractor, components: detector.components,
                    componentNormalizations: detector.componentNormalizations, settings: tampered,
                    normalization: detector.normalization, threshold: detector.threshold, backboneSHA256: sha)
                try ModelBundle.write(bad, to: path)
                XCTAssertThrowsError(try ModelBundle.read(path, extractor: extractor, backboneSHA256: sha)) {
                    XCTAssertTrue("\($0)".contains("common size"), "\($0)")
                }
            }
        }
        var refused = smallSettings()
        refused.tileSize = 48
        XCTAssertThrowsError(
            try Trainer.train(paths: paths, extractor: extractor, backboneSHA256: sha, settings: refused)
        ) {
            XCTAssertTrue("\($0)".contains("multiple of 32"), "\($0)")
        }
        refused.tileSize = 1 << 20  // a bundle's or a typo's: refused before any allocation
        XCTAssertThrowsError(
            try Trainer.train(paths: paths, extractor: extractor, backboneSHA256: sha, settings: refused))
        refused.tileSize = 256
        XCTAssertThrowsError(
            try Trainer.train(paths: paths, extractor: extractor, backboneSHA256: sha, settings: refused)
        ) {
            XCTAssertTrue("\($0)".contains("larger than"), "\($0)")
        }
    }

    func testResolutionChoiceKeepsSquareImagesAndTilesElongatedOnes() {
        let square = ResolutionChoice(sizes: [(300, 330), (280, 300), (320, 310)])
        XCTAssertEqual([square.inputSize, square.tileSize], [256, 0])
        XCTAssertFalse(square.keepsAspectRatio || square.includesStride4)
        // Elongated parts of one aspect: one common size at the common pixel budget, untiled.
        let strip = ResolutionChoice(sizes: [(1024, 2560), (1024, 2560), (1000, 2600)])
        XCTAssertTrue(strip.keepsAspectRatio && strip.includesStride4)
        XCTAssertEqual([strip.tileSize, strip.inputSize, strip.medianWidth, strip.medianHeight], [0, 640, 1024, 2560])
        var s = DetectorSettings()
        (s.inputSize, s.keepsAspectRatio, s.tileSize) = (strip.inputSize, true, 0)
        let common = s.commonSize(medianWidth: strip.medianWidth, medianHeight: strip.medianHeight)
        XCTAssertEqual([common.width, common.height], [416, 1024])  // 640^2 pixels at 1:2.5, sides of 32
        (s.commonWidth, s.commonHeight) = common
        XCTAssertTrue(s.hasCommonSize)
        XCTAssertEqual(
            [s.modelSize(width: 300, height: 90).width, s.modelSize(width: 300, height: 90).height], [416, 1024])
        XCTAssertEqual([s.featureGrid.height, s.featureGrid.width], [128, 52])
        // A small elongated set keeps its native resolution.
        let small = ResolutionChoice(sizes: [(200, 500), (200, 500)])
        XCTAssertEqual([small.inputSize, small.tileSize], [312, 0])
        // Elongated images of several aspects: each keeps its own, in tiles, at native
        // resolution up to the larger budget.
        let mixed = ResolutionChoice(sizes: [(500, 1250), (1260, 500), (520, 1300)])
        XCTAssertTrue(mixed.keepsAspectRatio)
        XCTAssertEqual(mixed.tileSize, 256)
        XCTAssertEqual(mixed.inputSize, Int((1260.0 * 500).squareRoot() / 8) * 8)  // the median area's side
        var t = DetectorSettings()
        (t.inputSize, t.keepsAspectRatio, t.tileSize) = (mixed.inputSize, mixed.keepsAspectRatio, mixed.tileSize)
        let size = t.modelSize(width: 500, height: 1250)
        XCTAssertTrue(abs(Double(size.width) / Double(size.height) - 0.4) < 0.02, "\(size)")
        // Large square images stay in tiles.
        let large = ResolutionChoice(sizes: [(2000, 2000), (2000, 2000)])
        XCTAssertEqual([large.inputSize, large.tileSize], [1024, 256])
    }
}

/// Good synthetic parts resized to each of `sizes` (width, height), written as PNGs into `dir`.
func writeGoodParts(_ sizes: [(Int, Int)], to dir: String, generator g: inout SeededGenerator) throws -> [String] {
    try sizes.enumerated().map { i, size in
        let part = try SyntheticParts.good(size: 160, generator: &g).resized(
            width: size.0, height: size.1, method: .bilinear)
        let path = dir + "/\(i).png"
        try ImageCodec.writePNG(part, to: path)
        return path
    }
}
