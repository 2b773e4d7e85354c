import Foundation
import SyntheticData
import XCTest

/// Real signals during `anomap inspect`: outputs stay complete and `--resume` finishes the job
/// with the same results as an uninterrupted run.
final class InterruptTests: XCTestCase {
    func testInterruptedInspectResumesToTheSameResults() throws {
        let cli = CLIRunner()
        let (dir, data) = try cli.syntheticWorkspace("interrupt", train: 10, testGood: 60, testPerDefect: 10, seed: 21)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        XCTAssertEqual(
            try cli.run(["train", data + "/train/good", "-o", model, "--input-size", "128", "--quiet"]).status, 0)
        let reference = dir.appendingPathComponent("reference").path
        XCTAssertEqual(
            try cli.run(["inspect", data + "/test", "--model", model, "--out", reference, "--quiet"]).status, 0)

        for (signal, expected) in [("INT", Int32(130)), ("TERM", Int32(143))] {
            let out = dir.appendingPathComponent("run-\(signal)").path
            let process = Process()
            process.executableURL = cli.binary
            process.arguments = ["inspect", data + "/test", "--model", model, "--out", out, "--quiet"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: 1.0)
            if signal == "INT" { process.interrupt() } else { process.terminate() }
            process.waitUntilExit()
            let status = process.terminationStatus
            XCTAssertTrue(status == expected || status == 0, "\(signal): exit \(status)")
            // Whatever was written is complete: results parse, every listed PNG decodes.
            if let data = FileManager.default.contents(atPath: out + "/results.json") {
                let records = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
                XCTAssertLessThanOrEqual(records.count, 90)
                for record in records {
                    for file in record["outputs"] as? [String] ?? [] {
                        XCTAssertNotNil(FileManager.default.contents(atPath: out + "/" + file), file)
                    }
                }
            }
            let leftovers = try FileManager.default.subpathsOfDirectory(atPath: out).filter {
                ($0 as NSString).lastPathComponent.hasPrefix(".")
            }
            XCTAssertEqual(leftovers, [], "temporary files left behind")
            let resumed = try cli.run([
                "inspect", data + "/test", "--model", model, "--out", out, "--quiet", "--resume",
            ])
            XCTAssertEqual(resumed.status, 0, resumed.stderr)
            XCTAssertEqual(
                try String(contentsOfFile: out + "/results.csv", encoding: .utf8),
                try String(contentsOfFile: reference + "/results.csv", encoding: .utf8), signal)
        }
    }

    func testKilledTrainingLeavesNoPartialModel() throws {
        let cli = CLIRunner()
        try cli.requireWeights()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("killtrain-\(getpid())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data").path
        try SyntheticParts.write(to: data, train: 60, testGood: 1, testPerDefect: 1, size: 96, seed: 22)
        let model = dir.appendingPathComponent("m.safetensors").path
        for delay in [0.5, 1.0, 1.5] {
            let process = Process()
            process.executableURL = cli.binary
            process.arguments = ["train", data + "/train/good", "-o", model, "--quiet"]
            process.standardError = FileHandle.nullDevice
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            // Either no model at all, or a complete one that loads.
            if FileManager.default.fileExists(atPath: model) {
                let check = try cli.run([
                    "inspect", data + "/test/good", "--model", model, "--out", dir.appendingPathComponent("o").path,
                    "--quiet",
                ])
                XCTAssertEqual(check.status, 0, check.stderr)
            }
        }
    }
}
