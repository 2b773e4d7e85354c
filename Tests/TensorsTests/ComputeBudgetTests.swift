import Dispatch
import Tensors
import XCTest

/// A thread's own compute budget: seen by that thread alone, changeable while it runs, restored after.
final class ComputeBudgetTests: XCTestCase {
    func testBudgetIsPerThreadChangeableAndRestored() {
        setComputeThreads(2)
        let budget = ComputeBudget(1)
        withComputeThreads(budget) {
            XCTAssertEqual(computeThreads, 1)
            // Another thread keeps the process's count.
            let other = DispatchSemaphore(value: 0)
            final class Seen: @unchecked Sendable { var count = 0 }
            let seen = Seen()
            Thread.detachNewThread {
                seen.count = computeThreads
                other.signal()
            }
            other.wait()
            XCTAssertEqual(seen.count, 2)
            budget.count = 2
            XCTAssertEqual(computeThreads, 2, "a change reaches the running computation")
            withComputeThreads(ComputeBudget(1)) { XCTAssertEqual(computeThreads, 1) }
            XCTAssertEqual(computeThreads, 2, "the outer budget is back after a nested one")
            budget.count = 0
            XCTAssertEqual(computeThreads, 1, "never below one")
        }
        XCTAssertEqual(computeThreads, 2)
    }
}
