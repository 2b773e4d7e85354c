import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The service's counters, written as Prometheus text exposition (version 0.0.4) by `text`.
final class ServiceMetrics: @unchecked Sendable {
    /// Upper bounds (seconds) of the inspection latency histogram's buckets.
    static let buckets: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

    private let lock = NSLock()
    private var requests = [String: Int]()  // "route status" -> count
    private var verdicts = [String: Int]()
    private var latencyCounts = [Int](repeating: 0, count: ServiceMetrics.buckets.count)
    private var latencySum = 0.0
    private var latencyCount = 0

    /// Counts one answered request.
    func count(route: String, status: Int) {
        lock.lock()
        requests["\(route) \(status)", default: 0] += 1
        lock.unlock()
    }

    /// Records one inspection answered: its verdict and seconds from the request's end to the reply.
    func inspected(verdict: String, seconds: Double) {
        lock.lock()
        verdicts[verdict, default: 0] += 1
        for (k, bound) in Self.buckets.enumerated() where seconds <= bound { latencyCounts[k] += 1 }
        latencySum += seconds
        latencyCount += 1
        lock.unlock()
    }

    /// The exposition text, with the gauges read now.
    func text(
        queueDepth: Int, queueCapacity: Int, reloads: (reloaded: Int, refused: Int), modelSHA256: String
    )
        -> String
    {
        lock.lock()
        defer { lock.unlock() }
        var out = "# HELP anomap_http_requests_total HTTP requests answered, by route and status.\n"
        out += "# TYPE anomap_http_requests_total counter\n"
        for key in requests.keys.sorted() {
            let parts = key.split(separator: " ")
            out += "anomap_http_requests_total{route=\"\(parts[0])\",status=\"\(parts[1])\"} \(requests[key] ?? 0)\n"
        }
        out += "# HELP anomap_inspections_total Images inspected, by verdict.\n"
        out += "# TYPE anomap_inspections_total counter\n"
        for verdict in verdicts.keys.sorted() {
            out += "anomap_inspections_total{verdict=\"\(verdict)\"} \(verdicts[verdict] ?? 0)\n"
        }
        out += "# HELP anomap_inspect_duration_seconds Seconds from an upload's last byte to its reply.\n"
        out += "# TYPE anomap_inspect_duration_seconds histogram\n"
        for (k, bound) in Self.buckets.enumerated() {
            out += "anomap_inspect_duration_seconds_bucket{le=\"\(bound)\"} \(latencyCounts[k])\n"
        }
        out += "anomap_inspect_duration_seconds_bucket{le=\"+Inf\"} \(latencyCount)\n"
        out += "anomap_inspect_duration_seconds_sum \(latencySum)\n"
        out += "anomap_inspect_duration_seconds_count \(latencyCount)\n"
        out += "# HELP anomap_queue_depth Requests admitted now (reading, waiting or being inspected).\n"
        out += "# TYPE anomap_queue_depth gauge\nanomap_queue_depth \(queueDepth)\n"
        out += "# HELP anomap_queue_capacity Requests admitted at most; the next gets 503.\n"
        out += "# TYPE anomap_queue_capacity gauge\nanomap_queue_capacity \(queueCapacity)\n"
        out += "# HELP anomap_model_reloads_total Model reloads, by result.\n"
        out += "# TYPE anomap_model_reloads_total counter\n"
        out += "anomap_model_reloads_total{result=\"loaded\"} \(reloads.reloaded)\n"
        out += "anomap_model_reloads_total{result=\"refused\"} \(reloads.refused)\n"
        out += "# HELP anomap_model_info The model serving now.\n"
        out += "# TYPE anomap_model_info gauge\nanomap_model_info{sha256=\"\(modelSHA256)\"} 1\n"
        out += "# HELP process_resident_memory_bytes Resident memory of the service.\n"
        out += "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes \(residentBytes())\n"
        return out
    }
}

/// Resident set size of this process, from /proc/self/statm (0 where there is none).
func residentBytes() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
