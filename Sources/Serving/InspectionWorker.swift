import Dispatch
import Foundation
import Tensors

/// Admission and the inspection threads of the service. At most `capacity` requests are
/// admitted at once (reading their body, waiting, or being inspected); the next is turned away
/// at once, so the backlog and the memory it holds stay bounded. Inspections run on `threads`
/// threads of their own, sharing the compute threads: one alone uses them all (as `inspect`
/// does), several at once get an equal share each, changed layer by layer as they start and
/// finish (on two cores one thread does an image in about 1.4x the time of two, so two side by
/// side answer both sooner than taking turns at full width).
public final class InspectionWorker: @unchecked Sendable {
    /// Requests admitted at once.
    public let capacity: Int
    private let computeThreads: Int
    private let lock = NSLock()
    private var admitted = 0
    private var running = [ObjectIdentifier: ComputeBudget]()
    private var jobs = [(ComputeBudget) -> Void]()
    private let ready = DispatchSemaphore(value: 0)

    /// Starts `threads` inspection threads sharing `computeThreads` compute threads.
    public init(capacity: Int, threads: Int, computeThreads: Int) {
        precondition(capacity >= 1 && threads >= 1)
        self.capacity = capacity
        self.computeThreads = computeThreads
        for k in 0..<threads {
            let thread = Thread { [unowned self] in
                while true {
                    self.ready.wait()
                    let budget = ComputeBudget(computeThreads)
                    self.lock.lock()
                    let job = self.jobs.removeFirst()
                    self.running[ObjectIdentifier(budget)] = budget
                    self.share()
                    self.lock.unlock()
                    job(budget)
                    self.lock.lock()
                    self.running[ObjectIdentifier(budget)] = nil
                    self.share()
                    self.lock.unlock()
                }
            }
            thread.name = "anomap.inspect.\(k)"
            thread.start()
        }
    }

    /// Splits the compute threads evenly over the running inspections (under `lock`).
    private func share() {
        let each = max(1, computeThreads / max(1, running.count))
        for budget in running.values { budget.count = each }
    }

    /// Takes a slot; false when all `capacity` are taken.
    public func admit() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard admitted < capacity else { return false }
        admitted += 1
        return true
    }

    /// Gives back a slot taken by `admit`.
    public func release() {
        lock.lock()
        admitted -= 1
        lock.unlock()
    }

    /// Requests admitted now.
    public var depth: Int {
        lock.lock()
        defer { lock.unlock() }
        return admitted
    }

    /// Runs `body` on an inspection thread after the jobs before it, with the compute threads
    /// it may use; `done` gets its result there.
    public func submit<T>(_ body: @escaping (ComputeBudget) -> T, done: @escaping (T) -> Void) {
        lock.lock()
        jobs.append { done(body($0)) }
        lock.unlock()
        ready.signal()
    }
}
