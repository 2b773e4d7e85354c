import Foundation
import LoopbackHTTP

// `anomap-load PORT CONNECTIONS SECONDS FILE...`: closed-loop load on `anomap serve` at
// 127.0.0.1:PORT (`make bench-serve`); prints one JSON line of what it measured. The token,
// if any, comes from $ANOMAP_TOKEN.
let arguments = Array(CommandLine.arguments.dropFirst())
guard arguments.count >= 4, let port = Int(arguments[0]), let connections = Int(arguments[1]),
    let seconds = Double(arguments[2])
else {
    FileHandle.standardError.write(Data("usage: anomap-load PORT CONNECTIONS SECONDS FILE...\n".utf8))
    exit(2)
}
let bodies = arguments.dropFirst(3).compactMap { FileManager.default.contents(atPath: $0).map { Array($0) } }
var headers = [String: String]()
if let token = ProcessInfo.processInfo.environment["ANOMAP_TOKEN"] { headers["Authorization"] = "Bearer \(token)" }
let result = runLoad(
    port: port, path: "/v1/inspect", bodies: bodies, headers: headers, connections: connections, seconds: seconds)
let ok = result.statuses[200] ?? 0
let summary: [String: Any] = [
    "connections": connections, "seconds": (result.seconds * 100).rounded() / 100, "ok": ok,
    "images_per_second": (Double(ok) / result.seconds * 100).rounded() / 100,
    "p50_ms": (result.latency(quantile: 0.5) * 1e4).rounded() / 10,
    "p99_ms": (result.latency(quantile: 0.99) * 1e4).rounded() / 10,
    "statuses": Dictionary(uniqueKeysWithValues: result.statuses.map { ("\($0.key)", $0.value) }),
    "transport_errors": result.transportErrors,
]
let data = (try? JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])) ?? Data()
print(String(decoding: data, as: UTF8.self))
