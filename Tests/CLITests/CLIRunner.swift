import Foundation
import XCTest

/// Runs the built `anomap` executable as a user would.
struct CLIRunner {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    var binary: URL {
        let candidates = [Bundle.main.bundleURL.appendingPathComponent("anomap"),
                          Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("anomap")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates[0]
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    func run(_ arguments: [String], cwd: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = cwd ?? root
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }


    /// Skips the calling test, with the fix, when the pretrained weights are not installed.
    func requireWeights() throws {
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("models/efficientnet-lite0.safetensors").path) else {
            throw XCTSkip("weights missing: run `make setup` (make test does this)")
        }
    }
}
