import Foundation
import Imaging
import SyntheticData
import Tensors
import XCTest

/// train / inspect / eval as a user runs them, on a small synthetic dataset.
final class DetectorCLITests: XCTestCase {
    func testFastPresetTrainsTheMemoryBankWithTheWideMapAndOptionsOverrideIt() throws {
        let cli = CLIRunner()
        let (dir, data) = try cli.syntheticWorkspace("cli-preset", train: 12, testGood: 4, testPerDefect: 2, seed: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("fast.safetensors").path
        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--preset", "fast", "--input-size", "96", "--json", "--quiet",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(summary["components"] as? [String], ["gaussian", "knn"])
        // The bundle's settings: the preset's bank size, score components and wide map.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
        let headerLength = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(
            JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        let metadata = try XCTUnwrap(header["__metadata__"] as? [String: String])
        let settings = try XCTUnwrap(
            JSONSerialization.jsonObject(with: Data((metadata["settings"] ?? "").utf8)) as? [String: Any])
        XCTAssertEqual(settings["bankSize"] as? Int, 1024)
        XCTAssertEqual(settings["wideBlurSigma"] as? Double, 24)
        XCTAssertEqual(settings["scoreComponents"] as? [String], ["gaussian"])
        let eval = try cli.run([
            "eval", data, "--model", model, "--out", dir.appendingPathComponent("eval").path, "--quiet",
        ])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        // Explicit options win over the preset.
        let plain = dir.appendingPathComponent("plain.safetensors").path
        let override = try cli.run([
            "train", data + "/train/good", "-o", plain, "--preset", "fast", "--components", "gaussian",
            "--wide-blur-sigma", "0", "--input-size", "96", "--json", "--quiet",
        ])
        XCTAssertEqual(override.status, 0, override.stderr)
        let overridden = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(override.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(overridden["components"] as? [String], ["gaussian"])
        let unknown = try cli.run(["train", data + "/train/good", "-o", plain, "--preset", "quick"])
        XCTAssertEqual(unknown.status, 2, unknown.stderr)
        XCTAssertTrue(unknown.stderr.contains("preset"), unknown.stderr)
    }

    func testTrainChoosesTilesForElongatedImagesSaysSoAndRefusesImpossibleSizes() throws {
        let cli = CLIRunner()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-tiles-\(getpid())")
        try FileManager.default.createDirectory(
            at: dir.appendingPathComponent("good"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var g = SeededGenerator(seed: 4)
        for i in 0..<8 {
            let part = try SyntheticParts.good(size: 160, generator: &g).resized(
                width: 100, height: 300, method: .bilinear)
            try ImageCodec.writePNG(part, to: dir.appendingPathComponent("good/\(i).png").path)
        }
        let model = dir.appendingPathComponent("m.safetensors").path
        let train = try cli.run(["train", dir.path + "/good", "-o", model, "--preset", "fast", "--json"])
        XCTAssertEqual(train.status, 0, train.stderr)
        // Elongated parts of one aspect: one common size (100 x 300 at about 256^2 pixels, sides
        // multiples of 32) and the stride-4 features.
        XCTAssertTrue(train.stderr.contains("resolution: aspect kept"), train.stderr)
        XCTAssertTrue(train.stderr.contains("common size 160x448, stride-4 features added"), train.stderr)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(train.stdout.utf8)) as? [String: Any])
        XCTAssertTrue((summary["resolution"] as? String)?.contains("common size") ?? false, train.stdout)
        let inspect = try cli.run([
            "inspect", dir.path + "/good/0.png", "--model", model, "--out", dir.path + "/out", "--quiet",
        ])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        // Tiles when asked for; a common size without the stride-4 features when asked for.
        let tiled = try cli.run(["train", dir.path + "/good", "-o", model, "--preset", "fast", "--tile", "256"])
        XCTAssertEqual(tiled.status, 0, tiled.stderr)
        XCTAssertTrue(tiled.stderr.contains("256-pixel tiles"), tiled.stderr)
        let common = try cli.run([
            "train", dir.path + "/good", "-o", model, "--preset", "fast", "--keep-aspect", "--tile", "0",
            "--input-size", "256", "--no-fine-features",
        ])
        XCTAssertEqual(common.status, 0, common.stderr)
        XCTAssertTrue(common.stderr.contains("common size 160x448 ("), common.stderr)
        let wide = try SyntheticParts.good(size: 160, generator: &g).resized(width: 300, height: 90, method: .bilinear)
        try ImageCodec.writePNG(wide, to: dir.appendingPathComponent("wide.png").path)
        let inspectCommon = try cli.run([
            "inspect", dir.path + "/wide.png", "--model", model, "--out", dir.path + "/out-common", "--quiet",
        ])
        XCTAssertEqual(inspectCommon.status, 0, inspectCommon.stderr)
        // Options override the choice; impossible combinations are one line before any work.
        for (arguments, expected) in [
            (["--tile", "48"], "multiple of 32"),
            (["--no-keep-aspect", "--input-size", "128", "--tile", "256"], "larger than"),
            (["--tile", "128", "--tile-overlap", "0.9"], "--tile-overlap"),
        ] {
            let refused = try cli.run(["train", dir.path + "/good", "-o", model, "--quiet"] + arguments)
            XCTAssertEqual(refused.status, 2, "\(arguments): \(refused.stderr)")
            XCTAssertTrue(refused.stderr.contains(expected), "\(arguments): \(refused.stderr)")
        }
    }

    func testTrainInspectEvalWithACorruptFileInTheFolder() throws {
        let cli = CLIRunner()
        let (dir, data) = try cli.syntheticWorkspace("cli-detector", train: 12, testGood: 4, testPerDefect: 2, seed: 11)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("model.safetensors").path

        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--input-size", "128", "--bank-size", "200",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: model))
        XCTAssertTrue(train.stderr.contains("trained on"), train.stderr)

        // A truncated JPEG, a fake PNG and a text file among the test images.
        let test = data + "/test"
        let good = try Data(contentsOf: URL(fileURLWithPath: test + "/good/000.png"))
        try good.prefix(good.count / 3).write(to: URL(fileURLWithPath: test + "/good/broken.png"))
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: test + "/good/fake.jpg"))
        try Data("notes".utf8).write(to: URL(fileURLWithPath: test + "/README.txt"))
        let out = dir.appendingPathComponent("out").path
        let inspect = try cli.run(["inspect", test, "--model", model, "--out", out])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stderr.contains("broken.png: corrupt image"), inspect.stderr)
        XCTAssertTrue(inspect.stderr.contains("fake.jpg: not a PNG or JPEG image"), inspect.stderr)
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8)
        XCTAssertEqual(csv.split(separator: "\n").count, 1 + 10 + 2, csv)  // header, 10 images, 2 errors
        XCTAssertFalse(csv.contains("README"))
        for stem in ["test/good/000", "test/crack/000", "test/spot/001"] {
            for kind in ["heatmap", "overlay", "mask"] {
                XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/\(stem)_\(kind).png"), "\(stem)_\(kind)")
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: "\(out)/test/good/broken_heatmap.png"))
        // Two inputs with the same folder name do not overwrite each other.
        let twice = try cli.run([
            "inspect", test + "/crack", test + "/../test/crack", "--model", model, "--out", out + "3", "--quiet",
        ])
        XCTAssertEqual(twice.status, 0, twice.stderr)
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "3/crack/000_mask.png"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "3/crack/000-2_mask.png"))
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
            as? [[String: Any]]
        XCTAssertEqual(json?.count, 12)
        XCTAssertTrue(csv.contains(",anomalous,"), "no synthetic defect was flagged:\n\(csv)")

        // Three shards cover every image exactly once; --json prints one summary line.
        var union = [String]()
        for i in 1...3 {
            let shard = try cli.run([
                "inspect", test, "--model", model, "--out", out + "-shard\(i)", "--shard", "\(i)/3",
                "--json", "--quiet", "--no-images",
            ])
            XCTAssertEqual(shard.status, 0, shard.stderr)
            let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(shard.stdout.utf8)) as? [String: Any])
            let rows = try String(contentsOfFile: out + "-shard\(i)/results.csv", encoding: .utf8).split(
                separator: "\n"
            ).dropFirst()
            XCTAssertEqual(summary["images"] as? Int, rows.count)
            union += rows.map { String($0.split(separator: ",")[0]) }
        }
        let all = csv.split(separator: "\n").dropFirst().map { String($0.split(separator: ",")[0]) }
        XCTAssertEqual(union.sorted(), all.sorted())

        let strict = try cli.run([
            "inspect", test + "/crack", "--model", model, "--out", out + "2", "--fail-on-anomaly", "--quiet",
        ])
        XCTAssertEqual(strict.status, 1, strict.stderr)
        let noModel = try cli.run([
            "inspect", test, "--model", dir.appendingPathComponent("none.safetensors").path, "--out", out,
        ])
        XCTAssertEqual(noModel.status, 2)
        XCTAssertEqual(noModel.stderr.split(separator: "\n").count, 1, noModel.stderr)
        let empty = dir.appendingPathComponent("empty").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let nothing = try cli.run(["train", empty, "-o", model])
        XCTAssertEqual(nothing.status, 2)
        XCTAssertTrue(nothing.stderr.contains("no images in \(empty)"), nothing.stderr)
        let hint = try cli.run([
            "train", data, "-o", dir.appendingPathComponent("m2.safetensors").path, "--quiet",
            "--input-size", "64", "--bank-size", "50",
        ])
        XCTAssertEqual(hint.status, 0, "a dataset root is searched recursively: \(hint.stderr)")

        try FileManager.default.removeItem(atPath: test + "/good/broken.png")
        try FileManager.default.removeItem(atPath: test + "/good/fake.jpg")
        let evalOut = dir.appendingPathComponent("eval").path
        let eval = try cli.run(["eval", data, "--model", model, "--out", evalOut, "--quiet"])
        XCTAssertEqual(eval.status, 0, eval.stderr)
        XCTAssertTrue(eval.stdout.contains("overall"), eval.stdout)
        for file in ["metrics.json", "roc.svg", "pr.svg", "scores.svg"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(evalOut)/\(file)"), file)
        }
        let metrics =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: evalOut + "/metrics.json")))
            as? [String: Any]
        let overall = metrics?["overall"] as? [String: Any]
        XCTAssertGreaterThan(overall?["image_auroc"] as? Double ?? 0, 0.9)
        XCTAssertNotNil((metrics?["per_type"] as? [String: Any])?["crack"])
    }
}
