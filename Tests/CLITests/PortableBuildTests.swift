import Foundation
import XCTest

/// The start-up check of an AVX-512 build on a CPU without AVX-512 (played with
/// `ANOMAP_ASSUME_NO_AVX512=1`): it hands the process over to the AVX2 twin beside it, with the
/// same arguments, and without one it stops with one line and exit 2.
final class PortableBuildTests: XCTestCase {
    let cli = CLIRunner()

    func testAnAVX512BuildHandsOverToItsTwinOrStopsWithOneLine() throws {
        #if !ANOMAP_AVX512
            throw XCTSkip("this build has no AVX-512 kernels: nothing to hand over")
        #else
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("portable-\(getpid())")
            try? FileManager.default.removeItem(at: dir)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let copy = dir.appendingPathComponent("anomap")
            try FileManager.default.copyItem(at: cli.binary, to: copy)
            var environment = ProcessInfo.processInfo.environment
            environment["ANOMAP_ASSUME_NO_AVX512"] = "1"

            // No twin: one line naming the instructions and the fix, exit 2, nothing on stdout.
            let alone = try cli.launch(copy, ["--version"], cwd: dir, environment: environment)
            XCTAssertEqual(alone.status, 2)
            XCTAssertEqual(alone.stdout, "")
            XCTAssertEqual(alone.stderr.split(separator: "\n").count, 1, alone.stderr)
            XCTAssertTrue(alone.stderr.contains("avx512") && alone.stderr.contains("make portable"), alone.stderr)

            // A twin (here a script standing in for the AVX2 build): it gets the arguments.
            let twin = dir.appendingPathComponent("anomap-avx2")
            try "#!/bin/sh\necho \"twin $*\"\nexit 7\n".write(to: twin, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: twin.path)
            let handed = try cli.launch(copy, ["inspect", "a b", "--out", "o"], cwd: dir, environment: environment)
            XCTAssertEqual(handed.status, 7)
            XCTAssertEqual(handed.stdout, "twin inspect a b --out o\n")

            // On this CPU, without the variable, the binary runs itself.
            environment["ANOMAP_ASSUME_NO_AVX512"] = nil
            let own = try cli.launch(copy, ["--version"], cwd: dir, environment: environment)
            XCTAssertEqual(own.status, 0, own.stderr)
            XCTAssertFalse(own.stdout.hasPrefix("twin"))
        #endif
    }
}
