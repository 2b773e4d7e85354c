import Batch
import Detection
import Foundation
import FuzzSupport
import Models
import NeuralNet
import SafeFiles

/// The real backbone, loaded once: the loader checks a bundle against its checksum.
let backbone: (extractor: PatchFeatureExtractor, sha256: String)? = {
    let path = ProcessInfo.processInfo.environment["ANOMAP_BACKBONE"] ?? "models/efficientnet-lite0.safetensors"
    guard let network = try? EfficientNetLite0(contentsOf: path), let bytes = FileManager.default.contents(atPath: path)
    else {
        return nil
    }
    return (PatchFeatureExtractor(backbone: network), sha256Hex(Array(bytes)))
}()

/// libFuzzer entry: bytes through the model-bundle loader (safetensors header, metadata JSON,
/// settings, tensor shapes). Loading must end in a detector or a `PipelineError`.
let fuzzModelBundle: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt = { data, count in
    guard let backbone else { fatalError("set ANOMAP_BACKBONE to the EfficientNet-Lite0 weights (make setup)") }
    let bytes = fuzzBytes(data, count)
    _ = try? ModelBundle.decode(
        bytes, path: "fuzz.safetensors", extractor: backbone.extractor, backboneSHA256: backbone.sha256)
    // A mutated file almost never keeps a valid content checksum, so also load it with its
    // checksum recomputed: that reaches the metadata, settings and shape checks behind it.
    if var file = try? SafeTensors.decode(bytes), file.metadata["tensors_sha256"] != nil {
        file.metadata["tensors_sha256"] = ModelBundle.contentDigest(file)
        if let sealed = try? file.encoded() {
            _ = try? ModelBundle.decode(
                sealed, path: "fuzz.safetensors", extractor: backbone.extractor, backboneSHA256: backbone.sha256)
        }
    }
    return 0
}

/// The executable's entry point (see FuzzSupport).
@_cdecl("FuzzModelBundle_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runFuzzer(argc, argv, fuzzModelBundle)
}
