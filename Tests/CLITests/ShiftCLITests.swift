import Foundation
import Imaging
import XCTest

/// Whole-image shift detection as a user meets it: `train` fits the detectors, `inspect`
/// reports them per image and can fail on them, `eval-shift` measures them.
final class ShiftCLITests: XCTestCase {
    func testInspectReportsShiftAndEvalShiftMeasuresIt() throws {
        let cli = CLIRunner()
        let (dir, data) = try cli.syntheticWorkspace("cli-shift", train: 24, testGood: 8, testPerDefect: 2, seed: 9)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--preset", "fast", "--input-size", "96", "--quiet",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        // Another product: the sample photographs, cut to the parts' size.
        let other = dir.appendingPathComponent("other").path
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("models/samples")
        var k = 0
        for name in ["china.jpg", "flower.jpg"] {
            let photo = try ImageCodec.read(contentsOf: samples.appendingPathComponent(name).path)
            for (x, y) in [(0, 0), (200, 100), (400, 200), (100, 300)] {
                let crop = try Image(
                    width: 96, height: 96, channels: 3,
                    pixels: (0..<(96 * 96 * 3)).map { i in
                        photo.pixels[((y + i / 288) * photo.width + x + i % 288 / 3) * 3 + i % 3]
                    })
                try ImageCodec.writePNG(crop, to: other + "/\(k).png")
                k += 1
            }
        }
        let inspect = try cli.run([
            "inspect", data + "/test/good", other, "--model", model, "--out", dir.path + "/out", "--no-images",
            "--json",
            "--fail-on-shift",
        ])
        XCTAssertEqual(inspect.status, 1, "the photographs are shifted: --fail-on-shift exits 1\n\(inspect.stderr)")
        let results = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/out/results.json")))
                as? [[String: Any]])
        let shifted = results.filter { ($0["path"] as? String)?.contains("/other/") == true }.map {
            $0["shifted"] as? Bool
        }
        let good = results.filter { ($0["path"] as? String)?.contains("/good/") == true }.map { $0["shifted"] as? Bool }
        XCTAssertEqual(shifted, [Bool?](repeating: true, count: 8))
        XCTAssertLessThanOrEqual(good.filter { $0 == true }.count, 1, "\(good)")
        XCTAssertTrue(inspect.stderr.contains("no longer look like the training set"), inspect.stderr)
        let csv = try String(contentsOfFile: dir.path + "/out/results.csv", encoding: .utf8)
        XCTAssertTrue(
            csv.hasPrefix("path,score,normalized_score,verdict,defect_area,boxes,error,shift_score,shifted\n"))

        let eval = try cli.run([
            "eval-shift", "--model", model, "--inliers", data + "/test/good", "--outliers", other, "--defects",
            data + "/test/scratch", "--synthetic", "--out", dir.path + "/shift", "--quiet",
        ])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/shift/shift.json")))
                as? [String: Any])
        let detectors = try XCTUnwrap(report["detectors"] as? [String: [String: [String: Any]]])
        XCTAssertEqual(Set(detectors.keys), ["gmm", "iforest", "ocsvm", "msp", "odin", "gradnorm", "gradnorm-block"])
        XCTAssertEqual(detectors["gmm"]?["other"]?["roc_auc"] as? Double, 1)
        XCTAssertEqual(
            Set(detectors["gmm"]?.keys ?? [:].keys).count, 1 + 9, "the photographs and nine synthetic shifts")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.path + "/shift/shift.svg"))
        XCTAssertTrue(eval.stdout.contains("ROC-AUC"), eval.stdout)
        let none = try cli.run([
            "eval-shift", "--model", model, "--inliers", data + "/test/good", "--out", dir.path + "/x",
        ])
        XCTAssertEqual(none.status, 2, "no outliers and no --synthetic")
    }

    func testODINPerturbationIsFittedWhenAskedAndMeasured() throws {
        let cli = CLIRunner()
        let (dir, data) = try cli.syntheticWorkspace("cli-odin", train: 24, testGood: 6, testPerDefect: 1, seed: 4)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--preset", "fast", "--input-size", "64", "--quiet",
            "--odin-perturbation",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        let bundle = try Data(contentsOf: URL(fileURLWithPath: model))
        XCTAssertNotNil(
            bundle.range(of: Data("fitsODINPerturbation".utf8)), "the settings record the choice (only when on)")
        let eval = try cli.run([
            "eval-shift", "--model", model, "--inliers", data + "/test/good", "--synthetic", "--out",
            dir.path + "/shift", "--quiet",
        ])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let report = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir.path + "/shift/shift.json")))
                as? [String: Any])
        let detectors = try XCTUnwrap(report["detectors"] as? [String: [String: [String: Any]]])
        XCTAssertEqual(detectors["odin"]?.count, 9, "odin measured on the nine synthetic shifts")
        XCTAssertNotNil(detectors["odin"]?["gaussian-noise"]?["roc_auc"] as? Double)
        // Two images side by side (the default on two threads) score as one after the other.
        let serial = try cli.run([
            "eval-shift", "--model", model, "--inliers", data + "/test/good", "--synthetic", "--out",
            dir.path + "/serial", "--quiet", "--threads", "1",
        ])
        XCTAssertEqual(serial.status, 0, serial.stderr)
        XCTAssertEqual(
            try String(contentsOfFile: dir.path + "/serial/scores.csv", encoding: .utf8),
            try String(contentsOfFile: dir.path + "/shift/scores.csv", encoding: .utf8))
    }
}
