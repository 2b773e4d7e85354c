import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Why a loopback exchange failed.
public struct LoopbackError: Error, CustomStringConvertible {
    /// One line.
    public var description: String

    /// An error saying `description`.
    public init(_ description: String) { self.description = description }
}

/// One HTTP/1.1 response as read off the wire.
public struct HTTPResponse: Sendable {
    /// Status code.
    public var status: Int
    /// Header fields, names lowercased.
    public var headers: [String: String]
    /// The body (de-chunked).
    public var body: [UInt8]

    /// The body as UTF-8 text.
    public var text: String { String(decoding: body, as: UTF8.self) }

    /// The body parsed as a JSON object, or nil.
    public var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
    }
}

/// A blocking TCP connection to a port on 127.0.0.1, with a receive timeout: tests use it to
/// send exactly the bytes they mean (half a body, headers one byte at a time) and to see when
/// the server closes.
public final class LoopbackConnection {
    private var fd: Int32
    private var pending = [UInt8]()

    /// Connects to 127.0.0.1:`port`; reads give up after `timeout` seconds.
    public init(port: Int, timeout: Double = 30) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LoopbackError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw LoopbackError("connect to port \(port): \(reason)")
        }
        var wait = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1e6))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close() }

    /// Closes the socket (again is harmless).
    public func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
    }

    /// Sends all of `bytes`; throws when the peer has gone.
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBufferPointer {
                Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw LoopbackError("send: \(String(cString: strerror(errno)))") }
            offset += sent
        }
    }

    /// Sends the UTF-8 bytes of `text`.
    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Reads at least one more byte into `pending`; false when the peer closed.
    private func fill() throws -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let got = buffer.withUnsafeMutableBufferPointer { recv(fd, $0.baseAddress, $0.count, 0) }
        if got < 0 {
            throw LoopbackError(errno == EAGAIN ? "timed out waiting for the server" : String(cString: strerror(errno)))
        }
        if got == 0 { return false }
        pending += buffer[0..<got]
        return true
    }

    /// Reads one response (Content-Length or chunked body).
    public func readResponse() throws -> HTTPResponse {
        let separator: [UInt8] = [13, 10, 13, 10]
        var headEnd = Self.find(separator, in: pending)
        while headEnd == nil {
            if try !fill() { throw LoopbackError("connection closed before a response") }
            headEnd = Self.find(separator, in: pending)
        }
        let end = headEnd ?? 0
        let head = String(decoding: pending[0..<end], as: UTF8.self)
        pending.removeFirst(end + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw LoopbackError("bad status line: \(head.prefix(80))")
        }
        var headers = [String: String]()
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...]
                .trimmingCharacters(in: .whitespaces)
        }
        var body = [UInt8]()
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            while pending.count < length { if try !fill() { throw LoopbackError("body cut short") } }
            body = Array(pending[0..<length])
            pending.removeFirst(length)
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            while true {
                var found = Self.find([13, 10], in: pending)
                while found == nil {
                    if try !fill() { throw LoopbackError("chunk cut short") }
                    found = Self.find([13, 10], in: pending)
                }
                let lineEnd = found ?? 0
                let sizeText = String(decoding: pending[0..<lineEnd], as: UTF8.self)
                guard let size = Int(sizeText.split(separator: ";")[0], radix: 16) else {
                    throw LoopbackError("bad chunk size")
                }
                pending.removeFirst(lineEnd + 2)
                while pending.count < size + 2 { if try !fill() { throw LoopbackError("chunk cut short") } }
                body += pending[0..<size]
                pending.removeFirst(size + 2)
                if size == 0 { break }
            }
        }
        return HTTPResponse(status: status, headers: headers, body: body)
    }

    /// Waits up to the receive timeout for the server to close; true when it did.
    public func waitForClose() -> Bool {
        while true {
            do {
                if try !fill() { return true }
            } catch {
                return (error as? LoopbackError)?.description.hasPrefix("timed out") == false
            }
        }
    }

    /// Sends one request and reads its response.
    public func exchange(
        _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []
    ) throws -> HTTPResponse {
        try send(Self.request(method, path, headers: headers, body: body))
        return try readResponse()
    }

    /// One request on a new connection.
    public static func exchange(
        port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = [],
        timeout: Double = 60
    ) throws -> HTTPResponse {
        let connection = try LoopbackConnection(port: port, timeout: timeout)
        return try connection.exchange(method, path, headers: headers, body: body)
    }

    /// The bytes of a request with a Content-Length body.
    public static func request(
        _ method: String, _ path: String, headers: [String: String] = [:], body: [UInt8] = []
    ) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        if headers.keys.first(where: { $0.lowercased() == "content-length" }) == nil
            && (method == "POST" || !body.isEmpty)
        {
            text += "Content-Length: \(body.count)\r\n"
        }
        return Array((text + "\r\n").utf8) + body
    }

    /// A multipart/form-data body holding one file field; returns it with its Content-Type.
    public static func multipart(file: [UInt8], name: String) -> (body: [UInt8], contentType: String) {
        let boundary = "anomap-\(UInt64.random(in: 0...UInt64.max))"
        let head =
            "--\(boundary)\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nline 3\r\n"
            + "--\(boundary)\r\nContent-Disposition: form-data; name=\"image\"; filename=\"\(name)\"\r\n"
            + "Content-Type: application/octet-stream\r\n\r\n"
        return (
            Array(head.utf8) + file + Array("\r\n--\(boundary)--\r\n".utf8), "multipart/form-data; boundary=\(boundary)"
        )
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count)
        where haystack[start] == needle[0] && Array(haystack[start..<start + needle.count]) == needle {
            return start
        }
        return nil
    }
}

/// What a load run measured.
public struct LoadResult: Sendable {
    /// Responses by status code.
    public var statuses = [Int: Int]()
    /// Seconds from sending to the end of each 200 response.
    public var latencies = [Double]()
    /// Exchanges that failed below HTTP (refused, reset, timed out).
    public var transportErrors = 0
    /// Seconds the run lasted.
    public var seconds = 0.0

    /// The `q` quantile of the 200 responses' latencies (nearest rank), in seconds.
    public func latency(quantile q: Double) -> Double {
        guard !latencies.isEmpty else { return .nan }
        let sorted = latencies.sorted()
        return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
    }
}

/// Closed-loop load: `connections` threads each send the `bodies` in turn (each thread starting
/// at its own) to `path` over a kept-alive connection, one request at a time, for `seconds`. A
/// 503 is counted and its Retry-After honoured (capped at `maxBackoff`), as a well-behaved line
/// controller would.
public func runLoad(
    port: Int, path: String, bodies: [[UInt8]], headers: [String: String] = [:], connections: Int,
    seconds: Double, maxBackoff: Double = 1
) -> LoadResult {
    final class Totals: @unchecked Sendable {
        let lock = NSLock()
        var result = LoadResult()
    }
    let totals = Totals()
    let deadline = Date().addingTimeInterval(seconds)
    let requests = bodies.map { LoopbackConnection.request("POST", path, headers: headers, body: $0) }
    let group = DispatchGroup()
    let start = Date()
    for thread in 0..<connections {
        group.enter()
        Thread.detachNewThread {
            var mine = LoadResult()
            var connection: LoopbackConnection?
            var turn = thread
            while Date() < deadline, !requests.isEmpty {
                let request = requests[turn % requests.count]
                turn += 1
                do {
                    if connection == nil { connection = try LoopbackConnection(port: port, timeout: 60) }
                    let sent = Date()
                    try connection?.send(request)
                    guard let response = try connection?.readResponse() else { break }
                    mine.statuses[response.status, default: 0] += 1
                    if response.status == 200 { mine.latencies.append(Date().timeIntervalSince(sent)) }
                    if response.headers["connection"]?.lowercased() == "close" { connection = nil }
                    if response.status == 503 {
                        let wait = Double(response.headers["retry-after"] ?? "") ?? 1
                        Thread.sleep(forTimeInterval: min(maxBackoff, max(0, wait)))
                    }
                } catch {
                    mine.transportErrors += 1
                    connection = nil
                    Thread.sleep(forTimeInterval: 0.05)
                }
            }
            totals.lock.lock()
            for (status, count) in mine.statuses { totals.result.statuses[status, default: 0] += count }
            totals.result.latencies += mine.latencies
            totals.result.transportErrors += mine.transportErrors
            totals.lock.unlock()
            group.leave()
        }
    }
    group.wait()
    var total = totals.result
    total.seconds = Date().timeIntervalSince(start)
    return total
}
