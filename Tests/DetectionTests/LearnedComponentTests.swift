import Batch
import Detection
import Foundation
import Imaging
import Models
import SafeFiles
import Tensors
import XCTest

/// The learned components end to end on the synthetic parts: they train deterministically
/// (two students on two threads, the autoencoder's data-parallel halves), survive a bundle
/// round trip, and find the synthetic defects.
final class LearnedComponentTests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    func settings(seed: UInt64) -> DetectorSettings {
        var s = DetectorSettings()
        s.inputSize = 128
        s.calibrationShare = 0.25
        s.components = [.st, .variance, .ae]
        s.seed = seed
        s.learning.studentWidth = 32
        s.learning.studentEpochs = 40
        s.learning.autoencoderEpochs = 40
        s.learning.memorySize = 16
        s.learning.latentChannels = 16
        s.learning.batchSize = 4
        s.learning.positionalNormalization = true
        return s
    }

    func testLearnedComponentsAreDeterministicRoundTripAndFindDefects() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(DetectorTests.dataset)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("learned-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files = [String](), detectors = [Detector]()
        for (i, seed) in [UInt64(1), 1, 2].enumerated() {
            let (detector, _) = try Trainer.train(
                paths: set.trainingImages, extractor: extractor, backboneSHA256: sha,
                settings: settings(seed: seed))
            let path = dir.appendingPathComponent("m\(i).safetensors").path
            try ModelBundle.write(detector, to: path)
            files.append(path)
            detectors.append(detector)
        }
        let bytes = try files.map { try readFile($0) }
        XCTAssertEqual(bytes[0], bytes[1], "same seed, different bytes")
        XCTAssertNotEqual(bytes[0], bytes[2], "different seeds gave identical models")
        XCTAssertEqual(detectors[0].component(StudentDiscrepancyComponent.self)?.ensemble.students.count, 2)

        let loaded = try ModelBundle.read(files[0], extractor: extractor, backboneSHA256: sha)
        let image = try ImageCodec.read(contentsOf: set.items[0].path)
        XCTAssertEqual(loaded.analyze(image).map, detectors[0].analyze(image).map)

        // The student disagreement is a map of non-negative variances (alone it is a weak signal
        // on these parts; its use is measured on real data in the ablation).
        let input = loaded.settings.input(for: image)
        let raw = try XCTUnwrap(
            loaded.component(StudentVarianceComponent.self)?.ensemble.maps(
                input: input, teacher: extractor.embed(input)))
        XCTAssertTrue(raw.variance.allSatisfy { $0 >= 0 && $0.isFinite })
        XCTAssertEqual(loaded.positional.keys.sorted { $0.rawValue < $1.rawValue }, [.ae, .st, .variance])
        // The discrepancy and the residual alone separate defective from good parts and localize the defects.
        for component in [Component.st, .ae] {
            var single = loaded.settings
            single.components = [component]
            let one = Detector(
                extractor: extractor, components: loaded.components.filter { $0.name == component },
                componentNormalizations: [Normalization(normalLevel: 0, peakLevel: 1)],
                settings: single, normalization: Normalization(normalLevel: 0, peakLevel: 1), threshold: 1,
                backboneSHA256: sha)
            let result = Evaluator.evaluate(one, on: set)
            XCTAssertGreaterThanOrEqual(result.overall.image_auroc ?? 0, 0.95, "\(component)")
            XCTAssertGreaterThanOrEqual(result.overall.pixel_auroc ?? 0, 0.95, "\(component)")
        }
    }

    func testPositionalStandardizationUsesEachPositionsSpreadFlooredAtTheMedian() {
        // Position 0: values 1, 3 (mean 2, spread 1); position 1: 2, 6 (mean 4, spread 2).
        let s = PositionalStandardization(of: [[1, 2], [3, 6]])
        XCTAssertEqual(s.mean, [2, 4])
        XCTAssertEqual(s.scale, [1.5, 2])  // the median spread 1.5 floors position 0
        let out = s.apply([3, 6])
        XCTAssertEqual(out[0], 1 / 1.5, accuracy: 1e-6)
        XCTAssertEqual(out[1], 1, accuracy: 1e-6)
    }

    /// A small set is passed over several times per epoch, up to the cap, until an epoch has
    /// seen 640 images of 256x256 pixels; bundles from before the floor keep one pass.
    func testSmallTrainingSetsArePassedOverSeveralTimesPerEpoch() throws {
        var s = LearningSettings()
        XCTAssertEqual(s.passesPerEpoch(examples: 648, pixels: 256 * 256), 1)  // magnetic_tile
        XCTAssertEqual(s.passesPerEpoch(examples: 640, pixels: 256 * 256), 1)
        XCTAssertEqual(s.passesPerEpoch(examples: 639, pixels: 256 * 256), 2)
        XCTAssertEqual(s.passesPerEpoch(examples: 300, pixels: 256 * 256), 3)
        XCTAssertEqual(s.passesPerEpoch(examples: 25, pixels: 416 * 1024), 4)  // ceil(3.94)
        XCTAssertEqual(s.passesPerEpoch(examples: 12, pixels: 128 * 128), 4)  // capped
        XCTAssertEqual(s.passesPerEpoch(examples: 0, pixels: 0), 4)
        s.maximumEpochPasses = 1
        XCTAssertEqual(s.passesPerEpoch(examples: 12, pixels: 128 * 128), 1)
        // Encoded only when it is not 1; absent, it reads as 1 (one pass, as before).
        let plain = try JSONEncoder().encode(s)
        XCTAssertFalse(String(decoding: plain, as: UTF8.self).contains("maximumEpochPasses"))
        XCTAssertEqual(try JSONDecoder().decode(LearningSettings.self, from: Data("{}".utf8)).maximumEpochPasses, 1)
        s.maximumEpochPasses = 4
        let round = try JSONDecoder().decode(LearningSettings.self, from: try JSONEncoder().encode(s))
        XCTAssertEqual(round, s)
    }
}
