import Dispatch
import Foundation
import Synchronization

/// Runs `body(0..<iterations)` on up to `threads` threads (the caller one of them) and returns
/// when every iteration has finished; iterations must not depend on each other.
///
/// A layer of a batch-1 forward lasts 20-400 µs, and handing it to a parked thread costs about
/// 10 µs (a wake-up and a join, measured with `concurrentPerform` on this 2-core machine), some
/// 30 times per Lite0 classifier. So the helper threads of `LayerThreads.shared` keep spinning for
/// a moment after each layer, where the next one finds them awake. When the helpers are busy
/// (side-by-side inspections, or a call from inside a layer) the work goes to `concurrentPerform`.
public func parallelLayer(iterations: Int, threads: Int, _ body: (Int) -> Void) {
    if iterations <= 1 || threads <= 1 {
        for i in 0..<iterations { body(i) }
    } else if !LayerThreads.shared.run(iterations: iterations, body) {
        DispatchQueue.concurrentPerform(iterations: iterations, execute: body)
    }
}

/// Helper threads for `parallelLayer`: one fewer than the processors, spinning between layers.
final class LayerThreads: @unchecked Sendable {
    /// The process's helpers.
    static let shared = LayerThreads(helpers: ProcessInfo.processInfo.activeProcessorCount - 1)

    /// How long a helper waits for the next layer before it parks: longer than the gap between
    /// two layers of a forward (a few µs), short enough not to hold a core that other work
    /// needs, such as a second inspection side by side; after `yieldNanoseconds` it yields the
    /// core on every check. (Against a 200 µs pure spin: the same Lite0 times, within noise.)
    static let spinNanoseconds: UInt64 = 50_000
    static let yieldNanoseconds: UInt64 = 5_000

    /// The job and who works on it, changed under the lock only.
    private struct Shared {
        var busy = false
        var job: ((Int) -> Void)?
        var iterations = 0
    }

    private let helpers: Int
    /// The job, under `lock` (a pthread mutex, which ThreadSanitizer follows; it reports false
    /// races through the futex-based `Mutex`).
    private var shared = Shared()
    private let lock = NSLock()

    /// Runs `body` on the job state under the lock.
    private func withShared<T>(_ body: (inout Shared) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&shared)
    }
    /// Bumped when a job is published: what spinning helpers watch.
    private let generation = Atomic<Int>(0)
    /// The next iteration to take of the current job.
    private let next = Atomic<Int>(0)
    /// Helpers inside the current job: raised under the lock while the job is set, lowered when
    /// a helper has left it; the caller clears the job under the lock once it is zero, so no
    /// helper ever takes an iteration of a later job with an earlier body.
    private let active = Atomic<Int>(0)
    /// Helpers parked on `wake`, counted before they park.
    private let parked = Atomic<Int>(0)
    private let wake = DispatchSemaphore(value: 0)

    private init(helpers: Int) {
        self.helpers = max(0, helpers)
        for k in 0..<self.helpers {
            let thread = Thread { [self] in helperLoop() }
            thread.name = "anomap.layer.\(k)"
            thread.start()
        }
    }

    /// Runs the job with the helpers, or returns false at once when they are taken.
    func run(iterations count: Int, _ body: (Int) -> Void) -> Bool {
        guard helpers > 0 else { return false }
        return withoutActuallyEscaping(body) { body in
            let taken = withShared { state in
                guard !state.busy else { return false }
                state.busy = true
                state.job = body
                state.iterations = count
                next.store(0, ordering: .relaxed)
                generation.add(1, ordering: .sequentiallyConsistent)
                return true
            }
            guard taken else { return false }
            let sleeping = parked.exchange(0, ordering: .sequentiallyConsistent)
            for _ in 0..<sleeping { wake.signal() }
            Self.work(body, count, next)
            // The helpers are mid-iteration at most, and a layer's iterations are short.
            while true {
                while active.load(ordering: .relaxed) != 0 {}
                let done = withShared { state in
                    guard active.load(ordering: .acquiring) == 0 else { return false }
                    state = Shared()
                    return true
                }
                if done { return true }
            }
        }
    }

    /// Takes iterations until none is left.
    private static func work(_ body: (Int) -> Void, _ count: Int, _ next: borrowing Atomic<Int>) {
        while true {
            let i = next.add(1, ordering: .relaxed).oldValue
            guard i < count else { return }
            body(i)
        }
    }

    private func helperLoop() {
        var seen = 0
        while true {
            var start = DispatchTime.now().uptimeNanoseconds
            var spins = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                guard spins & 63 == 0 else { continue }
                let waited = DispatchTime.now().uptimeNanoseconds - start
                if waited > Self.spinNanoseconds {
                    park(seen)
                    start = DispatchTime.now().uptimeNanoseconds
                } else if waited > Self.yieldNanoseconds {
                    sched_yield()
                }
            }
            seen = generation.load(ordering: .acquiring)
            if takePart() { active.subtract(1, ordering: .releasing) }
        }
    }

    /// Works on the current job, if any, and returns whether it did. Its own frame holds the
    /// copy of the caller's closure, released before `active` is lowered.
    @inline(never)
    private func takePart() -> Bool {
        let taken = withShared { state -> (((Int) -> Void), Int)? in
            guard let job = state.job else { return nil }
            active.add(1, ordering: .relaxed)
            return (job, state.iterations)
        }
        guard let (body, count) = taken else { return false }
        Self.work(body, count, next)
        return true
    }

    /// Parks until a job is published after `seen` (or returns when one already was).
    private func park(_ seen: Int) {
        parked.add(1, ordering: .sequentiallyConsistent)
        guard generation.load(ordering: .sequentiallyConsistent) == seen else {
            // Published meanwhile: take the count back, or, when the publisher took it, the
            // signal it sent for it.
            var count = parked.load(ordering: .sequentiallyConsistent)
            while count > 0 {
                let (exchanged, now) = parked.compareExchange(
                    expected: count, desired: count - 1, ordering: .sequentiallyConsistent)
                if exchanged { return }
                count = now
            }
            wake.wait()
            return
        }
        wake.wait()
    }
}
