import Foundation
import XCTest

/// Runs the built `anomap` executable as a user would and checks exit codes and streams.
final class CLITests: XCTestCase {
    let cli = CLIRunner()
    var root: URL { cli.root }
    func run(_ arguments: [String]) throws -> CLIRunner.Result { try cli.run(arguments) }

    func testVersionAndHelp() throws {
        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(
            version.stdout.trimmingCharacters(in: .whitespacesAndNewlines).range(
                of: #"^\d+\.\d+\.\d+$"#,
                options: .regularExpression) != nil, version.stdout)
        let help = try run(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.stdout.contains("classify"), help.stdout)
        let classifyHelp = try run(["classify", "--help"])
        XCTAssertTrue(classifyHelp.stdout.contains("--backbone"), classifyHelp.stdout)
    }

    func testUsageErrorsExitNonZeroOnStderr() throws {
        let none = try run(["classify"])
        XCTAssertEqual(none.status, 2)
        XCTAssertTrue(none.stdout.isEmpty)
        XCTAssertFalse(none.stderr.isEmpty)
        let unknown = try run(["frobnicate"])
        XCTAssertEqual(unknown.status, 2)
        let f1WithoutValidation = try run(["train", "x", "-o", "m.safetensors", "--threshold", "f1"])
        XCTAssertEqual(f1WithoutValidation.status, 2)
        XCTAssertTrue(f1WithoutValidation.stderr.contains("--validation-good"), f1WithoutValidation.stderr)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cli-eval-\(getpid())").path
        let missingData = try run(["eval", "/nonexistent/data", "--model", "m.safetensors", "--out", out])
        XCTAssertEqual(missingData.status, 2)
        XCTAssertTrue(missingData.stderr.contains("/nonexistent/data: no such folder"), missingData.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out), "nothing is written when the dataset is missing")
        let missingBackbone = try run(["classify", "--backbone", "/nonexistent/w.safetensors", "x.jpg"])
        XCTAssertNotEqual(missingBackbone.status, 0)
        XCTAssertTrue(missingBackbone.stderr.contains("/nonexistent/w.safetensors"), missingBackbone.stderr)
    }

    func testWrongModelFileIsOneClearLine() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("fake.safetensors")
        try Data("this is not a model".utf8).write(to: fake)
        let r = try run(["classify", "--backbone", fake.path, "x.jpg"])
        XCTAssertEqual(r.status, 2)
        let lines = r.stderr.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.stderr)
        XCTAssertTrue(r.stderr.contains(fake.path) && r.stderr.contains("not a safetensors file"), r.stderr)
    }

    func testClassifyReportsBadFilesAndGoesOn() throws {
        let weights = root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
        let flower = root.appendingPathComponent("models/samples/flower.jpg").path
        guard FileManager.default.fileExists(atPath: weights), FileManager.default.fileExists(atPath: flower) else {
            throw XCTSkip("weights or sample photos missing: run `make samples` (make test does this)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-bad-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let broken = dir.appendingPathComponent("broken.jpg")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: flower))
        try bytes.prefix(bytes.count / 2).write(to: broken)
        let r = try run(["classify", broken.path, flower, dir.appendingPathComponent("missing.png").path])
        XCTAssertEqual(r.status, 1)
        XCTAssertTrue(r.stdout.contains("daisy"), r.stdout)
        XCTAssertTrue(r.stderr.contains("\(broken.path): corrupt image"), r.stderr)
        XCTAssertTrue(r.stderr.contains("missing.png: No such file or directory"), r.stderr)
        XCTAssertEqual(r.stderr.split(separator: "\n").count, 2, r.stderr)
    }
}
