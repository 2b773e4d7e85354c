import Foundation
import XCTest

/// `inspect --watch` while a writer drops files slowly and the watcher is killed and restarted:
/// every image once, none read half-written, the same numbers as a batch.
final class WatchTests: XCTestCase {
    let cli = CLIRunner()

    /// Starts a watch; its stderr goes to `log`.
    func startWatch(_ arguments: [String], log: URL) throws -> Process {
        let process = Process()
        process.executableURL = cli.binary
        process.arguments = ["inspect"] + arguments
        process.currentDirectoryURL = cli.root
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardError = handle
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        return process
    }

    func records(_ out: String) -> [[String: Any]] {
        guard let text = try? String(contentsOfFile: out + "/results.jsonl", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    func testWatchSeesEveryFileOnceThroughSlowWritesRenamesAndRestarts() throws {
        let (dir, data) = try cli.syntheticWorkspace("watch", train: 10, testGood: 4, testPerDefect: 2, seed: 41)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.safetensors").path
        XCTAssertEqual(
            try cli.run([
                "train", data + "/train/good", "-o", model, "--preset", "fast", "--input-size", "128", "--quiet",
            ]).status, 0)
        let sources = try FileManager.default.subpathsOfDirectory(atPath: data + "/test").filter {
            $0.hasSuffix(".png")
        }
        .sorted().map { data + "/test/" + $0 }
        let inbox = dir.appendingPathComponent("inbox").path
        let out = dir.appendingPathComponent("out").path
        try FileManager.default.createDirectory(atPath: inbox + "/line-2", withIntermediateDirectories: true)
        // Two images are there before the watch starts.
        for k in 0..<2 { try FileManager.default.copyItem(atPath: sources[k], toPath: "\(inbox)/early-\(k).png") }
        let log = dir.appendingPathComponent("watch.log")
        let arguments = ["--watch", inbox, "--model", model, "--out", out, "--settle", "0.5"]
        var watcher = try startWatch(arguments, log: log)

        // The writer: slow writes in four pieces, renames into place, a subfolder, a file that
        // is not an image, and one that vanishes at once.
        let count = 36
        var expected = (0..<2).map { "\(inbox)/early-\($0).png" }
        let written = DispatchSemaphore(value: 0)
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var value = 0
        }
        let done = Counter()
        Thread.detachNewThread {
            for k in 0..<count {
                let bytes = (try? Data(contentsOf: URL(fileURLWithPath: sources[k % sources.count]))) ?? Data()
                let folder = k % 5 == 4 ? inbox + "/line-2" : inbox
                let name = "\(folder)/part-\(k).png"
                if k % 2 == 0 {
                    guard
                        let handle = FileHandle(forWritingAtPath: name)
                            ?? {
                                _ = FileManager.default.createFile(atPath: name, contents: nil)
                                return FileHandle(forWritingAtPath: name)
                            }()
                    else { continue }
                    let piece = bytes.count / 4 + 1
                    for start in stride(from: 0, to: bytes.count, by: piece) {
                        handle.write(bytes[start..<min(bytes.count, start + piece)])
                        Thread.sleep(forTimeInterval: 0.03)
                    }
                    try? handle.close()
                } else {
                    let temporary = "\(folder)/.part-\(k).png.tmp"
                    try? bytes.write(to: URL(fileURLWithPath: temporary))
                    Thread.sleep(forTimeInterval: 0.03)
                    rename(temporary, name)
                }
                if k == 10 {
                    _ = FileManager.default.createFile(
                        atPath: "\(inbox)/gone.png", contents: Data(repeating: 1, count: 10))
                    try? FileManager.default.removeItem(atPath: "\(inbox)/gone.png")
                    _ = FileManager.default.createFile(atPath: "\(inbox)/notes.txt", contents: Data("hello".utf8))
                }
                done.lock.lock()
                done.value = k + 1
                done.lock.unlock()
                written.signal()
            }
        }
        for k in 0..<count {
            let folder = k % 5 == 4 ? inbox + "/line-2" : inbox
            expected.append("\(folder)/part-\(k).png")
        }
        let bad = "\(inbox)/bad.png"
        expected.append(bad)
        // Restarts: killed hard a third of the way, stopped cleanly two thirds of the way.
        for k in 0..<count {
            written.wait()
            if k == count / 3 {
                kill(watcher.processIdentifier, SIGKILL)
                watcher.waitUntilExit()
                watcher = try startWatch(arguments, log: log)
            } else if k == 2 * count / 3 {
                watcher.terminate()
                watcher.waitUntilExit()
                XCTAssertEqual(watcher.terminationStatus, 0, "SIGTERM stops a watch cleanly")
                watcher = try startWatch(arguments, log: log)
            }
        }
        _ = FileManager.default.createFile(atPath: bad, contents: Data("not an image".utf8))
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && Set(records(out).compactMap { $0["path"] as? String }).count < expected.count {
            Thread.sleep(forTimeInterval: 0.2)
        }
        watcher.interrupt()
        watcher.waitUntilExit()
        XCTAssertEqual(watcher.terminationStatus, 0)
        done.lock.lock()
        XCTAssertEqual(done.value, count)
        done.lock.unlock()

        // The file that vanished at once is skipped, or, if caught before it went, an error.
        let gone = "\(inbox)/gone.png"
        let all = records(out)
        XCTAssertTrue(all.allSatisfy { $0["path"] as? String != gone || $0["verdict"] as? String == "error" })
        let found = all.filter { $0["path"] as? String != gone }
        let paths = found.compactMap { $0["path"] as? String }
        XCTAssertEqual(paths.count, Set(paths).count, "an image was recorded twice")
        XCTAssertEqual(Set(paths), Set(expected))
        let logText = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        for record in found where record["path"] as? String != bad {
            XCTAssertNotEqual(record["verdict"] as? String, "error", "read half-written? \(record)\n\(logText)")
        }
        XCTAssertEqual(found.first { $0["path"] as? String == bad }?["verdict"] as? String, "error")
        // results.csv has the same rows, results.json the same records after the stop.
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, all.count + 1)
        let json = try XCTUnwrap(
            JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
                as? [[String: Any]])
        XCTAssertEqual(json.count, all.count)
        XCTAssertNotNil(FileManager.default.contents(atPath: out + "/inbox/line-2/part-4_overlay.png"), logText)

        // The same numbers as a batch over the same files.
        let batch = dir.appendingPathComponent("batch").path
        XCTAssertEqual(
            try cli.run(["inspect", inbox, "--model", model, "--out", batch, "--no-images", "--quiet"]).status, 0)
        let reference = try XCTUnwrap(
            JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: batch + "/results.json")))
                as? [[String: Any]])
        var byPath = [String: [String: Any]]()
        for record in reference { byPath[record["path"] as? String ?? ""] = record }
        for record in found {
            let path = record["path"] as? String ?? ""
            XCTAssertEqual(record["normalized_score"] as? Double, byPath[path]?["normalized_score"] as? Double, path)
            XCTAssertEqual(record["verdict"] as? String, byPath[path]?["verdict"] as? String, path)
        }
    }
}
