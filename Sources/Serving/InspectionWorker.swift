import Dispatch
import Foundation

/// Admission and the one inspection thread of the service. At most `capacity` requests are
/// admitted at once (reading their body, waiting, or being inspected); the next is turned away
/// at once, so the backlog and the memory it holds stay bounded. Inspections run one at a
/// time on a thread of their own, each using every compute thread, as `inspect` does, while
/// admitted requests read and decode beside them.
public final class InspectionWorker: @unchecked Sendable {
    /// Requests admitted at once.
    public let capacity: Int
    private let lock = NSLock()
    private var admitted = 0
    private var jobs = [() -> Void]()
    private let ready = DispatchSemaphore(value: 0)

    /// Starts the thread.
    public init(capacity: Int) {
        precondition(capacity >= 1)
        self.capacity = capacity
        let thread = Thread { [unowned self] in
            while true {
                self.ready.wait()
                self.lock.lock()
                let job = self.jobs.removeFirst()
                self.lock.unlock()
                job()
            }
        }
        thread.name = "anomap.inspect"
        thread.start()
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

    /// Runs `body` on the inspection thread after the jobs before it; `done` gets its result there.
    public func submit<T>(_ body: @escaping () -> T, done: @escaping (T) -> Void) {
        lock.lock()
        jobs.append { done(body()) }
        lock.unlock()
        ready.signal()
    }
}
