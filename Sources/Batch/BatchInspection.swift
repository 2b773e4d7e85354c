import Detection
import Dispatch
import Foundation
import Imaging
import Tensors

/// What a batch did.
public struct BatchSummary: Sendable {
    /// Images accounted for (inspected now, failed, or done by an earlier run when resuming).
    public var images = 0
    /// Images judged anomalous.
    public var anomalous = 0
    /// Images that could not be inspected.
    public var errors = 0
    /// Images the shift detector judged unlike the training set.
    public var shifted = 0
    /// Whether the batch warned that most recent images no longer look like the training set.
    public var warnedOfShift = false
    /// The signal that stopped the batch early, if any.
    public var stoppedBy: Int32?

    /// An empty summary.
    public init() {}
}

/// Inspects a list of images with decoding, computing and writing overlapped: the next image is
/// decoded on one thread while the detector runs on the current ones (`sideBySide` at once,
/// sharing the compute threads), and the pictures of the previous one are drawn and written on
/// another. At most one decoded image waits, `sideBySide` are inspected and two wait for
/// writing, so memory stays flat however long the batch. Results come out in input order.
public struct BatchInspection {
    /// The detector.
    public var detector: Detector
    /// Writes the per-image PNGs and the results files.
    public var writer: InspectionWriter
    /// Whether to write heatmap/overlay/mask PNGs into the output folder.
    public var writesImages = true
    /// A triage report to fill, if any.
    public var report: ReportWriter?
    /// Skip images already in the output folder's results.json.
    public var resume = false
    /// Images inspected at once, sharing the compute threads (`SideBySideThreads`); the
    /// results do not depend on it.
    public var sideBySide = 1
    /// Results files are rewritten after this many images and at least `saveSeconds` apart,
    /// so even SIGKILL loses little, while rewriting a long batch's growing files stays a small
    /// share of the time (every 25 images alone made 10,000 images 14% slower than 1,000).
    public var saveInterval = 25
    /// Minimum seconds between two rewrites of the results files.
    public var saveSeconds = 2.0
    /// The batch warns (once) when more than `shiftWarningShare` of the last `shiftWindow`
    /// images (at least 10 seen) are shifted.
    public static let shiftWindow = 50
    /// See `shiftWindow`.
    public static let shiftWarningShare = 0.2

    /// Creates a batch.
    public init(detector: Detector, writer: InspectionWriter) {
        self.detector = detector
        self.writer = writer
    }

    /// Inspects `inputs` in order. `stopRequest` is polled between images (a signal number ends the
    /// batch after the current image, with everything written complete); `onError` gets one line per
    /// unreadable image. An output that cannot be written ends the batch with `PipelineError.output`.
    public func run(
        _ inputs: [BatchInput], stopRequest: () -> Int32? = { nil }, progress: ProgressHandler = { _, _, _ in },
        onError: @escaping @Sendable (String) -> Void = { _ in }
    ) throws -> BatchSummary {
        try refuseOverwritingInputs(inputs)
        var summary = BatchSummary()
        let state = WriteState()
        if resume { for r in try writer.readResults() where r.verdict != "error" { state.done[r.path] = r } }
        let writeQueue = DispatchQueue(label: "anomap.write")
        let decodeQueue = DispatchQueue(label: "anomap.decode")
        let writeSlots = DispatchSemaphore(value: 2)
        let (writer, report, writesImages, saveInterval) = (
            self.writer, self.report, self.writesImages, self.saveInterval
        )
        let order = inputs.map(\.path)
        let saveSeconds = self.saveSeconds
        let save: @Sendable () throws -> Void = {
            try writer.writeResults(order.compactMap { state.done[$0] })
            state.sinceSave = 0
            state.lastSave = Date()
        }

        // Decodes the inputs still to do, one ahead of the detector.
        let todo = inputs.filter { state.done[$0.path] == nil }
        func decode(_ k: Int) -> Pending {
            let pending = Pending()
            decodeQueue.async {
                pending.result = Result {
                    // A large JPEG the model reads smaller is drawn on at full size.
                    guard writesImages || report != nil else {
                        let (image, size) = try detector.read(contentsOf: todo[k].path)
                        return (image, size, image)
                    }
                    return try detector.readWithPhoto(contentsOf: todo[k].path)
                }
                pending.ready.signal()
            }
            return pending
        }
        var next = todo.isEmpty ? nil : decode(0)
        var recent = [Bool]()  // shifted or not, the last `shiftWindow` inspected images
        summary.images = inputs.count - todo.count
        summary.anomalous = inputs.filter { state.done[$0.path]?.verdict == "anomalous" }.count
        let width = max(1, sideBySide)
        let lanes = SideBySideThreads(threads: width, computeThreads: computeThreads, name: "anomap.inspect")
        defer { lanes.close() }
        var inFlight = [(input: BatchInput, photo: Image?, inspection: Running, failedWith: String)]()

        // Takes the oldest inspection in flight to the summary and the write queue.
        func finishOldest() {
            let (input, photo, running, failedWith) = inFlight.removeFirst()
            let inspected = running.wait().flatMap { inspection in photo.map { ($0, inspection) } }
            if let (_, inspection) = inspected, inspection.isAnomalous { summary.anomalous += 1 }
            if let (_, inspection) = inspected, let shift = inspection.shift {
                if shift.isShifted { summary.shifted += 1 }
                recent.append(shift.isShifted)
                if recent.count > Self.shiftWindow { recent.removeFirst() }
                let share = Double(recent.filter { $0 }.count) / Double(recent.count)
                if !summary.warnedOfShift && recent.count >= 10 && share > Self.shiftWarningShare {
                    summary.warnedOfShift = true
                    onError(
                        "warning: \(Int((share * 100).rounded()))% of the last \(recent.count) images are shifted: most images no longer look like the training set: camera, lighting or product changed?"
                    )
                }
            }
            writeSlots.wait()
            writeQueue.async {
                defer { writeSlots.signal() }
                guard state.failure == nil else { return }
                do {
                    let record: InspectionRecord
                    if let (image, inspection) = inspected {
                        var outputs = [String](), rendered: RenderedInspection?
                        if writesImages || report != nil {
                            do {
                                rendered = try writer.render(inspection, photo: image)
                            } catch {
                                throw PipelineError.output("cannot draw outputs for \(input.stem): \(error)")
                            }
                        }
                        if writesImages, let rendered { outputs = try writer.write(rendered, stem: input.stem) }
                        record = InspectionRecord(path: input.path, inspection: inspection, outputs: outputs)
                        if let rendered { try report?.add(record, rendered: rendered, photo: image) }
                    } else {
                        record = InspectionRecord(path: input.path, error: failedWith)
                        report?.add(record)
                    }
                    state.done[input.path] = record
                    state.sinceSave += 1
                    if state.sinceSave >= saveInterval && Date().timeIntervalSince(state.lastSave) >= saveSeconds {
                        try save()
                    }
                } catch {
                    state.failure = error as? PipelineError ?? PipelineError.output("\(error)")
                }
            }
        }

        for (k, input) in todo.enumerated() {
            progress("inspect", summary.images - inFlight.count, inputs.count)
            if let signal = stopRequest() {
                summary.stoppedBy = signal
                break
            }
            if let failure = state.failure { throw failure }
            guard let pending = next else { break }
            pending.ready.wait()
            next = k + 1 < todo.count ? decode(k + 1) : nil
            summary.images += 1
            let running = Running()
            var photo: Image?
            switch pending.result {
            case .success(let decoded)?:
                photo = decoded.photo
                lanes.submit { running.finish(detector.inspect(decoded.image, size: decoded.size)) }
            case .failure(let error)?:
                summary.errors += 1
                onError("error: \(error)")
                running.finish(nil)
            case nil:
                running.finish(nil)
            }
            inFlight.append((input, photo, running, pending.failureDescription))
            if inFlight.count >= width { finishOldest() }
        }
        while !inFlight.isEmpty { finishOldest() }
        // Finish what was started (also when stopping early), then write the results once more.
        if let pending = next { pending.ready.wait() }
        try writeQueue.sync {
            if let failure = state.failure { throw failure }
            try save()
        }
        if summary.stoppedBy == nil { progress("inspect", inputs.count, inputs.count) }
        return summary
    }

    /// Throws before anything is written when an output would replace one of the inputs (an
    /// --out inside an input folder holding files named like outputs, or reached by a symlink).
    func refuseOverwritingInputs(_ inputs: [BatchInput]) throws {
        func resolved(_ path: String) -> String { URL(fileURLWithPath: path).resolvingSymlinksInPath().path }
        let sources = Set(inputs.map { resolved($0.path) })
        var outputs = ["results.csv", "results.json"]
        if writesImages {
            outputs += inputs.flatMap { input in ["heatmap", "overlay", "mask"].map { "\(input.stem)_\($0).png" } }
        }
        for output in outputs {
            let path = (writer.root as NSString).appendingPathComponent(output)
            if FileManager.default.fileExists(atPath: path), sources.contains(resolved(path)) {
                throw PipelineError.output(
                    "\(path) is one of the inputs and would be overwritten; choose an --out folder outside the inputs")
            }
        }
    }

    /// An inspection running on one of the side-by-side threads.
    private final class Running: @unchecked Sendable {
        private let ready = DispatchSemaphore(value: 0)
        private var inspection: Inspection?
        /// Publishes the result (nil: nothing to inspect).
        func finish(_ result: Inspection?) {
            inspection = result
            ready.signal()
        }
        /// Waits for the result.
        func wait() -> Inspection? {
            ready.wait()
            return inspection
        }
    }

    /// A decode running ahead of the detector.
    private final class Pending: @unchecked Sendable {
        let ready = DispatchSemaphore(value: 0)
        var result: Result<(image: Image, size: (width: Int, height: Int), photo: Image), Error>?
        var failureDescription: String {
            if case .failure(let error)? = result { return String(describing: error) }
            return "not decoded"
        }
    }

    /// Records (touched only on the write queue, and before and after it runs) and the first
    /// write failure (read by the main loop too, so behind a lock).
    private final class WriteState: @unchecked Sendable {
        var done = [String: InspectionRecord]()
        var sinceSave = 0
        var lastSave = Date()
        private let lock = NSLock()
        private var firstFailure: PipelineError?
        var failure: PipelineError? {
            get { lock.lock(); defer { lock.unlock() }; return firstFailure }
            set { lock.lock(); if firstFailure == nil { firstFailure = newValue }; lock.unlock() }
        }
    }
}
