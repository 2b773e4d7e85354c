import Tensors
import XCTest

/// Algorithm R against its defining property: after a stream of n items, each item is in the
/// sample with probability capacity / n, and nothing is drawn before the sample is full.
final class ReservoirTests: XCTestCase {
    func testEveryItemIsKeptWithEqualProbability() {
        var g = SeededGenerator(seed: 3)
        let n = 10, capacity = 3, runs = 30_000
        var kept = [Int](repeating: 0, count: n)
        for _ in 0..<runs {
            var sample = [Int]()
            for item in 0..<n {
                guard let slot = g.reservoirSlot(seen: item, capacity: capacity) else { continue }
                if slot == sample.count { sample.append(item) } else { sample[slot] = item }
            }
            XCTAssertEqual(sample.count, capacity)
            for item in sample { kept[item] += 1 }
        }
        // Expected 9000 each; the binomial's standard deviation is about 79.
        for count in kept { XCTAssertEqual(Double(count), Double(runs * capacity / n), accuracy: 400) }
        var fresh = SeededGenerator(seed: 9), untouched = SeededGenerator(seed: 9)
        XCTAssertEqual(fresh.reservoirSlot(seen: 2, capacity: 3), 2)
        XCTAssertEqual(fresh.next(), untouched.next(), "no draw while there is room")
    }
}
