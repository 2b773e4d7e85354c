import Foundation
import SyntheticData
import XCTest

/// Runs the built `anomap` executable as a user would.
struct CLIRunner {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    var binary: URL {
        let candidates = [
            Bundle.main.bundleURL.appendingPathComponent("anomap"),
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("anomap"),
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func run(_ arguments: [String], cwd: URL? = nil) throws -> Result {
        try launch(binary, arguments, cwd: cwd, environment: nil)
    }

    /// Runs `executable` and collects its status and output.
    func launch(_ executable: URL, _ arguments: [String], cwd: URL?, environment: [String: String]?) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = cwd ?? root
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
            stderr: String(decoding: e, as: UTF8.self))
    }

    /// Installs the programs a test drives (`command:debian-package`) when missing; skips the
    /// calling test with the installer's one-line reason when that cannot be done.
    func requireTools(_ pairs: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("Scripts/install_test_tools.sh").path] + pairs
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let message = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            throw XCTSkip(
                "needs \(pairs.joined(separator: ", ")): \(message.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    /// Runs any program (by name on PATH) and returns its status and output.
    func runTool(_ arguments: [String], cwd: URL? = nil) throws -> Result {
        var environment = ProcessInfo.processInfo.environment
        environment["PATH"] = binary.deletingLastPathComponent().path + ":" + (environment["PATH"] ?? "/usr/bin:/bin")
        return try launch(URL(fileURLWithPath: "/usr/bin/env"), arguments, cwd: cwd, environment: environment)
    }

    /// Skips the calling test, with the fix, when the pretrained weights are not installed.
    func requireWeights() throws {
        guard
            FileManager.default.fileExists(
                atPath: root.appendingPathComponent("models/efficientnet-lite0.safetensors").path)
        else {
            throw XCTSkip("weights missing: run `make setup` (make test does this)")
        }
    }

    /// A fresh temporary folder `name-<pid>` with a synthetic dataset in `data/` (the caller
    /// removes `dir`); skips the test when the weights are missing.
    func syntheticWorkspace(
        _ name: String, train: Int, testGood: Int, testPerDefect: Int,
        seed: UInt64
    ) throws -> (dir: URL, data: String) {
        try requireWeights()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())")
        let data = dir.appendingPathComponent("data").path
        try SyntheticParts.write(
            to: data, train: train, testGood: testGood, testPerDefect: testPerDefect, size: 96, seed: seed)
        return (dir, data)
    }
}
