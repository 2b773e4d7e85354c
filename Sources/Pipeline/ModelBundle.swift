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
        var tensors = [String: Tensor]()
        if let bank = detector.bank { tensors["bank"] = bank.entries }
        if let g = detector.gaussian {
            tensors["gaussian.mean"] = g.mean
            tensors["gaussian.precision"] = g.precision
            tensors["gaussian.channels"] = Tensor(shape: [g.channels.count], storage: g.channels.map { Float($0) })
        }
        let standardization = detector.students?.standardization ?? detector.autoencoder?.standardization
        if let st = standardization {
            tensors["teacher.mean"] = Tensor(shape: [st.mean.count], storage: st.mean)
            tensors["teacher.scale"] = Tensor(shape: [st.scale.count], storage: st.scale)
        }
        for (k, student) in (detector.students?.students ?? []).enumerated() {
            tensors.merge(student.namedTensors(prefix: "student.\(k)")) { a, _ in a }
        }
        if let ae = detector.autoencoder {
            tensors.merge(ae.encoder.namedTensors(prefix: "ae.encoder")) { a, _ in a }
            tensors.merge(ae.decoder.namedTensors(prefix: "ae.decoder")) { a, _ in a }
            tensors["ae.memory"] = ae.memory
        }
        for (component, statistics) in detector.positional {
            tensors["position.\(component.rawValue).mean"] = Tensor(shape: [statistics.mean.count], storage: statistics.mean)
            tensors["position.\(component.rawValue).scale"] = Tensor(shape: [statistics.scale.count], storage: statistics.scale)
        }
        var file = SafeTensors(tensors: tensors, metadata: [
            "anomap_format_version": formatVersion,
            "method": method,
            "input_size": String(detector.settings.inputSize),
            "backbone": "efficientnet-lite0",
            "backbone_sha256": detector.backboneSHA256,
            "settings": try json(detector.settings),
            "normalization": try json(detector.normalization),
            "score_normalization": try json(detector.scoreNormalization),
            "component_normalizations": try json(detector.componentNormalizations),
            "threshold": String(detector.threshold),
        ])
        file.metadata["tensors_sha256"] = contentDigest(file)
        do {
            try file.write(to: path)
        } catch {
            throw PipelineError.output("cannot write model: \(error)")
        }
    }

    /// The `tensors_sha256` a bundle stores: sha256 over every tensor's name, shape and bytes in
    /// name order; a bit flipped anywhere in the numbers (which the safetensors framing cannot
    /// notice) changes it.
    public static func contentDigest(_ file: SafeTensors) -> String {
        var bytes = [UInt8]()
        for name in file.tensors.keys.sorted() {
            guard let t = file.tensors[name] else { continue }
            bytes += Array("\(name)\(t.shape)".utf8)
            t.storage.withUnsafeBytes { bytes += $0 }
        }
        return sha256Hex(bytes)
    }

    /// Reads a bundle and checks it against the backbone it will run with.
    public static func read(_ path: String, extractor: PatchFeatureExtractor, backboneSHA256: String) throws -> Detector {
        let file: SafeTensors
        do {
            file = try SafeTensors.read(contentsOf: path)
        } catch {
            throw PipelineError.model("\(error)")
        }
        return try detector(from: file, path: path, extractor: extractor, backboneSHA256: backboneSHA256)
    }

    /// Reads a model bundle from bytes (`path` names it in errors); checks as `read` does.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>", extractor: PatchFeatureExtractor,
                              backboneSHA256: String) throws -> Detector {
        let file: SafeTensors
        do {
            file = try SafeTensors.decode(bytes, path: path)
        } catch {
            throw PipelineError.model("\(error)")
        }
        return try detector(from: file, path: path, extractor: extractor, backboneSHA256: backboneSHA256)
    }

    static func detector(from file: SafeTensors, path: String, extractor: PatchFeatureExtractor,
                         backboneSHA256: String) throws -> Detector {
        func fail(_ reason: String) -> PipelineError { .model("\(path): \(reason)") }
        let meta = file.metadata
        guard let version = meta["anomap_format_version"] else {
            throw fail("not an anomap model (no anomap_format_version in its metadata)")
        }
        guard version == formatVersion else {
            throw fail("model format version \(version) is not supported by this anomap (reads version \(formatVersion)); retrain with `anomap train`")
        }
        guard let digest = meta["tensors_sha256"] else {
            throw fail("has no tensors_sha256 (written by an older anomap); retrain with `anomap train`")
        }
        guard digest == contentDigest(file) else {
            throw fail("contents do not match their checksum (the file is damaged); retrain or restore it")
        }
        guard meta["method"] == method else { throw fail("unknown method \(meta["method"] ?? "none")") }
        guard meta["backbone_sha256"] == backboneSHA256 else {
            throw fail("trained with a different backbone (sha256 \(meta["backbone_sha256"] ?? "none"), this one is \(backboneSHA256)); retrain or pass the matching --backbone")
        }
        let decoder = JSONDecoder()
        guard let settingsText = meta["settings"], let settings = try? decoder.decode(DetectorSettings.self, from: Data(settingsText.utf8)),
              let normText = meta["normalization"], let normalization = try? decoder.decode(Normalization.self, from: Data(normText.utf8)),
              let thresholdText = meta["threshold"], let threshold = Float(thresholdText),
              let componentText = meta["component_normalizations"],
              let componentNormalizations = try? decoder.decode([Normalization].self, from: Data(componentText.utf8)),
              componentNormalizations.count == settings.components.count, !settings.components.isEmpty,
              settings.scoreComponents.allSatisfy(settings.components.contains) else {
            throw fail("metadata is incomplete or malformed")
        }
        let scoreNormalization = try meta["score_normalization"].map {
            guard let value = try? decoder.decode(Normalization.self, from: Data($0.utf8)) else {
                throw fail("score_normalization is malformed")
            }
            return value
        }
        guard (32...1024).contains(settings.inputSize), settings.inputSize % 8 == 0 else {
            throw fail("input size \(settings.inputSize) is out of range")
        }
        if settings.components.contains(.gaussian) && settings.keepsAspectRatio {
            throw fail("settings combine the gaussian component with aspect-preserving input, which cannot work")
        }
        guard settings.blurSigma.isFinite, (0...64).contains(settings.blurSigma), settings.wideBlurSigma.isFinite,
              (0...64).contains(settings.wideBlurSigma), settings.positionWeight.isFinite,
              settings.positionWeight >= 0 else {
            throw fail("settings are out of range")
        }
        guard file.tensors.values.allSatisfy({ $0.storage.allSatisfy { $0.isFinite } }) else {
            throw fail("holds non-finite values")
        }
        var bank: PatchMemoryBank?
        if settings.components.contains(.knn) {
            guard let entries = file.tensors["bank"], entries.shape.count == 2, entries.shape[0] > 0,
                  entries.shape[1] == settings.embeddingDimension else {
                throw fail("bank tensor is missing or has the wrong shape")
            }
            bank = PatchMemoryBank(entries: entries)
        }
        var gaussian: PositionalGaussian?
        if settings.components.contains(.gaussian) {
            let (h, w) = settings.featureGrid
            guard let channels = file.tensors["gaussian.channels"], let mean = file.tensors["gaussian.mean"],
                  let precision = file.tensors["gaussian.precision"] else { throw fail("Gaussian tensors are missing") }
            let list = channels.storage.map { Int($0) }
            let d = list.count
            guard d > 0, list.allSatisfy({ (0..<PatchFeatureExtractor.dimension).contains($0) }),
                  mean.shape == [h * w, d], precision.shape == [h * w, PositionalGaussian.packedCount(d)] else {
                throw fail("Gaussian tensors have the wrong shape")
            }
            gaussian = PositionalGaussian(channels: list, mean: mean, precision: precision, height: h, width: w)
        }
        var students: StudentEnsemble?, autoencoder: MemoryAutoencoder?
        if settings.components.contains(where: \.isLearned) {
            let d = PatchFeatureExtractor.dimension
            let learning = settings.learning
            guard let mean = file.tensors["teacher.mean"], let scale = file.tensors["teacher.scale"], mean.count == d,
                  scale.count == d, scale.storage.allSatisfy({ $0 > 0 }) else {
                throw fail("teacher standardization tensors are missing or malformed")
            }
            let standardization = FeatureStandardization(mean: mean.storage, scale: scale.storage)
            if settings.components.contains(where: \.usesStudents) {
                guard (1...16).contains(learning.students), learning.studentWidth >= 4, learning.studentWidth % 4 == 0 else {
                    throw fail("student settings are out of range")
                }
                var list = [StudentNetwork]()
                for k in 0..<learning.students {
                    guard let s = StudentNetwork(width: learning.studentWidth, outChannels: d, tensors: file.tensors,
                                                 prefix: "student.\(k)") else {
                        throw fail("student \(k) tensors are missing or have the wrong shape")
                    }
                    list.append(s)
                }
                students = StudentEnsemble(students: list, standardization: standardization)
            }
            if settings.components.contains(.ae) {
                let l = learning.latentChannels
                guard l > 0, learning.memorySize > 0, learning.temperature > 0, learning.temperature.isFinite,
                      learning.shrinkage >= 0, learning.shrinkage.isFinite, settings.inputSize % 32 == 0,
                      let encoder = ConvStack(inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: l),
                                              tensors: file.tensors, prefix: "ae.encoder"),
                      let decoder = ConvStack(inChannels: l, specs: MemoryAutoencoder.decoderSpecs(latent: l, outChannels: d),
                                              tensors: file.tensors, prefix: "ae.decoder"),
                      let memory = file.tensors["ae.memory"], memory.shape == [learning.memorySize, l] else {
                    throw fail("autoencoder tensors or settings are missing or malformed")
                }
                autoencoder = MemoryAutoencoder(encoder: encoder, decoder: decoder, memory: memory,
                                                readout: MemoryReadout(temperature: learning.temperature, shrinkage: learning.shrinkage),
                                                standardization: standardization)
            }
        }
        var positional = [Component: PositionalStandardization]()
        for component in settings.components where component.isLearned && settings.learning.positionalNormalization {
            let (h, w) = settings.featureGrid
            guard let mean = file.tensors["position.\(component.rawValue).mean"], let scale = file.tensors["position.\(component.rawValue).scale"],
                  mean.count == h * w, scale.count == h * w, scale.storage.allSatisfy({ $0 > 0 }) else {
                throw fail("positional statistics of \(component.rawValue) are missing or malformed")
            }
            positional[component] = PositionalStandardization(mean: mean.storage, scale: scale.storage)
        }
        return Detector(extractor: extractor, bank: bank, gaussian: gaussian, students: students, autoencoder: autoencoder,
                        positional: positional, componentNormalizations: componentNormalizations, settings: settings,
                        normalization: normalization, scoreNormalization: scoreNormalization, threshold: threshold,
                        backboneSHA256: backboneSHA256)
    }
}
