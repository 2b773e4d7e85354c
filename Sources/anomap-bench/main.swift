// `make bench`: speed of the foundation, medians of repeated runs, printed as one table.
import Dispatch
import Foundation
import Imaging
import Models
import Pipeline
import Tensors

let environment = ProcessInfo.processInfo.environment
let threads = Int(environment["ANOMAP_THREADS"] ?? "") ?? 2
setComputeThreads(threads)
// Run from the checkout root (as `make bench` does).
let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
let weights = environment["ANOMAP_BACKBONE"] ?? root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
let photo = root.appendingPathComponent("models/samples/china.jpg").path

func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8) ?? Data())
    exit(1)
}

/// Median milliseconds of `body` over repeated runs (after one warm-up), at least `minRuns`
/// runs and about `budget` seconds.
func measure(minRuns: Int = 15, budget: Double = 3, _ body: () throws -> Void) rethrows -> (median: Double, runs: Int) {
    try body()
    var times = [Double]()
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minRuns || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < budget {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        if times.count >= 2000 { break }
    }
    times.sort()
    return (times[times.count / 2], times.count)
}

var rows: [(String, String, String)] = []
func row(_ name: String, _ value: String, _ note: String = "") {
    rows.append((name, value, note))
    print(String(repeating: " ", count: 0) + "  \(name): \(value) \(note)")
}

guard let network = try? EfficientNetLite0(contentsOf: weights) else { fail("cannot load \(weights): run `make setup`") }
guard let sample = try? ImageCodec.read(contentsOf: photo) else { fail("cannot read \(photo): run `make samples`") }
print("anomap bench: \(threads) threads, release build, medians of repeated runs")

// Codecs: a 900x900 RGB photo (the sample photograph resampled), PNG and JPEG (quality 90).
let big = sample.resized(width: 900, height: 900, method: .bilinear)
guard let pngBytes = try? ImageCodec.encodePNG(big), let jpegBytes = try? ImageCodec.encodeJPEG(big, quality: 90) else {
    fail("encoding failed")
}
let png = try measure { _ = try ImageCodec.decode(pngBytes) }
row("PNG decode 900x900 RGB", String(format: "%.2f ms", png.median), "(\(pngBytes.count / 1024) KiB, \(png.runs) runs)")
let jpeg = try measure { _ = try ImageCodec.decode(jpegBytes) }
row("JPEG decode 900x900 RGB", String(format: "%.2f ms", jpeg.median), "(\(jpegBytes.count / 1024) KiB, \(jpeg.runs) runs)")

// Backbone at 256x256.
let input = Preprocessing.lite0Input(sample.resized(width: 256, height: 256, method: .area))
let s8 = measure { _ = network.features(input, stages: [.stride8]) }
row("Lite0 features to stride 8, 256x256", String(format: "%.2f ms", s8.median), "(batch 1, \(s8.runs) runs)")
let s16 = measure { _ = network.features(input, stages: [.stride16]) }
row("Lite0 features to stride 16, 256x256", String(format: "%.2f ms", s16.median), "(batch 1, \(s16.runs) runs)")
let full = measure { _ = network.logits(input) }
row("Lite0 classifier, 256x256, batch 1", String(format: "%.2f ms", full.median), "(\(full.runs) runs)")
let batch8 = Preprocessing.batch(Array(repeating: input, count: 8))
let full8 = measure(minRuns: 5) { _ = network.logits(batch8) }
row("Lite0 classifier, 256x256, batch 8", String(format: "%.2f ms/image", full8.median / 8), "(\(full8.runs) runs)")

// sgemm throughput on a square problem and on the shape of a typical 1x1 convolution.
for (m, n, k) in [(512, 512, 512), (96, 4096, 16)] {
    let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
    var c = [Float](repeating: 0, count: m * n)
    let t = measure {
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    sgemm(m: m, n: n, k: k, a: ap.baseAddress!, lda: k, b: bp.baseAddress!, ldb: n, c: cp.baseAddress!, ldc: n)
                }
            }
        }
    }
    let gflops = 2 * Double(m * n * k) / (t.median / 1000) / 1e9
    row("sgemm \(m)x\(n)x\(k)", String(format: "%.1f GFLOP/s", gflops), "(\(t.runs) runs)")
}

print("")
print("| measurement | median | notes |")
print("|---|---|---|")
for (name, value, note) in rows { print("| \(name) | \(value) | \(note.trimmingCharacters(in: CharacterSet(charactersIn: "()"))) |") }
