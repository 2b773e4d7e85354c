import Dispatch
import Foundation
import Tensors

/// Admission and the inspection threads of the service. At most `capacity` requests are
/// admitted at once (reading their body, waiting, or being inspected); the next is turned away
/// at once, so the backlog and the memory it holds stay bounded. Inspections run side by side
/// on `threads` threads sharing the compute threads (`SideBySideThreads`).
public final class InspectionWorker: @unchecked Sendable {
    /// Requests admitted at once.
    public let capacity: Int
    private let lock = NSLock()
    private var admitted = 0
    private let threads: SideBySideThreads

    /// Starts `threads` inspection threads sharing `computeThreads` compute threads.
    public init(capacity: Int, threads: Int, computeThreads: Int) {
        precondition(capacity >= 1 && threads >= 1)
        self.capacity = capacity
        self.threads = SideBySideThreads(threads: threads, computeThreads: computeThreads, name: "anomap.inspect")
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

    /// Runs `body` on an inspection thread after the jobs before it, with its share of the
    /// compute threads; `done` gets its result there.
    public func submit<T>(_ body: @escaping () -> T, done: @escaping (T) -> Void) {
        threads.submit { done(body()) }
    }
}
