import Foundation
import LoopbackHTTP
import XCTest

/// A running `anomap serve`, its stderr collected, its port read from the "listening on" line.
final class ServerProcess {
    let process = Process()
    private let lock = NSLock()
    private var errText = ""
    private(set) var port = 0

    init(_ cli: CLIRunner, _ arguments: [String]) throws {
        process.executableURL = cli.binary
        process.arguments = ["serve", "--port", "0"] + arguments
        process.currentDirectoryURL = cli.root
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        err.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self, !data.isEmpty else { return }
            self.lock.lock()
            self.errText += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, process.isRunning {
            if let range = stderr.range(of: #"listening on http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                port = Int(stderr[range].split(separator: ":").last ?? "") ?? 0
                return
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw LoopbackError("serve did not start: \(stderr)")
    }

    deinit { if process.isRunning { process.terminate() } }

    var stderr: String {
        lock.lock()
        defer { lock.unlock() }
        return errText
    }

    /// Waits up to `seconds` for `condition`; true when it held.
    func wait(_ seconds: Double, for condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return condition()
    }

    func post(_ body: [UInt8], path: String = "/v1/inspect", headers: [String: String] = [:]) throws -> HTTPResponse {
        try LoopbackConnection.exchange(port: port, "POST", path, headers: headers, body: body)
    }

    func get(_ path: String, headers: [String: String] = [:]) throws -> HTTPResponse {
        try LoopbackConnection.exchange(port: port, "GET", path, headers: headers)
    }
}

/// Replies filled in from several threads.
final class UnsafeReplies: @unchecked Sendable {
    private let lock = NSLock()
    private var replies: [HTTPResponse?]

    init(count: Int) { replies = Array(repeating: nil, count: count) }

    func set(_ k: Int, _ reply: HTTPResponse?) {
        lock.lock()
        replies[k] = reply
        lock.unlock()
    }

    func get(_ k: Int) -> HTTPResponse? {
        lock.lock()
        defer { lock.unlock() }
        return replies[k]
    }
}

/// `anomap serve` over loopback: the same numbers as `inspect`, every refusal's status, the
/// token, deadlines, clients that give up, hot reload and graceful shutdown.
final class ServeTests: XCTestCase {
    let cli = CLIRunner()

    struct Setup {
        var dir: URL
        var data: String
        var model: String
        var images: [String]
        var reference: [String: [String: Any]]
    }

    /// A small model and `inspect`'s results for the test images.
    func makeSetup(_ name: String) throws -> Setup {
        let (dir, data) = try cli.syntheticWorkspace(name, train: 10, testGood: 3, testPerDefect: 2, seed: 31)
        let model = dir.appendingPathComponent("m.safetensors").path
        let trained = try cli.run([
            "train", data + "/train/good", "-o", model, "--preset", "fast", "--input-size", "128", "--quiet",
        ])
        XCTAssertEqual(trained.status, 0, trained.stderr)
        let out = dir.appendingPathComponent("reference").path
        let inspected = try cli.run([
            "inspect", data + "/test", "--model", model, "--out", out, "--no-images", "--quiet",
        ])
        XCTAssertEqual(inspected.status, 0, inspected.stderr)
        let json = try XCTUnwrap(FileManager.default.contents(atPath: out + "/results.json"))
        let records = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [[String: Any]])
        var reference = [String: [String: Any]]()
        for record in records { reference[record["path"] as? String ?? ""] = record }
        return Setup(
            dir: dir, data: data, model: model, images: records.compactMap { $0["path"] as? String },
            reference: reference)
    }

    func bytes(_ path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

    func assertSameResult(_ reply: [String: Any]?, _ expected: [String: Any]?, _ label: String) {
        guard let reply, let expected else { return XCTFail("\(label): missing reply or reference") }
        for key in ["score", "normalized_score", "defect_area", "threshold", "shift_score"] {
            XCTAssertEqual(reply[key] as? Double, expected[key] as? Double, "\(label) \(key)")
        }
        XCTAssertEqual(reply["verdict"] as? String, expected["verdict"] as? String, label)
        XCTAssertEqual(
            (reply["boxes"] as? [[String: Int]])?.count, (expected["boxes"] as? [[String: Int]])?.count, label)
        XCTAssertEqual(reply["boxes"] as? [[String: Int]], expected["boxes"] as? [[String: Int]], label)
    }

    func testAnswersAsInspectDoesAndRefusesWhatItCannotUse() throws {
        let setup = try makeSetup("serve-answers")
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let tokenFile = setup.dir.appendingPathComponent("token").path
        try "s3cret-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
        let server = try ServerProcess(
            cli, ["--model", setup.model, "--token-file", tokenFile, "--max-body-mb", "1", "--queue", "2"])
        let auth = ["Authorization": "Bearer s3cret-token"]

        for path in setup.images {
            let reply = try server.post(try bytes(path), path: "/v1/inspect", headers: auth)
            XCTAssertEqual(reply.status, 200, reply.text)
            assertSameResult(reply.json, setup.reference[path], path)
        }
        // Side by side (the compute threads shared, changed mid-inspection): the same numbers.
        let replies = UnsafeReplies(count: 2 * setup.images.count)
        DispatchQueue.concurrentPerform(iterations: 2) { lane in
            for (k, path) in setup.images.enumerated() {
                let reply = try? server.post(
                    Array((try? Data(contentsOf: URL(fileURLWithPath: path))) ?? Data()), headers: auth)
                replies.set(lane * setup.images.count + k, reply)
            }
        }
        for (k, path) in (setup.images + setup.images).enumerated() {
            XCTAssertEqual(replies.get(k)?.status, 200)
            assertSameResult(replies.get(k)?.json, setup.reference[path], "concurrent \(path)")
        }
        // Multipart, named by its file name; pictures on request.
        let one = try XCTUnwrap(setup.images.last)
        let form = LoopbackConnection.multipart(file: try bytes(one), name: "part-7.png")
        let multipart = try server.post(
            form.body, path: "/v1/inspect?heatmap=1",
            headers: auth.merging(["Content-Type": form.contentType]) { a, _ in a })
        XCTAssertEqual(multipart.status, 200, multipart.text)
        assertSameResult(multipart.json, setup.reference[one], "multipart")
        XCTAssertEqual(multipart.json?["path"] as? String, "part-7.png")
        for key in ["heatmap_png", "overlay_png", "mask_png"] {
            let png = try XCTUnwrap(Data(base64Encoded: multipart.json?[key] as? String ?? ""), key)
            XCTAssertEqual(Array(png.prefix(4)), [0x89, 0x50, 0x4E, 0x47], key)
            // IHDR width and height, big-endian, at bytes 16..<24.
            let width = png[16..<20].reduce(0) { $0 << 8 | Int($1) },
                height = png[20..<24].reduce(0) { $0 << 8 | Int($1) }
            XCTAssertEqual(width, multipart.json?["width"] as? Int, key)
            XCTAssertEqual(height, multipart.json?["height"] as? Int, key)
        }

        // The token: none, wrong, and /healthz open to probes.
        XCTAssertEqual(try server.post(try bytes(one)).status, 401)
        XCTAssertEqual(try server.post(try bytes(one), headers: ["Authorization": "Bearer s3cret-tokeN"]).status, 401)
        XCTAssertEqual(try server.get("/metrics").status, 401)
        XCTAssertEqual(try server.get("/healthz").status, 200)

        // 413 on the declared length alone: the body is never sent.
        let connection = try LoopbackConnection(port: server.port, timeout: 10)
        try connection.send(
            "POST /v1/inspect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\nContent-Length: 2000000\r\n\r\n"
        )
        XCTAssertEqual(try connection.readResponse().status, 413)
        // ... and on a chunked body once it passes the limit.
        let chunked = try LoopbackConnection(port: server.port, timeout: 10)
        try chunked.send(
            "POST /v1/inspect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-token\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        let chunk = [UInt8](repeating: 0x89, count: 300_000)
        for _ in 0..<4 { try? chunked.send(Array("\(String(chunk.count, radix: 16))\r\n".utf8) + chunk + [13, 10]) }
        XCTAssertEqual(try chunked.readResponse().status, 413)

        let text = try server.post(Array("hello, not an image".utf8), headers: auth)
        XCTAssertEqual(text.status, 415, text.text)
        let truncated = try server.post(Array(try bytes(one).prefix(300)), headers: auth)
        XCTAssertEqual(truncated.status, 422, truncated.text)
        XCTAssertTrue((truncated.json?["error"] as? String ?? "").contains("truncated"), truncated.text)
        XCTAssertFalse(truncated.text.contains("\n\""), "one line")
        XCTAssertEqual(try server.post([], headers: auth).status, 400)
        XCTAssertEqual(try server.get("/nowhere").status, 404)
        XCTAssertEqual(try server.get("/v1/inspect", headers: auth).status, 405)

        let metrics = try server.get("/metrics", headers: auth)
        XCTAssertEqual(metrics.status, 200)
        for line in [
            "anomap_http_requests_total{route=\"/v1/inspect\",status=\"200\"} \(3 * setup.images.count + 1)",
            "anomap_http_requests_total{route=\"/v1/inspect\",status=\"401\"} 2",
            "anomap_http_requests_total{route=\"/v1/inspect\",status=\"413\"} 2",
            "anomap_http_requests_total{route=\"/v1/inspect\",status=\"415\"} 1",
            "anomap_http_requests_total{route=\"/v1/inspect\",status=\"422\"} 1",
            "anomap_inspect_duration_seconds_count \(3 * setup.images.count + 1)", "anomap_queue_capacity 2",
            "anomap_queue_depth 0",
        ] {
            XCTAssertTrue(metrics.text.contains(line), "missing \(line) in\n\(metrics.text)")
        }
        XCTAssertTrue(server.process.isRunning)
    }

    func testBusySlowAndVanishingClientsNeverHoldTheService() throws {
        let setup = try makeSetup("serve-faults")
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let server = try ServerProcess(
            cli, ["--model", setup.model, "--queue", "2", "--header-timeout", "1.5", "--body-timeout", "1.5"])
        let image = try bytes(try XCTUnwrap(setup.images.first))
        let head = "POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Length: \(image.count)\r\n\r\n"

        // Two uploads that stall half-way hold both slots: the next request is turned away at once.
        let stalled = try (0..<2).map { _ in try LoopbackConnection(port: server.port, timeout: 10) }
        for connection in stalled { try connection.send(Array(head.utf8) + image.prefix(image.count / 2)) }
        XCTAssertTrue(server.wait(5) { (try? server.get("/healthz").json?["queue_depth"] as? Int) == 2 })
        let started = Date()
        let busy = try server.post(image)
        XCTAssertEqual(busy.status, 503, busy.text)
        XCTAssertEqual(busy.headers["retry-after"], "1")
        XCTAssertLessThan(Date().timeIntervalSince(started), 1.0, "503 at once")
        // The stalled bodies run out of time: 408, the connection closed, the slots free again.
        for connection in stalled {
            XCTAssertEqual(try connection.readResponse().status, 408)
            XCTAssertTrue(connection.waitForClose())
        }
        XCTAssertEqual(try server.post(image).status, 200)

        // A client that sends its headers a byte at a time is cut off after the header timeout,
        // while others are served.
        let slow = try LoopbackConnection(port: server.port, timeout: 10)
        let slowStart = Date()
        var cut = false
        for byte in Array(head.utf8).prefix(30) {
            do {
                try slow.send([byte])
            } catch {
                cut = true
                break
            }
            Thread.sleep(forTimeInterval: 0.2)
            if Date().timeIntervalSince(slowStart) > 1 {
                XCTAssertEqual(try server.get("/healthz").status, 200)
            }
        }
        XCTAssertTrue(cut || slow.waitForClose(), "the slow-header client was not cut off")
        XCTAssertLessThan(Date().timeIntervalSince(slowStart), 6)

        // Clients that go away mid-upload, or right after sending, give their slots back.
        for k in 0..<6 {
            let gone = try LoopbackConnection(port: server.port, timeout: 10)
            try gone.send(Array(head.utf8) + image.prefix(k % 2 == 0 ? image.count / 3 : image.count))
            gone.close()
        }
        XCTAssertTrue(server.wait(10) { (try? server.get("/healthz").json?["queue_depth"] as? Int) == 0 })
        for _ in 0..<3 { XCTAssertEqual(try server.post(image).status, 200) }
        XCTAssertTrue(server.process.isRunning, server.stderr)
    }

    func testHotReloadKeepsServingThroughABadFileAndShutdownFinishesRequestsInFlight() throws {
        let setup = try makeSetup("serve-reload")
        defer { try? FileManager.default.removeItem(at: setup.dir) }
        let second = setup.dir.appendingPathComponent("m2.safetensors").path
        XCTAssertEqual(
            try cli.run([
                "train", setup.data + "/train/good", "-o", second, "--preset", "fast", "--input-size", "96", "--quiet",
            ]).status, 0)
        let live = setup.dir.appendingPathComponent("live.safetensors").path
        try FileManager.default.copyItem(atPath: setup.model, toPath: live)
        let server = try ServerProcess(cli, ["--model", live, "--reload-poll", "0.2", "--queue", "4"])
        let image = try bytes(try XCTUnwrap(setup.images.first))
        func sha() throws -> String { try server.get("/healthz").json?["model_sha256"] as? String ?? "" }
        let first = try sha()
        let reply = try server.post(image)
        XCTAssertEqual(reply.json?["model_sha256"] as? String, first)

        /// Replaces the live model file as a deploy would: a full copy renamed into place.
        func deploy(_ bytes: [UInt8]) throws {
            let temporary = live + ".new"
            try Data(bytes).write(to: URL(fileURLWithPath: temporary))
            XCTAssertEqual(rename(temporary, live), 0)
        }
        // A damaged file is refused; the old model answers on.
        var damaged = try bytes(second)
        damaged[damaged.count / 2] ^= 0xFF
        try deploy(damaged)
        XCTAssertTrue(server.wait(10) { server.stderr.contains("refused new model") }, server.stderr)
        XCTAssertTrue(server.stderr.contains("damaged"), server.stderr)
        XCTAssertEqual(try server.post(image).json?["model_sha256"] as? String, first)
        // SIGHUP tries again, and refuses again.
        kill(server.process.processIdentifier, SIGHUP)
        XCTAssertTrue(
            server.wait(10) { server.stderr.components(separatedBy: "refused new model").count == 3 }, server.stderr)
        try deploy(Array("not a model at all".utf8))
        XCTAssertTrue(
            server.wait(10) { server.stderr.components(separatedBy: "refused new model").count == 4 }, server.stderr)
        XCTAssertEqual(try server.post(image).status, 200)
        // A good file is swapped in between requests.
        try deploy(try bytes(second))
        XCTAssertTrue(
            server.wait(10) { (try? sha()) != first && server.stderr.contains("reloaded model") }, server.stderr)
        let reloaded = try server.post(image)
        XCTAssertEqual(reloaded.status, 200)
        XCTAssertEqual(reloaded.json?["model_sha256"] as? String, try sha())

        // SIGTERM with a request mid-upload and an idle kept-alive connection: the upload is
        // finished and answered, the idle connection closed, nothing new accepted, exit 0.
        let idle = try LoopbackConnection(port: server.port, timeout: 10)
        XCTAssertEqual(try idle.exchange("GET", "/healthz").status, 200)
        let uploading = try LoopbackConnection(port: server.port, timeout: 30)
        try uploading.send(
            Array("POST /v1/inspect HTTP/1.1\r\nHost: x\r\nContent-Length: \(image.count)\r\n\r\n".utf8)
                + image.prefix(100))
        XCTAssertTrue(server.wait(5) { (try? server.get("/healthz").json?["queue_depth"] as? Int) == 1 })
        server.process.terminate()
        XCTAssertTrue(server.wait(5) { server.stderr.contains("stopping") }, server.stderr)
        XCTAssertTrue(idle.waitForClose(), "the idle connection was not closed")
        XCTAssertThrowsError(try LoopbackConnection(port: server.port, timeout: 2), "still accepting while stopping")
        try uploading.send(Array(image.dropFirst(100)))
        let last = try uploading.readResponse()
        XCTAssertEqual(last.status, 200, last.text)
        XCTAssertEqual(last.headers["connection"], "close")
        XCTAssertTrue(server.wait(10) { !server.process.isRunning }, "still running after SIGTERM")
        XCTAssertEqual(server.process.terminationStatus, 0, server.stderr)
    }
}
