import Dispatch
import Foundation
import Models
import Tensors

/// `anomap-bench --peers`: the anomap side of `make bench-peers` (Scripts/bench_peers.py), a
/// line protocol on stdin/stdout so that the Python driver can interleave anomap with the
/// other engines in one run while each keeps its own warm process:
///
///     input PATH N      load N raw float32 images (N, 3, 256, 256) from PATH -> "ok"
///     run CUT PATH      write CUT's output as raw float32 to PATH -> "ok SHAPE"
///     time CUT COUNT    run CUT COUNT times -> "ms T1 T2 ..." (one time per run)
///     quit
///
/// CUT is `s8` (features to stride 8), `s16` (to stride 16) or `full` (classifier logits).
func servePeers(_ network: EfficientNetLite0) -> Never {
    var input = Tensor(shape: [1, 3, 256, 256])
    func reply(_ line: String) {
        FileHandle.standardOutput.write((line + "\n").data(using: .utf8) ?? Data())
    }
    func output(_ cut: String) -> Tensor? {
        switch cut {
        case "s8": return network.features(input, stages: [.stride8])[.stride8]
        case "s16": return network.features(input, stages: [.stride16])[.stride16]
        case "full": return network.logits(input)
        default: return nil
        }
    }
    while let line = readLine() {
        let words = line.split(separator: " ").map(String.init)
        switch (words.first, words.count) {
        case ("input", 3):
            guard let n = Int(words[2]), n > 0, let data = FileManager.default.contents(atPath: words[1]),
                data.count == n * 3 * 256 * 256 * 4
            else {
                reply("error: cannot read \(words[2]) images from \(words[1])")
                continue
            }
            let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            input = Tensor(shape: [n, 3, 256, 256], storage: values)
            reply("ok")
        case ("run", 3):
            guard let out = output(words[1]) else {
                reply("error: unknown cut \(words[1])")
                continue
            }
            let data = out.storage.withUnsafeBufferPointer { Data(buffer: $0) }
            guard FileManager.default.createFile(atPath: words[2], contents: data) else {
                reply("error: cannot write \(words[2])")
                continue
            }
            reply("ok " + out.shape.map(String.init).joined(separator: ","))
        case ("time", 3):
            guard let count = Int(words[2]), count > 0, output(words[1]) != nil else {
                reply("error: usage: time s8|s16|full COUNT")
                continue
            }
            var times = [String]()
            for _ in 0..<count {
                let t0 = DispatchTime.now().uptimeNanoseconds
                _ = output(words[1])
                times.append(String(format: "%.4f", Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6))
            }
            reply("ms " + times.joined(separator: " "))
        case ("quit", _): exit(0)
        default: reply("error: unknown command \(line)")
        }
    }
    exit(0)
}
