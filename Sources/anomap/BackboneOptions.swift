import ArgumentParser
import Dispatch
import Foundation
import Models
import NeuralNet
import SafeFiles
import Tensors

/// Where to find the pretrained EfficientNet-Lite0 weights.
struct BackboneOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Path to efficientnet-lite0.safetensors (default: $ANOMAP_BACKBONE, ./models/, or models/ next to the checkout of the executable).",
            valueName: "file"))
    var backbone: String?

    /// Candidate paths in order of preference.
    func candidates() -> [String] {
        if let backbone { return [backbone] }
        var list = [String]()
        if let env = ProcessInfo.processInfo.environment["ANOMAP_BACKBONE"], !env.isEmpty { list.append(env) }
        list.append("models/efficientnet-lite0.safetensors")
        // .build/<config>/anomap, .build/<triple>/<config>/anomap or .build/<sanitizer>/<triple>/<config>/anomap -> checkout root
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 {
            list.append(dir.appendingPathComponent("models/efficientnet-lite0.safetensors").path)
            dir = dir.deletingLastPathComponent()
        }
        return list
    }

    func validate() throws {
        if let backbone, !FileManager.default.fileExists(atPath: backbone) {
            throw ValidationError("backbone weights not found: \(backbone)")
        }
    }

    /// Loads the network from the first existing candidate.
    func load() throws -> EfficientNetLite0 { try loadWithChecksum().network }

    /// Loads the network and the sha256 of its weights file (model bundles are tied to it).
    func loadWithChecksum() throws -> (network: EfficientNetLite0, sha256: String) {
        guard let path = candidates().first(where: { FileManager.default.fileExists(atPath: $0) }) else {
            throw CLIError.usage(
                "EfficientNet-Lite0 weights not found (looked in: \(candidates().joined(separator: ", "))). Run `make setup` in the anomap checkout, or pass --backbone FILE."
            )
        }
        let bytes: [UInt8]
        do {
            bytes = try readFile(path, maxBytes: 256 << 20)
        } catch {
            throw CLIError.usage("\(error)")
        }
        // The checksum on one core while the network is built on the other (about 12 ms each).
        var sha256 = "", built: Result<EfficientNetLite0, Error> = .failure(CLIError.usage("\(path): not read"))
        withUnsafeMutablePointer(to: &sha256) { digest in
            withUnsafeMutablePointer(to: &built) { network in
                let (digest, network) = (UnsafeSendable(digest), UnsafeSendable(network))
                DispatchQueue.concurrentPerform(iterations: 2) { job in
                    if job == 0 {
                        digest.pointer.pointee = sha256Hex(bytes)
                    } else {
                        network.pointer.pointee = Result {
                            try EfficientNetLite0(checkpoint: try SafeTensors.decode(bytes, path: path), path: path)
                        }
                    }
                }
            }
        }
        return (try built.get(), sha256)
    }
}

/// Errors the CLI reports on one line with an exit code.
enum CLIError: Error, CustomStringConvertible {
    /// Bad invocation or missing prerequisite: exit 2.
    case usage(String)

    var description: String {
        switch self {
        case .usage(let m): return m
        }
    }
}
