import Dispatch
import Foundation

/// Turns SIGINT and SIGTERM into a flag the batch loop checks between images, so the image
/// being processed is finished and everything written stays complete.
final class Interruption: @unchecked Sendable {
    private let lock = NSLock()
    private var signalNumber: Int32 = 0
    private var sources: [DispatchSourceSignal] = []

    /// Starts listening; the default actions are ignored while this object lives.
    init() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [weak self] in self?.record(sig) }
            source.resume()
            sources.append(source)
        }
    }

    private func record(_ sig: Int32) {
        lock.lock()
        if signalNumber == 0 { signalNumber = sig }
        lock.unlock()
    }

    /// The first signal received, or nil.
    var received: Int32? {
        lock.lock()
        defer { lock.unlock() }
        return signalNumber == 0 ? nil : signalNumber
    }
}
