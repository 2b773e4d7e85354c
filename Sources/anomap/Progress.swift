import Batch
import Detection
import Foundation

/// Progress on stderr: a redrawn bar with rate and ETA on a terminal, a plain line every few
/// seconds otherwise (logs, CI), nothing with --quiet.
final class ProgressReporter {
    let quiet: Bool
    let terminal = isatty(fileno(stderr)) != 0
    var phaseStart = Date()
    var phase = ""
    var lastDraw = Date.distantPast

    init(quiet: Bool) { self.quiet = quiet }

    var handler: ProgressHandler {
        { [self] phase, done, total in update(phase, done, total) }
    }

    func update(_ name: String, _ done: Int, _ total: Int) {
        guard !quiet else { return }
        let now = Date()
        // A parenthesized suffix is a detail (e.g. the current loss), not a new phase.
        let key = name.components(separatedBy: " (")[0]
        if key != phase {
            phase = key
            phaseStart = now
            lastDraw = .distantPast
        }
        let finished = done >= total
        let interval = terminal ? 0.1 : 5.0
        guard finished || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let elapsed = now.timeIntervalSince(phaseStart)
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let text = String(format: "%@ %d/%d  %.1f/s  ETA %@", name, done, total, rate, clock(eta))
        if terminal {
            let width = 24
            let filled = total > 0 ? width * done / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            fputs("\r[\(bar)] \(text)\u{1B}[K" + (finished ? "\n" : ""), stderr)
        } else {
            fputs(text + "\n", stderr)
        }
    }

    func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
