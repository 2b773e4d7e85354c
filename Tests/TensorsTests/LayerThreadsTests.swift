import Dispatch
import Foundation
import Synchronization
import Tensors
import XCTest

/// `parallelLayer`: every iteration runs exactly once, whoever runs it, including when several
/// threads call it at once (the helpers go to one, the others fall back) and when a layer's
/// iteration calls it again (nested).
final class LayerThreadsTests: XCTestCase {
    /// Counts per iteration, written from several threads.
    final class Counts: @unchecked Sendable {
        private var values: [Int]
        private let lock = NSLock()
        init(_ n: Int) { values = [Int](repeating: 0, count: n) }
        func bump(_ i: Int) {
            lock.lock()
            values[i] += 1
            lock.unlock()
        }
        var all: [Int] {
            lock.lock()
            defer { lock.unlock() }
            return values
        }
    }

    func testEveryIterationRunsOnceForAnyThreadCount() {
        for threads in [1, 2, 3, 8] {
            for iterations in [0, 1, 2, 5, 64] {
                // Many calls in a row: the helpers spin between them, as between a network's layers.
                for _ in 0..<50 {
                    let counts = Counts(iterations)
                    parallelLayer(iterations: iterations, threads: threads) { counts.bump($0) }
                    XCTAssertEqual(counts.all, [Int](repeating: 1, count: iterations), "\(threads) threads")
                }
            }
        }
    }

    func testConcurrentAndNestedCallersEachGetEveryIteration() {
        let callers = 4, rounds = 200
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: callers) { caller in
            for round in 0..<rounds {
                let outer = Counts(3), inner = Counts(6)
                parallelLayer(iterations: 3, threads: 2) { i in
                    outer.bump(i)
                    if (round + caller) % 3 == 0 {
                        parallelLayer(iterations: 2, threads: 2) { j in inner.bump(i * 2 + j) }
                    }
                }
                let nested = (round + caller) % 3 == 0
                if outer.all != [1, 1, 1] || inner.all != [Int](repeating: nested ? 1 : 0, count: 6) {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
    }

    /// A helper parks after a pause and is woken by the next layer.
    func testWorkAfterTheHelpersParked() {
        for _ in 0..<3 {
            usleep(5_000)
            let counts = Counts(16)
            parallelLayer(iterations: 16, threads: 2) { counts.bump($0) }
            XCTAssertEqual(counts.all, [Int](repeating: 1, count: 16))
        }
    }
}
