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
    /// tiled, inspected at other sizes again: results everywhere, and the combinations that
    /// cannot work are refused with one line.
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
        for (keep, tile) in [(false, 0), (false, 64), (true, 64), (true, 0)] {
            var settings = smallSettings()
            settings.components = keep && tile == 0 ? [.knn] : all
            settings.keepsAspectRatio = keep
            settings.tileSize = tile
            settings.wideBlurSigma = 6
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
                    "keep \(keep) tile \(tile): \(w)x\(h)")
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
        XCTAssertFalse(square.keepsAspectRatio)
        let strip = ResolutionChoice(sizes: [(1024, 2560), (1024, 2560)])
        XCTAssertTrue(strip.keepsAspectRatio)
        XCTAssertEqual(strip.tileSize, 256)
        XCTAssertEqual(strip.inputSize, 1024)  // the pixel budget: about 1024^2 working pixels
        let elongated = ResolutionChoice(sizes: [(500, 1250), (500, 1260)])
        XCTAssertEqual(elongated.inputSize, Int((500.0 * 1255).squareRoot() / 8) * 8)  // native resolution
        var s = DetectorSettings()
        (s.inputSize, s.keepsAspectRatio, s.tileSize) = (
            elongated.inputSize, elongated.keepsAspectRatio, elongated.tileSize
        )
        let size = s.modelSize(width: 500, height: 1250)
        XCTAssertTrue(abs(size.width - 500) <= 8 && abs(size.height - 1250) <= 8, "\(size)")
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
