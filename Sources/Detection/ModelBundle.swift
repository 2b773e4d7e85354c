import Foundation
import Models
import NeuralNet
import SafeFiles
import Tensors

/// Reading and writing a trained detector as one `.safetensors` file: each component's tensors
/// under its own stable keys, the positional statistics under `position.<component>.*`, and
/// settings, calibration and threshold in the JSON `__metadata__`.
public enum ModelBundle {
    /// Bundle format version this build writes and reads.
    public static let formatVersion = "1"
    /// The method name every bundle carries (the name of the first detector, kept for compatibility).
    public static let method = "patchcore"

    /// Writes a detector atomically.
    public static func write(_ detector: Detector, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ value: T) throws -> String {
            String(decoding: try encoder.encode(value), as: UTF8.self)
        }
        var tensors = [String: Tensor]()
        // Components may share tensors (the students' and the autoencoder's teacher standardization).
        for component in detector.components { tensors.merge(component.tensors) { a, _ in a } }
        for (component, statistics) in detector.positional {
            tensors["position.\(component.rawValue).mean"] = Tensor(
                shape: [statistics.mean.count], storage: statistics.mean)
            tensors["position.\(component.rawValue).scale"] = Tensor(
                shape: [statistics.scale.count], storage: statistics.scale)
        }
        if let shift = detector.shift {
            for d in shift.detectors { tensors.merge(d.tensors) { a, _ in a } }
            tensors["shift.mean"] = Tensor(shape: [shift.mean.count], storage: shift.mean)
            tensors["shift.scale"] = Tensor(shape: [shift.scale.count], storage: shift.scale)
        }
        var file = SafeTensors(
            tensors: tensors,
            metadata: [
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
        if let shift = detector.shift {
            file.metadata["shift"] = try json(
                ShiftMetadata(
                    detectors: shift.detectors.map { type(of: $0).name }, calibration: shift.calibration,
                    primary: type(of: shift.detectors[shift.primary]).name))
        }
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
        var hasher = SHA256Hasher()
        for name in file.tensors.keys.sorted() {
            guard let t = file.tensors[name] else { continue }
            Array("\(name)\(t.shape)".utf8).withUnsafeBytes { hasher.update($0) }
            t.storage.withUnsafeBytes { hasher.update($0) }
        }
        return hasher.hex
    }

    /// Reads a bundle and checks it against the backbone it will run with.
    public static func read(_ path: String, extractor: PatchFeatureExtractor, backboneSHA256: String) throws -> Detector
    {
        let file: SafeTensors
        do {
            file = try SafeTensors.read(contentsOf: path)
        } catch {
            throw PipelineError.model("\(error)")
        }
        return try detector(from: file, path: path, extractor: extractor, backboneSHA256: backboneSHA256)
    }

    /// Reads a model bundle from bytes (`path` names it in errors); checks as `read` does.
    public static func decode(
        _ bytes: [UInt8], path: String = "<memory>", extractor: PatchFeatureExtractor,
        backboneSHA256: String
    ) throws -> Detector {
        let file: SafeTensors
        do {
            file = try SafeTensors.decode(bytes, path: path)
        } catch {
            throw PipelineError.model("\(error)")
        }
        return try detector(from: file, path: path, extractor: extractor, backboneSHA256: backboneSHA256)
    }

    static func detector(
        from file: SafeTensors, path: String, extractor: PatchFeatureExtractor,
        backboneSHA256: String
    ) throws -> Detector {
        func fail(_ reason: String) -> PipelineError { .model("\(path): \(reason)") }
        let meta = file.metadata
        guard let version = meta["anomap_format_version"] else {
            throw fail("not an anomap model (no anomap_format_version in its metadata)")
        }
        guard version == formatVersion else {
            throw fail(
                "model format version \(version) is not supported by this anomap (reads version \(formatVersion)); retrain with `anomap train`"
            )
        }
        guard let digest = meta["tensors_sha256"] else {
            throw fail("has no tensors_sha256 (written by an older anomap); retrain with `anomap train`")
        }
        guard digest == contentDigest(file) else {
            throw fail("contents do not match their checksum (the file is damaged); retrain or restore it")
        }
        guard meta["method"] == method else { throw fail("unknown method \(meta["method"] ?? "none")") }
        guard meta["backbone_sha256"] == backboneSHA256 else {
            throw fail(
                "trained with a different backbone (sha256 \(meta["backbone_sha256"] ?? "none"), this one is \(backboneSHA256)); retrain or pass the matching --backbone"
            )
        }
        let decoder = JSONDecoder()
        guard let settingsText = meta["settings"],
            let settings = try? decoder.decode(DetectorSettings.self, from: Data(settingsText.utf8)),
            let normText = meta["normalization"],
            let normalization = try? decoder.decode(Normalization.self, from: Data(normText.utf8)),
            let thresholdText = meta["threshold"], let threshold = Float(thresholdText),
            let componentText = meta["component_normalizations"],
            let componentNormalizations = try? decoder.decode([Normalization].self, from: Data(componentText.utf8)),
            componentNormalizations.count == settings.components.count, !settings.components.isEmpty,
            settings.scoreComponents.allSatisfy(settings.components.contains)
        else {
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
        for component in settings.components {
            if let reason = component.type.refusal(for: settings) { throw fail("settings cannot work: \(reason)") }
        }
        if let reason = settings.resolutionRefusal { throw fail("settings cannot work: \(reason)") }
        guard settings.blurSigma.isFinite, (0...64).contains(settings.blurSigma), settings.wideBlurSigma.isFinite,
            (0...64).contains(settings.wideBlurSigma), settings.positionWeight.isFinite,
            settings.positionWeight >= 0
        else {
            throw fail("settings are out of range")
        }
        guard file.tensors.values.allSatisfy({ $0.storage.allSatisfy { $0.isFinite } }) else {
            throw fail("holds non-finite values")
        }
        let contents = BundleContents(tensors: file.tensors)
        let components: [any ScoringComponent]
        do {
            components = try settings.components.map { try $0.type.load(contents, settings: settings) }
        } catch let error as BundleError {
            throw fail(error.reason)
        }
        var positional = [Component: PositionalStandardization]()
        for component in settings.components where component.isLearned && settings.learning.positionalNormalization {
            let (h, w) = settings.featureGrid
            guard let mean = file.tensors["position.\(component.rawValue).mean"],
                let scale = file.tensors["position.\(component.rawValue).scale"],
                mean.count == h * w, scale.count == h * w, scale.storage.allSatisfy({ $0 > 0 })
            else {
                throw fail("positional statistics of \(component.rawValue) are missing or malformed")
            }
            positional[component] = PositionalStandardization(mean: mean.storage, scale: scale.storage)
        }
        return Detector(
            extractor: extractor, components: components, positional: positional,
            componentNormalizations: componentNormalizations, settings: settings,
            normalization: normalization, scoreNormalization: scoreNormalization, threshold: threshold,
            backboneSHA256: backboneSHA256, shift: try meta["shift"].map { try shiftModel($0, file.tensors, fail) })
    }

    /// What the metadata says of the shift detectors (their tensors hold the rest).
    struct ShiftMetadata: Codable {
        var detectors: [String]
        var calibration: [ShiftCalibration]
        var primary: String
    }

    /// The shift detectors of a bundle whose metadata has a `shift` entry.
    static func shiftModel(
        _ text: String, _ tensors: [String: Tensor], _ fail: (String) -> PipelineError
    ) throws -> ShiftModel {
        guard let meta = try? JSONDecoder().decode(ShiftMetadata.self, from: Data(text.utf8)),
            meta.detectors.count == meta.calibration.count,
            let primary = meta.detectors.firstIndex(of: meta.primary),
            let mean = tensors["shift.mean"], let scale = tensors["shift.scale"], mean.count == scale.count,
            mean.count > 0, scale.storage.allSatisfy({ $0 > 0 })
        else { throw fail("shift detector metadata is malformed") }
        var detectors = [any ShiftDetector]()
        for name in meta.detectors {
            guard let type = ShiftRegistry.type(named: name) else {
                throw fail("shift detector \(name) is not known to this anomap")
            }
            do {
                detectors.append(try type.load(tensors, dimension: mean.count))
            } catch let error as BundleError {
                throw fail(error.reason)
            }
        }
        return ShiftModel(
            mean: mean.storage, scale: scale.storage, detectors: detectors, calibration: meta.calibration,
            primary: primary)
    }
}
