import Batch
import Detection
import Foundation
import Imaging
import NIOCore
import NIOHTTP1
import NIOPosix
import Tensors

/// How `anomap serve` listens and what it accepts.
public struct ServiceConfiguration: Sendable {
    /// Address to bind (loopback unless told otherwise).
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks a free one.
    public var port = 8080
    /// Requests admitted at once (see `InspectionWorker`).
    public var capacity: Int
    /// Largest accepted body; a larger declared length is refused before any of it is read.
    public var maxBodyBytes = 50 << 20
    /// Seconds a connection may take to send a request's headers (and to stay idle between requests).
    public var headerTimeout = 10.0
    /// Seconds a request may take to send its body once the headers are in.
    public var bodyTimeout = 60.0
    /// The bearer token requests must carry, if any.
    public var token: BearerToken?
    /// Seconds a client turned away with 503 is told to wait.
    public var retryAfterSeconds = 1
    /// Inspections run at once (they share the compute threads).
    public var inspectionThreads = 2

    /// Defaults for `capacity` admitted requests.
    public init(capacity: Int) { self.capacity = capacity }
}

/// A response before it is written: status, content type, extra headers, body.
struct Reply {
    var status: HTTPResponseStatus
    var contentType = "application/json"
    var headers = [(String, String)]()
    var body: [UInt8]

    /// A JSON object (sorted keys, one line).
    static func json(_ status: HTTPResponseStatus, _ object: [String: Any]) -> Reply {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
            ?? Data("{}".utf8)
        return Reply(status: status, body: Array(data) + [10])
    }

    /// `{"error": message}`.
    static func error(_ status: HTTPResponseStatus, _ message: String, headers: [(String, String)] = []) -> Reply {
        var reply = json(status, ["error": message, "status": Int(status.code)])
        reply.headers = headers
        return reply
    }
}

/// The HTTP/1.1 inspection service: routes, admission, hot reload and graceful shutdown, on
/// SwiftNIO's HTTP pipeline with one event-loop thread (the work runs on the inspection
/// thread and on a decode queue, not on the event loop).
public final class InspectionService: @unchecked Sendable {
    let configuration: ServiceConfiguration
    let models: ModelSource
    let worker: InspectionWorker
    let metrics = ServiceMetrics()
    private let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    private let processing = DispatchQueue(label: "anomap.requests", attributes: .concurrent)
    private let lock = NSLock()
    private var serverChannel: Channel?
    private var open = [ObjectIdentifier: NIOLoopBound<ConnectionHandler>]()
    private var stopping = false
    private let allClosed = NSCondition()

    /// A service answering with `models`.
    public init(configuration: ServiceConfiguration, models: ModelSource) {
        self.configuration = configuration
        self.models = models
        worker = InspectionWorker(
            capacity: configuration.capacity, threads: configuration.inspectionThreads,
            computeThreads: computeThreads)
    }

    /// Binds and starts accepting; returns the port bound.
    public func start() throws -> Int {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(ConnectionHandler(service: self))
                }
            }
        let channel = try bootstrap.bind(host: configuration.host, port: configuration.port).wait()
        lock.lock()
        serverChannel = channel
        lock.unlock()
        return channel.localAddress?.port ?? configuration.port
    }

    /// Stops accepting, lets every request already admitted finish and be answered, closes idle
    /// connections, and returns once every connection is closed.
    public func shutdown() {
        lock.lock()
        stopping = true
        let listener = serverChannel
        let connections = Array(open.values)
        lock.unlock()
        try? listener?.close().wait()
        for bound in connections { bound.eventLoop.execute { bound.value.quiesce() } }
        allClosed.lock()
        while !isEmpty { _ = allClosed.wait(until: Date().addingTimeInterval(0.1)) }
        allClosed.unlock()
        try? group.syncShutdownGracefully()
    }

    private var isEmpty: Bool {
        lock.lock()
        defer { lock.unlock() }
        return open.isEmpty
    }

    /// Whether shutdown has begun (new requests on open connections are then the last).
    var isStopping: Bool {
        lock.lock()
        defer { lock.unlock() }
        return stopping
    }

    func opened(_ handler: NIOLoopBound<ConnectionHandler>, id: ObjectIdentifier) {
        lock.lock()
        open[id] = handler
        let late = stopping
        lock.unlock()
        if late { handler.eventLoop.execute { handler.value.quiesce() } }
    }

    func closed(id: ObjectIdentifier) {
        lock.lock()
        open[id] = nil
        lock.unlock()
        allClosed.lock()
        allClosed.broadcast()
        allClosed.unlock()
    }

    // MARK: Routing

    /// What to do with a request once its head is in.
    enum Admission {
        /// Answer now without reading the body (the connection then closes).
        case reject(Reply)
        /// Read a body of at most `limit` bytes; `admitted` holds an inspection slot.
        case read(limit: Int, admitted: Bool)
    }

    /// Decides from the head alone: route, method, token, declared length, a free slot.
    func admit(_ head: HTTPRequestHead) -> Admission {
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        let routes: [String: HTTPMethod] = ["/v1/inspect": .POST, "/healthz": .GET, "/metrics": .GET]
        guard let method = routes[path] else { return .reject(.error(.notFound, "no such route: \(path)")) }
        guard head.method == method else {
            return .reject(
                .error(.methodNotAllowed, "\(path) takes \(method.rawValue)", headers: [("Allow", method.rawValue)]))
        }
        if path != "/healthz", let token = configuration.token, !token.accepts(head.headers["authorization"].first) {
            return .reject(
                .error(
                    .unauthorized, "missing or wrong bearer token",
                    headers: [("WWW-Authenticate", "Bearer realm=\"anomap\"")]))
        }
        guard path == "/v1/inspect" else { return .read(limit: 64 << 10, admitted: false) }
        if let declared = head.headers["content-length"].first.flatMap({ Int($0) }),
            declared > configuration.maxBodyBytes
        {
            return .reject(tooLarge())
        }
        guard worker.admit() else {
            return .reject(
                .error(
                    .serviceUnavailable, "busy: \(worker.capacity) requests in progress; retry",
                    headers: [("Retry-After", "\(configuration.retryAfterSeconds)")]))
        }
        return .read(limit: configuration.maxBodyBytes, admitted: true)
    }

    /// The route a target names, for metrics labels ("other" for unknown paths).
    static func route(_ uri: String) -> String {
        let path = uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? uri
        return ["/v1/inspect", "/healthz", "/metrics"].contains(path) ? path : "other"
    }

    func tooLarge() -> Reply {
        .error(.payloadTooLarge, "body larger than the limit of \(configuration.maxBodyBytes) bytes")
    }

    /// Answers a request whose body is in; `reply` is called once, on any thread.
    func respond(to head: HTTPRequestHead, body: [UInt8], admitted: Bool, reply: @escaping (Reply) -> Void) {
        let components = URLComponents(string: head.uri)
        let path = components?.path ?? head.uri
        let finish: (Reply) -> Void = { [metrics] answer in
            metrics.count(route: path, status: Int(answer.status.code))
            reply(answer)
        }
        switch path {
        case "/healthz":
            let model = models.current
            finish(
                .json(
                    .ok,
                    [
                        "status": isStopping ? "stopping" : "ok", "model_sha256": model.sha256,
                        "queue_depth": worker.depth, "queue_capacity": worker.capacity,
                    ]))
        case "/metrics":
            var answer = Reply(
                status: .ok, contentType: "text/plain; version=0.0.4",
                body: Array(
                    metrics.text(
                        queueDepth: worker.depth, queueCapacity: worker.capacity, reloads: models.reloadCounts,
                        modelSHA256: models.current.sha256
                    ).utf8))
            answer.headers = []
            finish(answer)
        default:
            let query = Dictionary(
                (components?.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { a, _ in a })
            let started = Date()
            processing.async { [self] in
                inspect(head: head, body: body, query: query) { answer, verdict in
                    if let verdict {
                        self.metrics.inspected(verdict: verdict, seconds: Date().timeIntervalSince(started))
                    }
                    if admitted { self.worker.release() }
                    finish(answer)
                }
            }
        }
    }

    /// POST /v1/inspect: the image from the body (raw or the multipart file field), decoded
    /// here, inspected on the inspection thread, answered with the fields of results.json.
    private func inspect(
        head: HTTPRequestHead, body: [UInt8], query: [String: String], done: @escaping (Reply, String?) -> Void
    ) {
        var bytes = body
        var given = query["name"].flatMap { $0.isEmpty ? nil : $0 }
        if let type = head.headers["content-type"].first, type.lowercased().hasPrefix("multipart/") {
            guard let file = multipartFile(body, contentType: type) else {
                return done(.error(.badRequest, "malformed multipart/form-data body (no file part)"), nil)
            }
            bytes = file.bytes
            if given == nil, let filename = file.filename, !filename.isEmpty { given = filename }
        }
        let name = given ?? "upload"
        guard !bytes.isEmpty else { return done(.error(.badRequest, "empty body: send a PNG or JPEG"), nil) }
        guard ImageFormat.sniff(bytes) != nil else {
            return done(.error(.unsupportedMediaType, "\(name): not a PNG or JPEG (by its first bytes)"), nil)
        }
        let pictures = ["1", "true", "yes"].contains(query["heatmap"]?.lowercased() ?? "")
        let model = models.current
        let decoded: (image: Image, size: (width: Int, height: Int), photo: Image)
        do {
            decoded = try model.detector.decodeWithPhoto(bytes, name: name, photo: pictures)
        } catch {
            return done(.error(.unprocessableEntity, "\(error)"), nil)
        }
        worker.submit({ model.detector.inspect(decoded.image, size: decoded.size) }) { [processing] inspection in
            processing.async {
                let record = InspectionRecord(path: name, inspection: inspection, outputs: [])
                guard
                    var object = (try? JSONEncoder().encode(record))
                        .flatMap({ try? JSONSerialization.jsonObject(with: $0) as? [String: Any] })
                else { return done(.error(.internalServerError, "cannot encode the result"), nil) }
                object["model_sha256"] = model.sha256
                object["width"] = inspection.width
                object["height"] = inspection.height
                if pictures {
                    do {
                        let rendered = try RenderedInspection(inspection, photo: decoded.photo)
                        object["heatmap_png"] = Data(try ImageCodec.encodePNG(rendered.heatmap, compressionLevel: 1))
                            .base64EncodedString()
                        object["overlay_png"] = Data(try ImageCodec.encodePNG(rendered.overlay, compressionLevel: 1))
                            .base64EncodedString()
                        object["mask_png"] = Data(try ImageCodec.encodePNG(rendered.mask, compressionLevel: 1))
                            .base64EncodedString()
                    } catch {
                        return done(.error(.internalServerError, "cannot draw the pictures: \(error)"), nil)
                    }
                }
                done(.json(.ok, object), record.verdict)
            }
        }
    }
}

/// One connection: reads a request's head, admits or rejects it at once, reads its body under
/// a deadline and a size limit, and writes the reply; at most one request at a time.
final class ConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    enum State {
        /// Waiting for a request's head.
        case idle
        /// Reading a body; `admitted` holds a slot to give back if the client goes away.
        case reading(head: HTTPRequestHead, body: [UInt8], limit: Int, admitted: Bool)
        /// The request is with the service.
        case answering
        /// A reply has been sent early; what remains of the request is dropped.
        case discarding
    }

    private let service: InspectionService
    private var context: ChannelHandlerContext?
    private var state = State.idle
    private var deadline: Scheduled<Void>?
    private var closeAfterReply = false

    init(service: InspectionService) { self.service = service }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        service.opened(NIOLoopBound(self, eventLoop: context.eventLoop), id: ObjectIdentifier(self))
        arm(service.configuration.headerTimeout)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
        if case .reading(_, _, _, true) = state { service.worker.release() }
        state = .discarding
        self.context = nil
        service.closed(id: ObjectIdentifier(self))
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        if case .reading(_, _, _, true) = state { service.worker.release() }
        state = .discarding
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch (unwrapInboundIn(data), state) {
        case (.head(let head), .idle):
            disarm()
            switch service.admit(head) {
            case .reject(let reply):
                state = .discarding
                service.metrics.count(route: InspectionService.route(head.uri), status: Int(reply.status.code))
                write(reply, keepAlive: false)
            case .read(let limit, let admitted):
                state = .reading(head: head, body: [], limit: limit, admitted: admitted)
                if !head.isKeepAlive { closeAfterReply = true }
                arm(service.configuration.bodyTimeout)
            }
        case (.body(let chunk), .reading(let head, var body, let limit, let admitted)):
            state = .answering  // no copy of `body` while it grows
            guard body.count + chunk.readableBytes <= limit else {
                if admitted { service.worker.release() }
                state = .discarding
                service.metrics.count(route: "/v1/inspect", status: 413)
                write(service.tooLarge(), keepAlive: false)
                return
            }
            body.append(contentsOf: chunk.readableBytesView)
            state = .reading(head: head, body: body, limit: limit, admitted: admitted)
        case (.end, .reading(let head, let body, _, let admitted)):
            disarm()
            state = .answering
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            service.respond(to: head, body: body, admitted: admitted) { reply in
                bound.eventLoop.execute {
                    guard case .answering = bound.value.state else { return }
                    bound.value.write(reply, keepAlive: true)
                }
            }
        case (.head, .answering):
            // A pipelined request: answered by closing after the current reply; the client retries.
            closeAfterReply = true
            state = .answering
        case (.end, .discarding):
            context.close(promise: nil)
        default:
            break
        }
    }

    /// Shutdown: an idle connection closes now, a busy one after its reply.
    func quiesce() {
        closeAfterReply = true
        if case .idle = state { context?.close(promise: nil) }
    }

    /// Writes `reply`; keeps the connection for the next request unless told, asked or stopping.
    private func write(_ reply: Reply, keepAlive: Bool) {
        guard let context else { return }
        let keep = keepAlive && !closeAfterReply && !service.isStopping
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: reply.contentType)
        headers.add(name: "Content-Length", value: "\(reply.body.count)")
        for (name, value) in reply.headers { headers.add(name: name, value: value) }
        if !keep { headers.add(name: "Connection", value: "close") }
        let head = HTTPResponseHead(version: .http1_1, status: reply.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(
            wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: reply.body)))), promise: nil)
        let written = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if keep {
            state = .idle
            arm(service.configuration.headerTimeout)
        } else if case .discarding = state {
            // Rejected before its body was read: stop writing, drop what the client still sends
            // (closing with unread bytes would reset the connection before it reads the reply),
            // and close for good after a short linger.
            let loop = context.eventLoop.assumeIsolated()
            written.assumeIsolated().whenComplete { _ in context.close(mode: .output, promise: nil) }
            deadline = loop.scheduleTask(in: .seconds(2)) { context.close(promise: nil) }
        } else {
            written.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// Closes the connection unless disarmed within `seconds`.
    private func arm(_ seconds: Double) {
        disarm()
        guard let context else { return }
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: .milliseconds(Int64(seconds * 1000))) {
            [self] in
            if case .reading(_, _, _, let admitted) = state {
                if admitted { service.worker.release() }
                state = .discarding
                service.metrics.count(route: "/v1/inspect", status: 408)
                write(.error(.requestTimeout, "the body took longer than the read timeout"), keepAlive: false)
            } else {
                context.close(promise: nil)
            }
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}
