import Dispatch
import Tensors

/// Data-parallel work on one batch over two threads: the first half of `batch` (rounded up)
/// goes to `work(0, ...)`, the rest to `work(1, ...)`, each into its own copy of `initial`.
/// The halves are fixed by position, so what each thread adds up, and in which order, does
/// not depend on timing: the sums are the same bytes on every run.
func inTwoHalves<Partial>(
    _ batch: [Int], starting initial: Partial,
    _ work: @Sendable (_ half: Int, _ images: [Int], _ partial: UnsafeMutablePointer<Partial>) -> Void
) -> [Partial] {
    let halves = [Array(batch.prefix((batch.count + 1) / 2)), Array(batch.dropFirst((batch.count + 1) / 2))]
    var partials = [initial, initial]
    partials.withUnsafeMutableBufferPointer { buffer in
        let out = UnsafeSendable(buffer.baseAddress)
        DispatchQueue.concurrentPerform(iterations: 2) { half in
            guard let slot = out.pointer?.advanced(by: half) else { return }
            work(half, halves[half], slot)
        }
    }
    return partials
}
