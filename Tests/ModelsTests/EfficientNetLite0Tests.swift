import Detection
import Imaging
import Models
import NeuralNet
import Tensors
import XCTest

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()
let weightsPath = root.appendingPathComponent("models/efficientnet-lite0.safetensors").path

func loadNetwork() throws -> EfficientNetLite0 {
    guard FileManager.default.fileExists(atPath: weightsPath) else {
        throw XCTSkip("pretrained weights missing at \(weightsPath): run `make setup` (make test does this)")
    }
    return try EfficientNetLite0(contentsOf: weightsPath)
}

final class EfficientNetLite0Tests: XCTestCase {
    override func setUp() { setComputeThreads(2) }

    /// The input Scripts/lite0_reference.py `fixture_input` builds, by the same integer formula.
    func fixtureInput(height h: Int = 64, width w: Int = 48) -> Tensor {
        var t = Tensor(shape: [1, 3, h, w])
        for c in 0..<3 {
            for y in 0..<h {
                for x in 0..<w {
                    t[0, c, y, x] = (Float((x * 7 + y * 13 + c * 29 + (x * y) % 17) % 256) - 127) / 128
                }
            }
        }
        return t
    }

    /// Stage outputs agree with the independent numpy implementation (float64, unfolded batch
    /// norm, per-tap convolution) within 1e-4 of each stage's largest magnitude.
    func testStagesMatchNumpyReference() throws {
        let network = try loadNetwork()
        let bytes = [UInt8](try Data(contentsOf: root.appendingPathComponent("Fixtures/lite0/reference_64x48.bin")))
        var offset = 0
        func u32() -> Int {
            defer { offset += 4 }
            return (0..<4).reduce(0) { $0 | Int(bytes[offset + $1]) << (8 * $1) }
        }
        var reference = [String: Tensor]()
        for name in ["s2", "s4", "s8", "s16", "s32", "logits"] {
            let (c, h, w) = (u32(), u32(), u32())
            var values = [Float](repeating: 0, count: c * h * w)
            values.withUnsafeMutableBytes { $0.copyBytes(from: bytes[offset..<(offset + 4 * c * h * w)]) }
            offset += 4 * c * h * w
            reference[name] = Tensor(shape: [1, c, h, w], storage: values)
        }
        XCTAssertEqual(offset, bytes.count)
        let input = fixtureInput()
        let features = network.features(input, stages: Set(EfficientNetLite0.Stage.allCases))
        let names: [EfficientNetLite0.Stage: String] = [
            .stride2: "s2", .stride4: "s4", .stride8: "s8", .stride16: "s16",
            .stride32: "s32",
        ]
        for (stage, name) in names {
            guard let got = features[stage], let want = reference[name] else { return XCTFail("missing \(name)") }
            XCTAssertEqual(got.shape, want.shape, name)
            let scale = want.storage.map(abs).max() ?? 1
            XCTAssertLessThan(got.maxAbsDifference(want) / scale, 1e-4, name)
        }
        let logits = network.logits(input)
        guard let want = reference["logits"] else { return XCTFail("missing logits") }
        let scale = want.storage.map(abs).max() ?? 1
        let worst = zip(logits.storage, want.storage).map { abs($0 - $1) }.max() ?? 1
        XCTAssertLessThan(worst / scale, 1e-4)
    }

    func testStageShapesAt256() throws {
        let network = try loadNetwork()
        let features = network.features(Tensor(shape: [2, 3, 256, 256]), stages: [.stride8, .stride16])
        XCTAssertEqual(features[.stride8]?.shape, [2, 40, 32, 32])
        XCTAssertEqual(features[.stride16]?.shape, [2, 112, 16, 16])
        XCTAssertNil(features[.stride32])
        // A batch of two identical images gives identical features for both.
        let one = fixtureInput(height: 96, width: 80)
        let two = network.features(Preprocessing.batch([one, one]), stages: [.stride16])[.stride16]!
        XCTAssertEqual(two.image(0), two.image(1))
        XCTAssertLessThan(two.image(0).maxAbsDifference(network.features(one, stages: [.stride16])[.stride16]!), 1e-5)
    }

    /// The stride-4 channels of a fine embedding, against a naive loop over the stride-4 stage:
    /// each stride-8 cell averages its 2x2 block (cut at the edge), then its 3x3 neighbourhood
    /// (border cells average the neighbours they have); the first 152 channels stay the plain
    /// embedding's. Odd sides put cut blocks on the bottom and right edges.
    func testStride4EmbeddingAppendsTheHalvedStageToThePlainChannels() throws {
        let extractor = PatchFeatureExtractor(backbone: try loadNetwork())
        let input = fixtureInput(height: 72, width: 56)  // stride 4: 18 x 14; stride 8: 9 x 7
        let plain = extractor.embed(input), fine = extractor.embed(input, includingStride4: true)
        let s4 = try XCTUnwrap(extractor.backbone.features(input, stages: [.stride4])[.stride4])
        XCTAssertEqual(s4.shape, [1, 24, 18, 14])
        XCTAssertEqual(fine.shape, [1, 176, 9, 7])
        XCTAssertEqual(Array(fine.storage.prefix(152 * 63)), plain.storage)
        func block(_ c: Int, _ y: Int, _ x: Int) -> Double {
            var (sum, n) = (0.0, 0)
            for yy in (2 * y)..<min(2 * y + 2, 18) {
                for xx in (2 * x)..<min(2 * x + 2, 14) {
                    sum += Double(s4[0, c, yy, xx])
                    n += 1
                }
            }
            return sum / Double(n)
        }
        var worst = 0.0
        for c in 0..<24 {
            for y in 0..<9 {
                for x in 0..<7 {
                    var (sum, n) = (0.0, 0)
                    for yy in max(0, y - 1)...min(8, y + 1) {
                        for xx in max(0, x - 1)...min(6, x + 1) {
                            sum += block(c, yy, xx)
                            n += 1
                        }
                    }
                    worst = max(worst, abs(sum / Double(n) - Double(fine[0, 152 + c, y, x])))
                }
            }
        }
        XCTAssertLessThan(worst, 1e-5)
    }

    /// The embedding (stacking, upsampling and 3x3 averaging fused plane by plane and split
    /// between threads) is, bit for bit, the three whole-tensor operations one after the other,
    /// for a batch of two, on one and on two threads.
    func testEmbeddingIsUpsampledStackedAndAveragedFeatures() throws {
        let extractor = PatchFeatureExtractor(backbone: try loadNetwork())
        let one = fixtureInput(height: 72, width: 56)
        let input = Preprocessing.batch([one, Tensor(shape: one.shape, storage: one.storage.reversed())])
        let stages = extractor.backbone.features(input, stages: [.stride8, .stride16])
        let s8 = try XCTUnwrap(stages[.stride8]), s16 = try XCTUnwrap(stages[.stride16])
        let expected = pool2d(
            concatChannels([s8, upsampleBilinear(s16, height: s8.height, width: s8.width)]), kind: .average,
            kernel: 3, stride: 1, padding: 1)
        defer { setComputeThreads(2) }
        for threads in [1, 2] {
            setComputeThreads(threads)
            let got = extractor.embed(input)
            XCTAssertEqual(got.shape, [2, 152, 9, 7])
            XCTAssertEqual(got.storage, expected.storage, "\(threads) threads")
        }
    }

    /// Real photographs from the scikit-learn wheel: a Chinese palace and a daisy.
    func testClassifiesSamplePhotographs() throws {
        let network = try loadNetwork()
        for (file, expected) in [("china.jpg", 698), ("flower.jpg", 985)] {
            let path = root.appendingPathComponent("models/samples/\(file)").path
            guard FileManager.default.fileExists(atPath: path) else {
                throw XCTSkip("sample photo missing at \(path): run `make samples` (make test does this)")
            }
            let top = classify(try ImageCodec.read(contentsOf: path), with: network, top: 5)
            XCTAssertEqual(top.first?.index, expected, "\(file): \(top)")
            XCTAssertEqual(top.count, 5)
            XCTAssertTrue(zip(top, top.dropFirst()).allSatisfy { $0.probability >= $1.probability })
        }
    }

    func testWrongCheckpointIsRefusedByName() throws {
        let other = SafeTensors(tensors: ["_conv_stem.weight": Tensor(shape: [16, 3, 3, 3])])
        XCTAssertThrowsError(try EfficientNetLite0(checkpoint: other, path: "other.safetensors")) { error in
            XCTAssertEqual(
                String(describing: error),
                "other.safetensors: tensor _conv_stem.weight has shape [16, 3, 3, 3], expected [32, 3, 3, 3]")
        }
    }
}
