import Foundation
import Models
import NeuralNet
import SafeFiles
import Tensors

/// Reading and writing a trained detector as one `.safetensors` file: the bank as a tensor,
/// everything else in the JSON `__metadata__`.
public enum ModelBundle {
    /// Bundle format version this build writes and reads.
    public static let formatVersion = "1"
    /// The only method so far.
    public static let method = "patchcore"

    /// Writes a detector atomically.
    public static func write(_ detector: Detector, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String { String(decoding: try encoder.encode(value), as: UTF8.self) }
        let file = SafeTensors(tensors: ["bank": detector.bank.entries], metadata: [
            "anomap_format_version": formatVersion,
            "method": method,
            "input_size": String(detector.settings.inputSize),
            "backbone": "efficientnet-lite0",
            "backbone_sha256": detector.backboneSHA256,
            "settings": try json(detector.settings),
            "normalization": try json(detector.normalization),
            "threshold": String(detector.threshold),
        ])
        do {
            try file.write(to: path)
        } catch {
            throw PipelineError.output("cannot write model: \(error)")
        }
    }

    /// Reads a bundle and checks it against the backbone it will run with.
    public static func read(_ path: String, extractor: PatchFeatureExtractor, backboneSHA256: String) throws -> Detector {
        let file: SafeTensors
        do {
            file = try SafeTensors.read(contentsOf: path)
        } catch {
            throw PipelineError.model("\(error)")
        }
        func fail(_ reason: String) -> PipelineError { .model("\(path): \(reason)") }
        let meta = file.metadata
        guard let version = meta["anomap_format_version"] else {
            throw fail("not an anomap model (no anomap_format_version in its metadata)")
        }
        guard version == formatVersion else {
            throw fail("model format version \(version) is not supported by this anomap (reads version \(formatVersion)); retrain with `anomap train`")
        }
        guard meta["method"] == method else { throw fail("unknown method \(meta["method"] ?? "none")") }
        guard meta["backbone_sha256"] == backboneSHA256 else {
            throw fail("trained with a different backbone (sha256 \(meta["backbone_sha256"] ?? "none"), this one is \(backboneSHA256)); retrain or pass the matching --backbone")
        }
        let decoder = JSONDecoder()
        guard let settingsText = meta["settings"], let settings = try? decoder.decode(DetectorSettings.self, from: Data(settingsText.utf8)),
              let normText = meta["normalization"], let normalization = try? decoder.decode(Normalization.self, from: Data(normText.utf8)),
              let thresholdText = meta["threshold"], let threshold = Float(thresholdText) else {
            throw fail("metadata is incomplete or malformed")
        }
        guard (32...1024).contains(settings.inputSize), settings.inputSize % 8 == 0 else {
            throw fail("input size \(settings.inputSize) is out of range")
        }
        guard let bank = file.tensors["bank"], bank.shape.count == 2, bank.shape[0] > 0,
              bank.shape[1] == settings.embeddingDimension else {
            throw fail("bank tensor is missing or has the wrong shape")
        }
        guard bank.storage.allSatisfy({ $0.isFinite }) else { throw fail("bank holds non-finite values") }
        return Detector(extractor: extractor, bank: PatchMemoryBank(entries: bank), settings: settings,
                        normalization: normalization, threshold: threshold, backboneSHA256: backboneSHA256)
    }
}
