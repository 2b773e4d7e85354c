import Batch
import Detection
import Foundation
import Imaging
import SafeFiles

/// Where the time goes from file to heatmap on large images: each stage of `inspect` timed on
/// its own (medians), for a 900x900 PNG, a 1250x500 JPEG and a 2560x1024 JPEG made from each
/// source: a defect image of the data the model knows (a few small regions), and a photograph
/// it does not know (anomalous over a large area: the mask and region stages at their worst).
/// `make bench` rows and `anomap-bench --pipeline MODEL`.
func pipelineRows(
    _ detector: Detector, sources: [(String, Image)], scratch: String, _ row: (String, String, String) -> Void
) {
    let cases: [(Int, Int, ImageFormat)] = [(900, 900, .png), (1250, 500, .jpeg), (2560, 1024, .jpeg)]
    guard let writer = try? InspectionWriter(root: scratch + "/pipeline") else { return }
    for (source, photo) in sources {
        for (width, height, format) in cases {
            stageRow(source, photo, width, height, format)
        }
    }
    func stageRow(_ source: String, _ photo: Image, _ width: Int, _ height: Int, _ format: ImageFormat) {
        let name = "\(width)x\(height) \(format == .png ? "PNG" : "JPEG"), \(source)"
        let image = photo.resized(width: width, height: height, method: .area)
        let path = scratch + "/pipeline-\(width)x\(height).\(format.rawValue)"
        guard
            let bytes = try? (format == .png ? ImageCodec.encodePNG(image) : ImageCodec.encodeJPEG(image, quality: 90)),
            (try? writeFileAtomically(bytes, to: path)) != nil
        else { fail("cannot write \(path)") }
        let budget = 1.0
        // Decoding as `inspect` does: for the model (a large JPEG may come out smaller), and the
        // full photo too when it did and pictures are drawn (counted with the drawing).
        let decode = measure(minRuns: 5, budget: budget) { _ = try? detector.read(contentsOf: path) }.median
        guard let (decoded, size) = try? detector.read(contentsOf: path),
            let photo = try? ImageCodec.read(contentsOf: path)
        else { fail("cannot read \(path)") }
        let photoDecode =
            (decoded.width, decoded.height) == size
            ? 0 : measure(minRuns: 5, budget: budget) { _ = try? ImageCodec.read(contentsOf: path) }.median
        let analyze = measure(minRuns: 5, budget: budget) { _ = detector.analyze(decoded) }.median
        let raw = detector.analyze(decoded)
        // `inspect` after `analyze`: the map brought to the full size and normalized, then the mask.
        let toSize = measure(minRuns: 5, budget: budget) {
            _ = resizePlanes(
                raw.map, channels: 1, width: raw.width, height: raw.height,
                toWidth: size.width, toHeight: size.height, method: .bilinear
            ).map { detector.normalization.apply($0) }
        }.median
        let inspection = detector.inspect(decoded, size: size)
        let mask = measure(minRuns: 5, budget: budget) {
            _ = Inspection(
                rawScore: inspection.rawScore, score: inspection.score, map: inspection.map,
                width: inspection.width, height: inspection.height, threshold: inspection.threshold)
        }.median
        let regions = measure(minRuns: 5, budget: budget) { _ = inspection.regions }.median
        let render =
            photoDecode
            + measure(minRuns: 5, budget: budget) { _ = try? writer.render(inspection, photo: photo) }.median
        guard let rendered = try? writer.render(inspection, photo: photo) else { fail("cannot render \(name)") }
        let write = measure(minRuns: 5, budget: budget) { _ = try? writer.write(rendered, stem: "p") }.median
        let stages = [decode, analyze, toSize, mask, regions, render, write]
        row(
            "file to heatmap, \(name): decode / analyze / map to size / mask / regions / draw / write PNGs",
            stages.map { String(format: "%.1f", $0) }.joined(separator: " / ") + " ms",
            String(
                format: "(total %.1f ms; %.1f%% of the image anomalous)", stages.reduce(0, +),
                100 * inspection.defectArea))
    }
}

/// What the shift detectors add to an inspection of `probe`: the same detector with and
/// without them, alternated so that the machine's load falls on both alike.
func shiftCostRow(_ detector: Detector, probe: Image, _ row: (String, String, String) -> Void) {
    guard detector.shift != nil else { return }
    var bare = detector
    bare.shift = nil
    var differences = [Double]()
    for _ in 0..<40 {
        let with = measure(minRuns: 3, budget: 0) { _ = detector.inspect(probe) }.median
        let without = measure(minRuns: 3, budget: 0) { _ = bare.inspect(probe) }.median
        differences.append(with - without)
    }
    differences.sort()
    row(
        "shift detector (pooling and the primary, gmm) added to inspect, \(probe.width)x\(probe.height)",
        String(format: "%.2f ms/image", differences[differences.count / 2]), "(median of 40 paired differences)")
}
