import Batch
import Detection
import Foundation
import Imaging
import Models
import SafeFiles
import Tensors
import XCTest

/// The `gan` component end to end on the synthetic parts: both phases train deterministically
/// on two threads, the bundle round trip keeps its map, and its discriminator finds the defects.
final class AdversarialComponentTests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    func settings(seed: UInt64) -> DetectorSettings {
        var s = DetectorSettings()
        s.inputSize = 128
        s.calibrationShare = 0.25
        s.components = [.gan]
        s.seed = seed
        s.learning.batchSize = 4
        // 12 training images: each epoch passes over them 54 times (640 images at least).
        s.learning.ganEpochs = 2
        s.learning.ganOldEpoch = 1
        s.learning.ganDiscriminatorEpochs = 1
        s.learning.ganLatentChannels = 8
        s.learning.ganDiscriminatorWidth = 64
        return s
    }

    func testAdversarialComponentIsDeterministicRoundTripsAndFindsDefects() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(DetectorTests.dataset)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gan-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files = [String](), detectors = [Detector]()
        for (i, seed) in [UInt64(1), 1, 2].enumerated() {
            let (detector, _) = try Trainer.train(
                paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: settings(seed: seed))
            let path = dir.appendingPathComponent("m\(i).safetensors").path
            try ModelBundle.write(detector, to: path)
            files.append(path)
            detectors.append(detector)
        }
        let bytes = try files.map { try readFile($0) }
        XCTAssertEqual(bytes[0], bytes[1], "same seed, different bytes")
        XCTAssertNotEqual(bytes[0], bytes[2], "different seeds gave identical models")

        let loaded = try ModelBundle.read(files[0], extractor: extractor, backboneSHA256: sha)
        let image = try ImageCodec.read(contentsOf: set.items[0].path)
        XCTAssertEqual(loaded.analyze(image).map, detectors[0].analyze(image).map)
        let model = try XCTUnwrap(loaded.component(AdversarialComponent.self)?.model)
        XCTAssertEqual(model.mapSource, .combined)
        // Its non-default hyper-parameters are stored (a model without `gan` leaves them out).
        XCTAssertEqual(loaded.settings.learning, detectors[0].settings.learning)
        XCTAssertEqual(loaded.settings.learning.ganDiscriminatorWidth, 64)
        XCTAssertGreaterThan(model.residualScale, 0)

        // The component alone separates defective from good parts and points at the defects.
        let result = Evaluator.evaluate(loaded, on: set)
        XCTAssertGreaterThanOrEqual(result.overall.image_auroc ?? 0, 0.9)
        XCTAssertGreaterThanOrEqual(result.overall.pixel_auroc ?? 0, 0.9)
    }

    /// A gan bundle written before the generator had its own learning rate trained it at the
    /// discriminator's and reads back so; settings without any gan field take the defaults.
    func testGeneratorLearningRateOfOlderBundles() throws {
        var old = LearningSettings()
        old.ganLearningRate = 2e-4
        let encoded = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(old)) as? [String: Any])
        var before = encoded
        before.removeValue(forKey: "ganGeneratorLearningRate")
        let decoded = try JSONDecoder().decode(
            LearningSettings.self, from: JSONSerialization.data(withJSONObject: before))
        XCTAssertEqual(decoded.ganGeneratorLearningRate, 2e-4)
        XCTAssertEqual(decoded.ganLearningRate, 2e-4)
        let withoutGan = encoded.filter { !$0.key.hasPrefix("gan") }
        let plain = try JSONDecoder().decode(
            LearningSettings.self, from: JSONSerialization.data(withJSONObject: withoutGan))
        XCTAssertEqual(plain, LearningSettings())
        XCTAssertEqual(try JSONDecoder().decode(LearningSettings.self, from: JSONEncoder().encode(old)), old)
    }

    func testSettingsRefuseAnOldEpochOutsidePhaseOne() {
        var s = settings(seed: 1)
        s.learning.ganOldEpoch = 3
        XCTAssertNotNil(AdversarialComponent.refusal(for: s))
        s.learning.ganOldEpoch = 2
        XCTAssertNil(AdversarialComponent.refusal(for: s))
    }
}
