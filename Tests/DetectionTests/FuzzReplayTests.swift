import Batch
import Detection
import Foundation
import Imaging
import Models
import NeuralNet
import SafeFiles
import XCTest

/// Replays the fuzzers' seed corpus and every input a fuzzer ever crashed on
/// (Fuzz/regressions/<target>/) through the same entry points, so a fixed crash stays fixed.
final class FuzzReplayTests: XCTestCase {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    func files(_ folder: String) -> [String] {
        let dir = root.appendingPathComponent(folder).path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { (dir as NSString).appendingPathComponent($0) }
    }

    func testImageSeedsDecodeAndRegressionsFailCleanly() throws {
        let options = DecodeOptions(maxPixels: 4_000_000)  // as the fuzz targets decode
        let seeds = files("Fuzz/corpus/FuzzPNG") + files("Fuzz/corpus/FuzzJPEG")
        XCTAssertGreaterThanOrEqual(seeds.count, 15)
        for path in seeds {
            let image = try ImageCodec.decode(try readFile(path), path: path, options: options)
            XCTAssertGreaterThan(image.width * image.height, 0, path)
        }
        for path in files("Fuzz/regressions/FuzzPNG") + files("Fuzz/regressions/FuzzJPEG") {
            do {
                _ = try ImageCodec.decode(try readFile(path), path: path, options: options)
            } catch {
                XCTAssertTrue(error is ImageError, "\(path): \(error)")
            }
        }
    }

    func testRecordSeedsParseAndRegressionsFailCleanly() throws {
        let seeds = files("Fuzz/corpus/FuzzRecords")
        XCTAssertEqual(try MarksFile.parse(try readFile(seeds.first { $0.hasSuffix("marks.csv") } ?? "")).count, 2)
        XCTAssertEqual(try MarksFile.parse(try readFile(seeds.first { $0.hasSuffix("marks.json") } ?? "")).count, 1)
        XCTAssertEqual(try InspectionWriter.readResults(seeds.first { $0.hasSuffix("results.json") } ?? "").count, 2)
        XCTAssertEqual(try ReportWriter.read(seeds.first { $0.hasSuffix("report.json") } ?? "").items.count, 1)
        for path in files("Fuzz/regressions/FuzzRecords") {
            let bytes = try readFile(path)
            _ = try? MarksFile.parse(bytes)
            _ = try? JSONDecoder().decode([InspectionRecord].self, from: Data(bytes))
            _ = try? JSONDecoder().decode(ReportData.self, from: Data(bytes))
        }
    }

    func testModelBundleSeedLoadsAndRegressionsFailCleanly() throws {
        let weights = root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
        guard FileManager.default.fileExists(atPath: weights) else {
            throw XCTSkip("weights missing: run `make setup`")
        }
        let bytes = try readFile(weights, maxBytes: 256 << 20)
        let extractor = PatchFeatureExtractor(
            backbone: try EfficientNetLite0(checkpoint: try SafeTensors.decode(bytes)))
        let sha = sha256Hex(bytes)
        let seeds = files("Fuzz/corpus/FuzzModelBundle")
        XCTAssertFalse(seeds.isEmpty)
        for path in seeds {
            let detector = try ModelBundle.decode(
                try readFile(path), path: path, extractor: extractor, backboneSHA256: sha)
            XCTAssertEqual(detector.settings.components, [.knn], path)
        }
        for path in files("Fuzz/regressions/FuzzModelBundle") {
            do {
                _ = try ModelBundle.decode(try readFile(path), path: path, extractor: extractor, backboneSHA256: sha)
            } catch {
                XCTAssertTrue(error is PipelineError, "\(path): \(error)")
            }
        }
    }
}
