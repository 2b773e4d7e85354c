import Foundation
import SyntheticData
import XCTest

/// Limits of the environment: thread counts, a full disk, a read-only output folder, paths that
/// try to leave the output folder or to overwrite an input.
final class RobustnessTests: XCTestCase {
    let cli = CLIRunner()

    func makeData(_ name: String) throws -> (dir: URL, data: String) {
        try cli.requireWeights()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: dir)
        let data = dir.appendingPathComponent("data").path
        try SyntheticParts.write(to: data, train: 10, testGood: 3, testPerDefect: 1, size: 96, seed: 21)
        return (dir, data)
    }

    func bytes(_ path: String) throws -> Data { try Data(contentsOf: URL(fileURLWithPath: path)) }

    func testOneAndTwoThreadsGiveIdenticalModelsAndResults() throws {
        let (dir, data) = try makeData("threads")
        defer { try? FileManager.default.removeItem(at: dir) }
        // Every kind of component, each with its parallel path (students side by side, the
        // autoencoder's batch halves, the scorers' jobs), kept small.
        var models = [String]()
        for threads in ["1", "2"] {
            let model = dir.appendingPathComponent("model-\(threads).safetensors").path
            let train = try cli.run([
                "train", data + "/train/good", "-o", model, "--input-size", "96", "--bank-size", "100",
                "--components", "gaussian,knn,st,ae", "--student-epochs", "1", "--ae-epochs", "1",
                "--student-width", "16", "--threads", threads, "--quiet",
            ])
            XCTAssertEqual(train.status, 0, train.stderr)
            models.append(model)
        }
        XCTAssertEqual(try bytes(models[0]), try bytes(models[1]), "training on 1 and 2 threads gave different models")
        // One thread, two (two images side by side by default), and three images side by side,
        // with a corrupt file among them: the same bytes, the same order, the error in its place.
        let good = try bytes(data + "/test/good/000.png")
        try good.prefix(good.count / 3).write(to: URL(fileURLWithPath: data + "/test/good/001b.png"))
        var outs = [String]()
        for (name, options) in [("1", ["--threads", "1"]), ("2", ["--threads", "2"]), ("3", ["--inspections", "3"])] {
            let out = dir.appendingPathComponent("out-\(name)").path
            let inspect = try cli.run(
                ["inspect", data + "/test", "--model", models[0], "--out", out, "--quiet"] + options)
            XCTAssertEqual(inspect.status, 0, inspect.stderr)
            XCTAssertTrue(inspect.stderr.contains("001b.png: corrupt image"), inspect.stderr)
            outs.append(out)
        }
        let csv = try String(contentsOfFile: outs[0] + "/results.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 1 + 7)
        let before = try XCTUnwrap(csv.firstIndex { $0.contains("good/001.png") }, "\(csv)")
        XCTAssertTrue(csv[before + 1].contains("001b.png") && csv[before + 1].contains(",error,"), "\(csv)")
        XCTAssertTrue(csv[before + 2].contains("good/002.png"), "\(csv)")
        let files = try FileManager.default.subpathsOfDirectory(atPath: outs[0]).filter {
            $0.hasSuffix(".png") || $0.hasPrefix("results")
        }.sorted()
        XCTAssertEqual(files.count, 2 + 6 * 3)
        for file in files {
            for other in outs.dropFirst() {
                XCTAssertEqual(
                    try bytes("\(outs[0])/\(file)"), try bytes("\(other)/\(file)"),
                    "\(file) differs between \(outs[0]) and \(other)")
            }
        }
    }

    /// Mounts a small tmpfs (root only); nil when this machine does not allow it.
    func mountTmpfs(at path: String, kilobytes: Int) throws -> Bool {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let r = try cli.runTool(["mount", "-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", path])
        return r.status == 0
    }

    func testFullDiskAndReadOnlyOutputAreOneClearErrorWithNothingHalfWritten() throws {
        let (dir, data) = try makeData("disk")
        let out = dir.appendingPathComponent("small").path
        defer {
            _ = try? cli.runTool(["umount", out])
            try? FileManager.default.removeItem(at: dir)
        }
        guard try mountTmpfs(at: out, kilobytes: 40) else {
            throw XCTSkip("cannot mount a tmpfs here (needs root): the full-disk and read-only cases are not run")
        }
        let model = dir.appendingPathComponent("model.safetensors").path
        let train = try cli.run([
            "train", data + "/train/good", "-o", model, "--input-size", "96", "--components", "gaussian", "--quiet",
        ])
        XCTAssertEqual(train.status, 0, train.stderr)

        let full = try cli.run(["inspect", data + "/test", "--model", model, "--out", out])
        XCTAssertEqual(full.status, 2, full.stderr)
        let errors = full.stderr.split(separator: "\n").filter { $0.hasPrefix("error:") }
        XCTAssertEqual(errors.count, 1, full.stderr)
        XCTAssertTrue(full.stderr.contains("No space left on device"), full.stderr)
        // Whatever was written is complete: no temporary files, every PNG decodes.
        let written = try FileManager.default.subpathsOfDirectory(atPath: out)
        XCTAssertFalse(written.contains { ($0 as NSString).lastPathComponent.hasPrefix(".") }, "\(written)")
        let probe = dir.appendingPathComponent("probe").path
        for png in written where png.hasSuffix(".png") {
            let check = try cli.run([
                "inspect", "\(out)/\(png)", "--model", model, "--out", probe, "--no-images", "--quiet",
            ])
            XCTAssertEqual(check.status, 0, "\(png) is not a complete image: \(check.stderr)")
        }

        XCTAssertEqual(try cli.runTool(["mount", "-o", "remount,ro", out]).status, 0)
        let readOnly = try cli.run(["inspect", data + "/test", "--model", model, "--out", out])
        XCTAssertEqual(readOnly.status, 2, readOnly.stderr)
        XCTAssertEqual(readOnly.stderr.split(separator: "\n").count, 1, readOnly.stderr)
        XCTAssertTrue(readOnly.stderr.contains("not writable"), readOnly.stderr)
    }

    func testOutputsStayInsideOutAndNeverReplaceAnInput() throws {
        let (dir, data) = try makeData("paths")
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("model.safetensors").path
        XCTAssertEqual(
            try cli.run([
                "train", data + "/train/good", "-o", model, "--input-size", "96", "--components", "gaussian", "--quiet",
            ]).status, 0)
        // Inputs named through "..", and a symlink to an image in another folder.
        let links = dir.appendingPathComponent("links").path
        try FileManager.default.createDirectory(atPath: links, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: links + "/outside.png", withDestinationPath: data + "/test/good/000.png")
        let before = Set(try FileManager.default.subpathsOfDirectory(atPath: dir.path))
        let out = dir.appendingPathComponent("out").path
        let run = try cli.run(
            [
                "inspect", data + "/test/../test/good/../crack", links, "../../.." + data + "/test/spot/000.png",
                "--model", model, "--out", out, "--quiet",
            ], cwd: dir.appendingPathComponent("links"))
        XCTAssertEqual(run.status, 0, run.stderr)
        let after = Set(try FileManager.default.subpathsOfDirectory(atPath: dir.path))
        let added = after.subtracting(before)
        XCTAssertFalse(added.isEmpty)
        for path in added { XCTAssertTrue(path == "out" || path.hasPrefix("out/"), "written outside --out: \(path)") }
        XCTAssertTrue(added.contains("out/links/outside_overlay.png"), "\(added.sorted())")

        // --out inside the inputs, with an input named like an output: refused before writing anything.
        let folder = dir.appendingPathComponent("mixed").path
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: data + "/test/good/000.png", toPath: folder + "/a.png")
        try FileManager.default.copyItem(atPath: data + "/test/good/001.png", toPath: folder + "/a_heatmap.png")
        let original = try bytes(folder + "/a_heatmap.png")
        let clash = try cli.run(["inspect", folder, "--model", model, "--out", dir.path])
        XCTAssertEqual(clash.status, 2, clash.stderr)
        XCTAssertTrue(clash.stderr.contains("is one of the inputs"), clash.stderr)
        XCTAssertEqual(try bytes(folder + "/a_heatmap.png"), original)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder + "/a_overlay.png"))
    }
}
