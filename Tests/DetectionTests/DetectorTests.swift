import Batch
import Detection
import Foundation
import Imaging
import Models
import NeuralNet
import SafeFiles
import SyntheticData
import Tensors
import XCTest

let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The backbone and its checksum, loaded once for the whole suite.
let backbone: (extractor: PatchFeatureExtractor, sha: String)? = {
    let path = root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
    guard let bytes = try? readFile(path), let checkpoint = try? SafeTensors.decode(bytes),
        let network = try? EfficientNetLite0(checkpoint: checkpoint)
    else { return nil }
    return (PatchFeatureExtractor(backbone: network), sha256Hex(bytes))
}()

func requireBackbone() throws -> (extractor: PatchFeatureExtractor, sha: String) {
    guard let backbone else { throw XCTSkip("pretrained weights missing: run `make setup` (make test does this)") }
    return backbone
}

final class DetectorTests: XCTestCase {
    static var dataset: String = {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("anomap-synthetic-\(getpid())").path
        _ = try? SyntheticParts.write(to: dir, train: 16, testGood: 6, testPerDefect: 3, size: 96, seed: 3)
        return dir
    }()

    override func setUp() { setComputeThreads(2) }

    func smallSettings() -> DetectorSettings {
        var s = DetectorSettings()
        s.inputSize = 128
        s.bankSize = 300
        s.maxCandidates = 4000
        s.calibrationShare = 0.25
        s.components = [.knn]
        s.scoreComponents = []
        return s
    }

    /// The detector written to a bundle and read back.
    func roundTrip(_ detector: Detector) throws -> Detector {
        let (extractor, sha) = try requireBackbone()
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("rt-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try ModelBundle.write(detector, to: path)
        return try ModelBundle.read(path, extractor: extractor, backboneSHA256: sha)
    }

    func testSyntheticDefectsAreFoundWhereTheyAre() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        XCTAssertEqual(set.trainingImages.count, 16)
        XCTAssertEqual(set.items.count, 6 + 9)
        let (detector, report) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha,
            settings: smallSettings())
        XCTAssertEqual(report.trainingImages + report.calibrationImages, 16)
        XCTAssertEqual(detector.component(MemoryBankComponent.self)?.bank.count, 300)
        let result = Evaluator.evaluate(detector, on: set)
        XCTAssertTrue(result.errors.isEmpty, "\(result.errors)")
        XCTAssertGreaterThanOrEqual(result.overall.image_auroc ?? 0, 0.95)
        XCTAssertGreaterThanOrEqual(result.overall.pixel_auroc ?? 0, 0.9)
        XCTAssertGreaterThanOrEqual(result.overall.aupro ?? 0, 0.7)
        // Normal calibration images sit near 0 on the normalized scale, below the threshold.
        let good = result.scores.filter { $0.type == "good" }.map(\.score)
        XCTAssertLessThan(good.sorted()[good.count / 2], 1)
    }

    func testSameSeedGivesSameModelBytesAndBundleRoundTrips() throws {
        let (extractor, sha) = try requireBackbone()
        let paths = try ImageFolder.images(in: [Self.dataset + "/train/good"])
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bundle-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var files = [String]()
        for (i, seed) in [UInt64(5), 5, 6].enumerated() {
            var settings = smallSettings()
            settings.seed = seed
            let (detector, _) = try Trainer.train(
                paths: paths, extractor: extractor, backboneSHA256: sha, settings: settings)
            let path = dir.appendingPathComponent("m\(i).safetensors").path
            try ModelBundle.write(detector, to: path)
            files.append(path)
        }
        let bytes = try files.map { try readFile($0) }
        XCTAssertEqual(bytes[0], bytes[1], "same seed, different bytes")
        XCTAssertNotEqual(bytes[0], bytes[2], "different seeds gave identical models")
        let loaded = try ModelBundle.read(files[0], extractor: extractor, backboneSHA256: sha)
        XCTAssertEqual(
            loaded.component(MemoryBankComponent.self)?.bank.entries.shape, [300, PatchFeatureExtractor.dimension])
        XCTAssertEqual(loaded.settings, smallSettings().with(seed: 5))
        // A bundle tied to another backbone, another format version, or a foreign file is refused.
        XCTAssertThrowsError(
            try ModelBundle.read(files[0], extractor: extractor, backboneSHA256: String(repeating: "0", count: 64))
        ) {
            XCTAssertTrue("\($0)".contains("different backbone"), "\($0)")
        }
        var file = try SafeTensors.read(contentsOf: files[0])
        file.metadata["anomap_format_version"] = "99"
        try file.write(to: files[2])
        XCTAssertThrowsError(try ModelBundle.read(files[2], extractor: extractor, backboneSHA256: sha)) {
            XCTAssertTrue("\($0)".contains("format version 99 is not supported"), "\($0)")
        }
        let weights = root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
        XCTAssertThrowsError(try ModelBundle.read(weights, extractor: extractor, backboneSHA256: sha)) {
            XCTAssertTrue("\($0)".contains("not an anomap model"), "\($0)")
        }
        var flipped = bytes[0]
        flipped[flipped.count - 5] ^= 0x10  // one bit inside the last tensor's numbers
        try flipped.write(to: files[2])
        XCTAssertThrowsError(try ModelBundle.read(files[2], extractor: extractor, backboneSHA256: sha)) {
            XCTAssertTrue("\($0)".contains("do not match their checksum"), "\($0)")
        }
        try Array(bytes[0].prefix(bytes[0].count / 2)).write(to: files[2])
        XCTAssertThrowsError(try ModelBundle.read(files[2], extractor: extractor, backboneSHA256: sha)) {
            XCTAssertTrue("\($0)".contains(files[2]), "\($0)")
        }
    }

    func testGaussianAndFusedComponentsTrainRoundTripAndFindDefects() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        for components in [[Component.gaussian], [.knn, .gaussian]] {
            var settings = smallSettings()
            settings.components = components
            settings.gaussianChannels = 24
            let (detector, _) = try Trainer.train(
                paths: set.trainingImages, extractor: extractor, backboneSHA256: sha,
                settings: settings)
            XCTAssertEqual(detector.component(GaussianComponent.self)?.gaussian.channels.count, 24)
            XCTAssertEqual(detector.component(MemoryBankComponent.self) != nil, components.contains(.knn))
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("g-\(getpid()).safetensors").path
            defer { try? FileManager.default.removeItem(atPath: path) }
            try ModelBundle.write(detector, to: path)
            let loaded = try ModelBundle.read(path, extractor: extractor, backboneSHA256: sha)
            let image = try ImageCodec.read(contentsOf: set.items[0].path)
            XCTAssertEqual(loaded.analyze(image).map, detector.analyze(image).map, "\(components)")
            let result = Evaluator.evaluate(loaded, on: set)
            XCTAssertGreaterThanOrEqual(result.overall.image_auroc ?? 0, 0.9, "\(components)")
            if components.count == 2 {
                // Weights (1, 0): the fused map is exactly the first component's calibrated map.
                var weighted = settings
                weighted.componentWeights = [1, 0]
                let first = Detector(
                    extractor: extractor, components: detector.components,
                    componentNormalizations: detector.componentNormalizations, settings: weighted,
                    normalization: detector.normalization, threshold: 1, backboneSHA256: sha)
                let expected = detector.componentMaps(image)[0].map.map {
                    detector.componentNormalizations[0].apply($0)
                }
                let fused = first.analyze(image).map
                XCTAssertEqual(fused.count, expected.count)
                for i in stride(from: 0, to: fused.count, by: 97) {
                    XCTAssertEqual(fused[i], expected[i], accuracy: 1e-5)
                }
            }
        }
    }

    func testImageScoreCanComeFromASubsetWhileTheMapFusesAll() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        var settings = smallSettings()
        settings.components = [.knn, .gaussian]
        settings.scoreComponents = [.gaussian]
        settings.gaussianChannels = 24
        let (detector, _) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: settings)
        XCTAssertTrue(detector.scoresSeparately)
        let loaded = try roundTrip(detector)
        XCTAssertEqual(loaded.scoreNormalization, detector.scoreNormalization)
        for item in set.items.prefix(4) {
            let image = try ImageCodec.read(contentsOf: item.path)
            let maps = loaded.componentMaps(image)
            // The score: the gaussian map's maximum on the gaussian's own calibrated scale.
            let gaussianNorm = loaded.componentNormalizations[1]
            XCTAssertEqual(loaded.scoreNormalization, gaussianNorm)
            let inspection = loaded.inspect(image)
            let expectedScore = gaussianNorm.apply(maps[1].map.max() ?? 0)
            XCTAssertEqual(inspection.score, expectedScore, accuracy: 1e-5)
            // The map: the mean of both calibrated maps, whose maximum is not the score.
            let fused = zip(maps[0].map, maps[1].map).map {
                (loaded.componentNormalizations[0].apply($0.0) + gaussianNorm.apply($0.1)) / 2
            }
            let analyzed = loaded.analyze(image)
            for i in stride(from: 0, to: fused.count, by: 53) {
                XCTAssertEqual(analyzed.map[i], fused[i], accuracy: 1e-5)
            }
        }
        // Selecting the gaussian alone gives the same image scores.
        let alone = try loaded.selecting([.gaussian])
        let image = try ImageCodec.read(contentsOf: set.items[0].path)
        XCTAssertEqual(alone.inspect(image).score, loaded.inspect(image).score, accuracy: 1e-5)
        var bad = settings
        bad.scoreComponents = [.st]
        bad.components = [.knn]
        let (plain, _) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: bad)
        XCTAssertEqual(plain.settings.scoreComponents, [], "a score component the model lacks is dropped")
        XCTAssertFalse(plain.scoresSeparately)
    }

    func testWideMapIsTheMaximumOfBothScalesAndLeavesTheScoreAlone() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        var settings = smallSettings()
        settings.components = [.gaussian, .knn]
        settings.componentWeights = [2, 1]
        settings.gaussianChannels = 24
        settings.wideBlurSigma = 16
        let (detector, _) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: settings)
        XCTAssertTrue(detector.hasScoreMap)
        let loaded = try roundTrip(detector)
        XCTAssertEqual(loaded.settings.wideBlurSigma, 16)
        var widened = 0
        for item in set.items.prefix(5) {
            let image = try ImageCodec.read(contentsOf: item.path)
            let (coarse, g) = loaded.coarseMaps(image)
            let norms = loaded.componentNormalizations
            // Fine map: the weighted mean of the calibrated component maps at --blur-sigma.
            let refined = coarse.map { loaded.refine($0, geometry: g) }
            let fine = zip(refined[0].map, refined[1].map).map { (2 * norms[0].apply($0.0) + norms[1].apply($0.1)) / 3 }
            // Wide map: the same mean on the feature grid, upsampled to a quarter of the input,
            // blurred by sigma / 4, brought to the fine map's size.
            let mean = zip(coarse[0], coarse[1]).map { (2 * norms[0].apply($0.0) + norms[1].apply($0.1)) / 3 }
            let (qw, qh) = (g.inputWidth / 4, g.inputHeight / 4)
            let quarter = upsampleBilinear(
                Tensor(shape: [1, 1, g.gridHeight, g.gridWidth], storage: mean), height: qh, width: qw)
            let blurred = gaussianBlur(quarter.storage, width: qw, height: qh, sigma: 4)
            let wide = upsampleBilinear(
                Tensor(shape: [1, 1, qh, qw], storage: blurred), height: refined[0].height, width: refined[0].width)
            let analyzed = loaded.analyze(image)
            XCTAssertEqual(analyzed.map.count, fine.count)
            for i in fine.indices {
                XCTAssertEqual(analyzed.map[i], max(fine[i], wide.storage[i]), accuracy: 1e-4)
                if wide.storage[i] > fine[i] + 1e-3 { widened += 1 }
            }
            // The score: the fine map's maximum, on the fine map's own calibration.
            XCTAssertEqual(analyzed.score, fine.max() ?? 0, accuracy: 1e-4)
            XCTAssertEqual(
                loaded.inspect(image).score, loaded.scoreNormalization.apply(fine.max() ?? 0), accuracy: 1e-4)
        }
        XCTAssertGreaterThan(widened, 0, "the wide map never rose above the fine one: the maximum is untested")
        XCTAssertNotEqual(loaded.normalization, loaded.scoreNormalization, "the heatmap is calibrated on its own maps")
    }

    func testAspectPreservingInputTrainsAndInspectsImagesOfMixedSizes() throws {
        let (extractor, sha) = try requireBackbone()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("aspect-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // Good parts of several heights and widths, as photos of a part often are.
        var g = SeededGenerator(seed: 21)
        let paths = try writeGoodParts(
            [(96, 120), (96, 128), (100, 124), (92, 136), (96, 118), (104, 130), (96, 126), (90, 122)], to: dir,
            generator: &g)
        var settings = smallSettings()
        settings.keepsAspectRatio = true
        settings.wideBlurSigma = 8
        settings.calibrationShare = 0.3
        let (detector, report) = try Trainer.train(
            paths: paths, extractor: extractor, backboneSHA256: sha,
            settings: settings)
        XCTAssertTrue(report.failures.isEmpty, "\(report.failures)")
        let loaded = try roundTrip(detector)
        for (w, h) in [(96, 120), (200, 90), (64, 160)] {
            let image = try SyntheticParts.good(size: 128, generator: &g).resized(
                width: w, height: h, method: .bilinear)
            let inspection = loaded.inspect(image)
            XCTAssertEqual(inspection.map.count, w * h)
            XCTAssertTrue(inspection.map.allSatisfy(\.isFinite) && inspection.score.isFinite, "\(w)x\(h)")
        }
        // Per-position models need one grid: refused with one line, not trapped.
        for components in [[Component.gaussian], [.st], [.ae]] {
            var refused = settings
            refused.components = components
            XCTAssertThrowsError(
                try Trainer.train(
                    paths: paths, extractor: extractor, backboneSHA256: sha,
                    settings: refused)
            ) {
                XCTAssertTrue("\($0)".contains("drop --keep-aspect"), "\($0)")
            }
        }
    }

    func testLargeJPEGIsReadSmallerForTheModelAndMappedAtFullSize() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        let (detector, _) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: smallSettings())
        // A defect image enlarged 8x (768x768): the 128-pixel model reads it at 1/4 (192x192,
        // 1/8 would be 96 < 128), and its map, mask and boxes keep 768x768.
        guard let item = set.items.first(where: { $0.type != "good" }) else { return XCTFail("no defect image") }
        let big = try ImageCodec.read(contentsOf: item.path).resized(width: 768, height: 768, method: .bilinear)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dct-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/big.jpg"
        try writeFileAtomically(try ImageCodec.encodeJPEG(big, quality: 95), to: path)
        let (small, size) = try detector.read(contentsOf: path)
        XCTAssertEqual([small.width, small.height, size.width, size.height], [192, 192, 768, 768])
        let reduced = detector.inspect(small, size: size)
        XCTAssertEqual([reduced.width, reduced.height, reduced.map.count], [768, 768, 768 * 768])
        // The same picture as the full decode, to within the two downsampling filters.
        let full = detector.inspect(try ImageCodec.read(contentsOf: path))
        XCTAssertEqual(reduced.score, full.score, accuracy: 0.05 * max(1, abs(full.score)))
        XCTAssertEqual(reduced.isAnomalous, full.isAnomalous)
        // A batch gives the same scores whether or not it draws pictures (they need the full photo).
        var scores = [[Double?]]()
        for images in [false, true] {
            let out = dir + "/out-\(images)"
            var batch = BatchInspection(detector: detector, writer: try InspectionWriter(root: out))
            batch.writesImages = images
            _ = try batch.run([BatchInput(path: path, stem: "big")])
            scores.append(try InspectionWriter(root: out).readResults().map(\.score))
            if images {
                let heatmap = try ImageCodec.read(contentsOf: out + "/big_heatmap.png")
                XCTAssertEqual([heatmap.width, heatmap.height], [768, 768])
            }
        }
        XCTAssertEqual(scores[0], scores[1])
        XCTAssertEqual((scores[0].first ?? nil) ?? .nan, Double(reduced.rawScore), accuracy: 1e-4)
        // Settings that decode at full size (an older bundle's) read all of it.
        var old = smallSettings()
        old.scalesLargeJPEGs = false
        XCTAssertEqual(try ImageCodec.read(contentsOf: path, options: old.decodeOptions).width, 768)
    }

    func testShiftDetectorsAreFittedAndKeepTheirScoresThroughTheBundle() throws {
        let (extractor, sha) = try requireBackbone()
        let set = try EvaluationSet.mvtec(Self.dataset)
        let (detector, _) = try Trainer.train(
            paths: set.trainingImages, extractor: extractor, backboneSHA256: sha, settings: smallSettings())
        let shift = try XCTUnwrap(detector.shift)
        XCTAssertEqual(
            shift.detectors.map { type(of: $0).name },
            ["gmm", "iforest", "ocsvm", "msp", "odin", "gradnorm", "gradnorm-block"])
        XCTAssertTrue(ODINShift.temperatures.contains(try XCTUnwrap(shift.detectors[4] as? ODINShift).temperature))
        let loaded = try XCTUnwrap(try roundTrip(detector).shift)
        let good = try set.items.filter { $0.type == "good" }.map { try ImageCodec.read(contentsOf: $0.path) }
        for image in good {
            let features = detector.shiftFeatures(image)
            let pooled = features.pooled
            XCTAssertEqual(pooled.count, PatchFeatureExtractor.dimension)
            // The per-channel median of the teacher's patches, against a full sort.
            let teacher = detector.extractor.embed(detector.settings.input(for: image))
            let hw = teacher.height * teacher.width
            XCTAssertEqual(hw % 2, 0)
            for c in 0..<teacher.shape[1] {
                let sorted = teacher.storage[(c * hw)..<((c + 1) * hw)].sorted()
                XCTAssertEqual(pooled[c], (sorted[hw / 2 - 1] + sorted[hw / 2]) / 2, "channel \(c)")
            }
            let head = HeadOutput(backbone: detector.extractor.backbone, input: detector.settings.input(for: image))
            let scores = shift.calibratedScores(features) { head }
            XCTAssertEqual(scores, loaded.calibratedScores(features) { head })
            XCTAssertFalse(scores.contains { !$0.isFinite }, "\(scores)")
            // inspect reports the primary detector's verdict on the same pooled features.
            XCTAssertEqual(detector.inspect(image).shift, shift.verdict(features))
        }
        // A flat grey frame is nothing like a part: far beyond the threshold.
        let grey = try Image(width: 96, height: 96, channels: 3, pixels: [UInt8](repeating: 128, count: 96 * 96 * 3))
        XCTAssertGreaterThan(shift.verdict(detector.shiftFeatures(grey)).score, 3)
    }

    /// A gray image's model input (one plane resized, then replicated) is, value for value,
    /// that of the same image as RGB (three planes resized), shrinking and enlarging.
    func testGrayInputEqualsItsRGBInput() throws {
        var g = SeededGenerator(seed: 5)
        let gray = try Image(
            width: 37, height: 23, channels: 1,
            pixels: (0..<(37 * 23)).map { _ in UInt8.random(in: 0...255, using: &g) })
        for (w, h) in [(16, 16), (64, 48), (37, 10)] {
            let fromGray = Preprocessing.lite0Input(gray, width: w, height: h)
            let fromRGB = Preprocessing.lite0Input(gray.rgb(), width: w, height: h)
            XCTAssertEqual(fromGray.shape, [1, 3, h, w])
            XCTAssertEqual(fromGray.storage, fromRGB.storage, "\(w)x\(h)")
        }
    }

    func testCholeskyInverseAndMahalanobisDistance() {
        // A = B B^T + I is symmetric positive definite; A * inverse(A) must be the identity.
        var g = SeededGenerator(seed: 12)
        let n = 7
        let b = (0..<(n * n)).map { _ in Double.random(in: -1...1, using: &g) }
        var a = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in 0..<n { for k in 0..<n { a[i * n + j] += b[i * n + k] * b[j * n + k] } }; a[i * n + i] += 1
        }
        let inverse = invertSymmetricPositiveDefinite(a, size: n)
        for i in 0..<n {
            for j in 0..<n {
                var s = 0.0
                for k in 0..<n { s += a[i * n + k] * inverse[k * n + j] }
                XCTAssertEqual(s, i == j ? 1 : 0, accuracy: 1e-9)
            }
        }
        // Two positions with known Gaussians: distance = sqrt(x^T S x) of the centred feature.
        var acc = PositionalGaussianAccumulator(channels: [0, 1], height: 1, width: 2)
        for _ in 0..<400 {
            let f = (0..<4).map { _ in Float.random(in: -1...1, using: &g) }
            acc.add(Tensor(shape: [1, 2, 1, 2], storage: f))
        }
        let gaussian = acc.finish(epsilon: 0)
        let probe = Tensor(shape: [1, 2, 1, 2], storage: [0.5, -0.25, 0.1, 0.7])
        let d = gaussian.distances(probe)
        for i in 0..<2 {
            let x = [
                probe.storage[i] - gaussian.mean.storage[i * 2],
                probe.storage[2 + i] - gaussian.mean.storage[i * 2 + 1],
            ]
            // Packed upper: [S00, S01, S11].
            let p = Array(gaussian.precision.storage[(i * 3)..<(i * 3 + 3)])
            let s = [p[0], p[1], p[1], p[2]]
            let expected = (x[0] * (s[0] * x[0] + s[1] * x[1]) + x[1] * (s[2] * x[0] + s[3] * x[1])).squareRoot()
            XCTAssertEqual(d[i], expected, accuracy: 1e-4)
            // Uniform(-1, 1) has variance 1/3, so the precision diagonal is about 3.
            XCTAssertEqual(Double(s[0]), 3, accuracy: 0.6)
        }
    }

    func testNearestDistancesMatchBruteForce() {
        var g = SeededGenerator(seed: 9)
        let (m, d, h, w) = (37, 11, 5, 7)
        let bank = PatchMemoryBank(
            entries: Tensor(shape: [m, d], storage: (0..<(m * d)).map { _ in Float.random(in: -1...1, using: &g) }))
        let features = Tensor(
            shape: [1, d, h, w], storage: (0..<(d * h * w)).map { _ in Float.random(in: -1...1, using: &g) })
        let fast = bank.nearestDistances(features)
        for p in 0..<(h * w) {
            var best = Double.infinity
            for e in 0..<m {
                var s = 0.0
                for k in 0..<d {
                    let t = Double(features.storage[k * h * w + p]) - Double(bank.entries.storage[e * d + k])
                    s += t * t
                }
                best = min(best, s.squareRoot())
            }
            XCTAssertEqual(Double(fast[p]), best, accuracy: 1e-4)
        }
    }

    func testCoresetCoversEveryCluster() {
        // Five tight clusters far apart: a 5-point k-center coreset takes one from each.
        var g = SeededGenerator(seed: 10)
        let d = 16
        var points = [Float](), cluster = [Int]()
        for c in 0..<5 {
            for _ in 0..<40 {
                for k in 0..<d { points.append(Float(k == c ? 100 : 0) + Float.random(in: -0.1...0.1, using: &g)) }
                cluster.append(c)
            }
        }
        var selection = SeededGenerator(seed: 1)
        let chosen = PatchMemoryBank.greedyCoreset(
            points, dimension: d, size: 5, projectedDimension: 8, generator: &selection)
        XCTAssertEqual(Set(chosen.map { cluster[$0] }), Set(0..<5))
        var again = SeededGenerator(seed: 1)
        XCTAssertEqual(
            PatchMemoryBank.greedyCoreset(points, dimension: d, size: 5, projectedDimension: 8, generator: &again),
            chosen)
        var all = SeededGenerator(seed: 1)
        XCTAssertEqual(PatchMemoryBank.greedyCoreset(points, dimension: d, size: 500, generator: &all).count, 200)
    }

    func testSettingsFromAnOlderBundleTakeDefaults() throws {
        let old = #"{"bankSize":100,"components":["gaussian"],"inputSize":128,"seed":4}"#
        let settings = try JSONDecoder().decode(DetectorSettings.self, from: Data(old.utf8))
        XCTAssertEqual(settings.bankSize, 100)
        XCTAssertEqual(settings.inputSize, 128)
        XCTAssertEqual(settings.seed, 4)
        XCTAssertEqual(settings.blurSigma, 4, "bundles from before --blur-sigma were smoothed by 4")
        XCTAssertEqual(settings.componentWeights, [])
        XCTAssertFalse(settings.scalesLargeJPEGs, "bundles from before DCT scaling decoded at full size")
        XCTAssertTrue(DetectorSettings().scalesLargeJPEGs)
        let roundTrip = try JSONDecoder().decode(DetectorSettings.self, from: JSONEncoder().encode(smallSettings()))
        XCTAssertEqual(roundTrip, smallSettings())
        XCTAssertThrowsError(try JSONDecoder().decode(DetectorSettings.self, from: Data(#"{"bankSize":"many"}"#.utf8)))
    }

    func testQuantileAndRegions() {
        XCTAssertEqual(quantile([3, 1, 2, 4], 0.5), 2.5)
        XCTAssertEqual(quantile([7], 0.99), 7)
        let inspection = Inspection(
            rawScore: 0, score: 2,
            map: [
                0, 2, 0, 0,
                0, 2, 0, 3,
                0, 0, 0, 3,
            ], width: 4, height: 3, threshold: 1)
        XCTAssertEqual(
            inspection.regions,
            [BoundingBox(x: 1, y: 0, width: 1, height: 2), BoundingBox(x: 3, y: 1, width: 1, height: 2)])
        XCTAssertEqual(inspection.defectArea, 4.0 / 12)
        XCTAssertTrue(inspection.isAnomalous)
    }
}

extension DetectorSettings {
    func with(seed: UInt64) -> DetectorSettings {
        var copy = self
        copy.seed = seed
        return copy
    }
}

extension Array where Element == UInt8 {
    func write(to path: String) throws { try Data(self).write(to: URL(fileURLWithPath: path)) }
}
