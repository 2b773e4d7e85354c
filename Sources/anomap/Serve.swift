import ArgumentParser
import Detection
import Dispatch
import Foundation
import Models
import Serving
import Tensors

/// `anomap serve`: an HTTP/1.1 inspection service for a line controller or MES.
struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over HTTP: POST /v1/inspect, GET /healthz, GET /metrics.",
        discussion: """
            POST an image (the raw PNG/JPEG body, or multipart/form-data with a file field) to
            /v1/inspect; the reply is the image's row of results.json as JSON (add ?heatmap=1 for the
            heatmap, overlay and mask PNGs in base64, ?name=FILE to name it). A full queue answers 503
            with Retry-After at once. SIGHUP or a changed model file reloads the model between
            requests (a file that does not load is refused; the old model keeps serving); SIGTERM or
            Ctrl-C stops accepting, finishes the requests in flight and exits 0.
            """)

    @Option(name: .long, help: ArgumentHelp("Model bundle from `anomap train`.", valueName: "model.safetensors"))
    var model: String

    @Option(name: .long, help: "Address to listen on (loopback unless told otherwise; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0 picks a free one; the chosen port is printed).")
    var port = 8080

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Require `Authorization: Bearer <token>` with the token in this file (not for /healthz).",
            valueName: "file"))
    var tokenFile: String?

    @Option(
        name: .long,
        help:
            "Requests admitted at once (reading, waiting or being inspected); the next gets 503 (default: 2 per core)."
    )
    var queue: Int?

    @Option(
        name: .long,
        help:
            "Inspections run at once; alone, one uses every --threads, side by side each gets a share (default: one per core)."
    )
    var inspections: Int?

    @Option(name: .long, help: "Largest accepted upload in MB (a larger one gets 413 before it is read).")
    var maxBodyMb = 50.0

    @Option(name: .long, help: "Seconds a client may take to send a request's headers, and to idle between requests.")
    var headerTimeout = 10.0

    @Option(name: .long, help: "Seconds a client may take to send a request's body.")
    var bodyTimeout = 60.0

    @Option(name: .long, help: "Seconds between looks at the model file for a new version (0: only on SIGHUP).")
    var reloadPoll = 2.0

    @Option(name: .long, help: "Override the model's threshold (normalized score).")
    var threshold: Float?

    @OptionGroup var runOptions: RunOptions
    @OptionGroup var backbone: BackboneOptions

    func validate() throws {
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535") }
        if let queue, queue < 1 { throw ValidationError("--queue must be at least 1") }
        if let inspections, inspections < 1 { throw ValidationError("--inspections must be at least 1") }
        if !(maxBodyMb > 0 && maxBodyMb <= 4096) { throw ValidationError("--max-body-mb must be in (0, 4096]") }
        if !(headerTimeout > 0) || !(bodyTimeout > 0) { throw ValidationError("timeouts must be positive") }
        if !(reloadPoll >= 0) { throw ValidationError("--reload-poll must be 0 or more") }
        if let threshold, !threshold.isFinite { throw ValidationError("--threshold must be a number") }
    }

    func run() throws {
        setComputeThreads(runOptions.threads)
        var service: InspectionService?
        var models: ModelSource?
        try exitOnFailure {
            let (network, sha) = try backbone.loadWithChecksum()
            let extractor = PatchFeatureExtractor(backbone: network)
            let threshold = self.threshold
            let source = try ModelSource(path: model) { bytes, path in
                var detector = try ModelBundle.decode(bytes, path: path, extractor: extractor, backboneSHA256: sha)
                if let threshold { detector.threshold = threshold }
                return detector
            }
            var configuration = ServiceConfiguration(
                capacity: queue ?? 2 * ProcessInfo.processInfo.activeProcessorCount)
            configuration.inspectionThreads = inspections ?? ProcessInfo.processInfo.activeProcessorCount
            configuration.host = host
            configuration.port = port
            configuration.maxBodyBytes = Int(maxBodyMb * 1_048_576)
            configuration.headerTimeout = headerTimeout
            configuration.bodyTimeout = bodyTimeout
            configuration.token = try tokenFile.map { try BearerToken(file: $0) }
            service = InspectionService(configuration: configuration, models: source)
            models = source
        }
        guard let service, let models else { throw ExitCode(2) }
        // --quiet keeps the lines that matter in a log: where it listens, reloads, refusals.
        let quiet = runOptions.quiet
        let stop = DispatchSemaphore(value: 0)
        let reloads = DispatchQueue(label: "anomap.reload")
        var sources = [DispatchSourceProtocol]()
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: reloads)
            source.setEventHandler {
                if sig == SIGHUP {
                    if let line = models.reload(force: true) ?? (quiet ? nil : "model \(models.path) unchanged") {
                        printError(line)
                    }
                } else {
                    stop.signal()
                }
            }
            source.resume()
            sources.append(source)
        }
        if reloadPoll > 0 {
            let timer = DispatchSource.makeTimerSource(queue: reloads)
            timer.schedule(deadline: .now() + reloadPoll, repeating: reloadPoll)
            timer.setEventHandler { if let line = models.reload(force: false) { printError(line) } }
            timer.resume()
            sources.append(timer)
        }
        let bound: Int
        do {
            bound = try service.start()
        } catch {
            printError("error: cannot listen on \(host):\(port): \(error)")
            throw ExitCode(2)
        }
        printError(
            "listening on http://\(host.contains(":") ? "[\(host)]" : host):\(bound) (model \(model), sha256 \(models.current.sha256.prefix(12)))"
        )
        stop.wait()
        if !quiet { printError("stopping: finishing the requests in flight") }
        service.shutdown()
        sources.forEach { $0.cancel() }
        if !quiet { printError("stopped") }
    }
}
