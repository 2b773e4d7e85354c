import Foundation
import Metrics
import XCTest

/// Values recorded once by Scripts/metrics_reference.py from scikit-learn and an independent
/// scipy-based AUPRO.
final class MetricsTests: XCTestCase {
    struct ImageCase: Decodable {
        var scores: [Double], labels: [Int]
        var auroc: Double, average_precision: Double, f1_max: Double, f1_threshold: Double
    }
    struct PixelCase: Decodable {
        var width: Int, height: Int, maps: [[Float]], masks: [[Int]]
        var pixel_auroc: Double, aupro_0_3: Double, regions: Int
    }
    struct Reference: Decodable {
        var image: [ImageCase], pixel: [PixelCase]
    }

    func reference() throws -> Reference {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures/metrics/reference.json")
        return try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }

    func testImageMetricsMatchScikitLearn() throws {
        for (k, c) in try reference().image.enumerated() {
            let labels = c.labels.map { $0 == 1 }
            XCTAssertEqual(
                try XCTUnwrap(areaUnderROC(scores: c.scores, labels: labels)), c.auroc, accuracy: 1e-12, "case \(k)")
            XCTAssertEqual(
                try XCTUnwrap(averagePrecision(scores: c.scores, labels: labels)), c.average_precision,
                accuracy: 1e-12, "case \(k)")
            let best = try XCTUnwrap(bestF1(scores: c.scores, labels: labels))
            XCTAssertEqual(best.f1, c.f1_max, accuracy: 1e-9, "case \(k)")
            XCTAssertEqual(best.threshold, c.f1_threshold, accuracy: 1e-12, "case \(k)")
            let at = operatingPoint(scores: c.scores, labels: labels, threshold: best.threshold)
            XCTAssertEqual(at, best)
            XCTAssertEqual(at.truePositives + at.falseNegatives, labels.filter { $0 }.count)
        }
    }

    func testDegenerateInputs() {
        XCTAssertNil(areaUnderROC(scores: [1, 2], labels: [true, true]))
        XCTAssertNil(averagePrecision(scores: [1, 2], labels: [false, false]))
        XCTAssertEqual(areaUnderROC(scores: [1, 1, 1, 1], labels: [true, false, true, false]), 0.5)
        XCTAssertEqual(areaUnderROC(scores: [0, 1], labels: [false, true]), 1)
        XCTAssertEqual(areaUnderROC(scores: [1, 0], labels: [false, true]), 0)
    }

    func testPixelMetricsMatchIndependentReference() throws {
        for (k, c) in try reference().pixel.enumerated() {
            let lo = Double(c.maps.joined().min() ?? 0), hi = Double(c.maps.joined().max() ?? 1)
            var acc = PixelMetricAccumulator(range: lo...hi, binCount: 8192)
            var regions = 0
            for (map, mask) in zip(c.maps, c.masks) {
                let m = mask.map { $0 == 1 }
                regions += connectedComponents(m, width: c.width, height: c.height).count
                acc.add(map: map, mask: m, width: c.width, height: c.height)
            }
            XCTAssertEqual(regions, c.regions, "case \(k)")
            let auroc = try XCTUnwrap(acc.pixelAUROC)
            XCTAssertLessThanOrEqual(abs(auroc - c.pixel_auroc), acc.pixelAUROCErrorBound + 1e-12, "case \(k)")
            XCTAssertLessThan(acc.pixelAUROCErrorBound, 2e-3)
            XCTAssertEqual(try XCTUnwrap(acc.aupro(maxFPR: 0.3)), c.aupro_0_3, accuracy: 5e-3, "case \(k)")
        }
    }

    func testConnectedComponentsUseEightNeighbours() {
        // Two diagonal pixels touch (one region); a pixel two columns away does not.
        let mask: [Bool] = [
            true, false, false, false,
            false, true, false, true,
        ]
        let parts = connectedComponents(mask, width: 4, height: 2)
        XCTAssertEqual(parts.map { $0.sorted() }.sorted { $0[0] < $1[0] }, [[0, 5], [7]])
    }

    func testRegionExtentsMatchTheFloodFill() {
        // Random masks of every density, sizes with odd widths, against the flood fill's
        // members: the same regions, in the same order, with the same counts and boxes.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return state >> 33
        }
        for trial in 0..<200 {
            let width = 1 + Int(next() % 37), height = 1 + Int(next() % 23)
            let density = Double(trial % 10) / 9
            let mask = (0..<(width * height)).map { _ in Double(next() % 1000) / 1000 < density }
            let expected = connectedComponents(mask, width: width, height: height).map { members in
                RegionExtent(
                    count: members.count, minX: members.map { $0 % width }.min() ?? 0,
                    minY: members.map { $0 / width }.min() ?? 0, maxX: members.map { $0 % width }.max() ?? 0,
                    maxY: members.map { $0 / width }.max() ?? 0, first: members.min() ?? 0)
            }
            XCTAssertEqual(
                connectedRegionExtents(mask, width: width, height: height), expected,
                "\(width)x\(height), density \(density)")
        }
        // Three runs of the first row that only meet rows later (unions of earlier roots).
        let u: [Bool] = [
            true, false, true, false, true,
            true, false, true, false, true,
            true, true, true, false, true,
            true, false, false, false, true,
            true, true, true, true, true,
        ]
        XCTAssertEqual(
            connectedRegionExtents(u, width: 5, height: 5),
            [RegionExtent(count: 17, minX: 0, minY: 0, maxX: 4, maxY: 4, first: 0)])
    }

    func testPerfectMapGivesPerfectScores() {
        var acc = PixelMetricAccumulator(range: 0...1, binCount: 100)
        let mask: [Bool] = (0..<64).map { $0 % 8 < 2 }
        acc.add(map: mask.map { $0 ? 0.9 : 0.1 }, mask: mask, width: 8, height: 8)
        XCTAssertEqual(acc.pixelAUROC, 1)
        XCTAssertEqual(acc.aupro(maxFPR: 0.3) ?? 0, 1, accuracy: 1e-12)
    }
}

final class ShiftMetricTests: XCTestCase {
    func testFalsePositiveRateAtNinetyFivePercentRecallMatchesACount() {
        // 20 positives scored 1...20, 100 negatives scored 0.5...50: catching 19 of 20 positives
        // (95%) needs the threshold at the 19th highest positive, 2; negatives >= 2 are 97 of 100.
        let positives = (1...20).map(Double.init), negatives = (1...100).map { Double($0) / 2 }
        let scores = positives + negatives, labels = positives.map { _ in true } + negatives.map { _ in false }
        let naive = Double(negatives.filter { $0 >= 2 }.count) / 100
        XCTAssertEqual(
            falsePositiveRate(atTruePositiveRate: 0.95, scores: scores, labels: labels) ?? -1, naive, accuracy: 1e-12)
        XCTAssertNil(
            falsePositiveRate(atTruePositiveRate: 0.95, scores: positives, labels: positives.map { _ in true }))
    }
}
