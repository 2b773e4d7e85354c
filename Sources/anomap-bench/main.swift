import Batch
import Detection
// `make bench`: speed of the foundation, medians of repeated runs, printed as one table.
import Dispatch
import Foundation
import Imaging
import Metrics
import Models
import NeuralNet
import SafeFiles
import SyntheticData
import Tensors

BLASKernels.restartWithBetterKernels()
let environment = ProcessInfo.processInfo.environment
let threads = Int(environment["ANOMAP_THREADS"] ?? "") ?? 2
setComputeThreads(threads)
// Run from the checkout root (as `make bench` does).
let root = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
let weights =
    environment["ANOMAP_BACKBONE"] ?? root.appendingPathComponent("models/efficientnet-lite0.safetensors").path
let photo = root.appendingPathComponent("models/samples/china.jpg").path

func fail(_ message: String) -> Never {
    FileHandle.standardError.write((message + "\n").data(using: .utf8) ?? Data())
    exit(1)
}

/// Median milliseconds of `body` over repeated runs (after one warm-up), at least `minRuns`
/// runs and about `budget` seconds.
func measure(minRuns: Int = 15, budget: Double = 3, _ body: () throws -> Void) rethrows -> (median: Double, runs: Int) {
    try body()
    var times = [Double]()
    let start = DispatchTime.now().uptimeNanoseconds
    while times.count < minRuns || Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 < budget {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        if times.count >= 2000 { break }
    }
    times.sort()
    return (times[times.count / 2], times.count)
}

var rows: [(String, String, String)] = []
func row(_ name: String, _ value: String, _ note: String = "") {
    rows.append((name, value, note))
    print(String(repeating: " ", count: 0) + "  \(name): \(value) \(note)")
}

// The weights are read once: the backbone and the checksum model bundles are tied to.
guard let weightBytes = try? readFile(weights), let checkpoint = try? SafeTensors.decode(weightBytes, path: weights),
    let network = try? EfficientNetLite0(checkpoint: checkpoint)
else { fail("cannot load \(weights): run `make setup`") }
let weightsSHA256 = sha256Hex(weightBytes)
if CommandLine.arguments.dropFirst().first == "--peers" { servePeers(network) }
if CommandLine.arguments.dropFirst().first == "--kernels" {
    setComputeThreads(1)
    kernelRows { name, value, note in print("| \(name) | \(value) | \(note) |") }
    depthwiseRows { name, value, note in print("| \(name) | \(value) | \(note) |") }
    classifierRows { name, value, note in print("| \(name) | \(value) | \(note) |") }
    gemmRows { name, value, note in print("| \(name) | \(value) | \(note) |") }
    exit(0)
}
guard let sample = try? ImageCodec.read(contentsOf: photo) else { fail("cannot read \(photo): run `make samples`") }
/// The pipeline profile's sources: a crack image of the benchmark data (when present) and the
/// sample photograph.
func pipelineSources(_ sample: Image) -> [(String, Image)] {
    let data =
        environment["ANOMAP_BENCH_DATA"]
        ?? root.appendingPathComponent("../shared/data/magnetic_tile").standardized.path
    let defect = (try? EvaluationSet.mvtec(data))?.items.first { $0.type != "good" && $0.mask != nil }
    let image = defect.flatMap { try? ImageCodec.read(contentsOf: $0.path) }
    return (image.map { [("\(defect?.type ?? "defect") image", $0)] } ?? []) + [("photograph", sample)]
}
if CommandLine.arguments.dropFirst().first == "--pipeline" {
    guard CommandLine.arguments.count == 3,
        let detector = try? ModelBundle.read(
            CommandLine.arguments[2], extractor: PatchFeatureExtractor(backbone: network),
            backboneSHA256: weightsSHA256)
    else { fail("usage: anomap-bench --pipeline MODEL (a model trained with this backbone)") }
    let scratch = NSTemporaryDirectory() + "anomap-bench-pipeline-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    let printRow: (String, String, String) -> Void = { name, value, note in print("| \(name) | \(value) | \(note) |") }
    let sources = pipelineSources(sample)
    if let probe = sources.first?.1.resized(width: 289, height: 240, method: .area) {
        shiftCostRow(detector, probe: probe, printRow)
    }
    pipelineRows(detector, sources: sources, scratch: scratch, printRow)
    exit(0)
}
print("anomap bench: \(threads) threads, release build, medians of repeated runs")

// Codecs: a 900x900 RGB photo (the sample photograph resampled), PNG and JPEG (quality 90).
let big = sample.resized(width: 900, height: 900, method: .bilinear)
guard let pngBytes = try? ImageCodec.encodePNG(big), let jpegBytes = try? ImageCodec.encodeJPEG(big, quality: 90) else {
    fail("encoding failed")
}
let png = try measure { _ = try ImageCodec.decode(pngBytes) }
row("PNG decode 900x900 RGB", String(format: "%.2f ms", png.median), "(\(pngBytes.count / 1024) KiB, \(png.runs) runs)")
let jpeg = try measure { _ = try ImageCodec.decode(jpegBytes) }
row(
    "JPEG decode 900x900 RGB", String(format: "%.2f ms", jpeg.median),
    "(\(jpegBytes.count / 1024) KiB, \(jpeg.runs) runs)")

// Backbone at 256x256.
let input = Preprocessing.lite0Input(sample.resized(width: 256, height: 256, method: .area))
let s8 = measure { _ = network.features(input, stages: [.stride8]) }
row("Lite0 features to stride 8, 256x256", String(format: "%.2f ms", s8.median), "(batch 1, \(s8.runs) runs)")
let s16 = measure { _ = network.features(input, stages: [.stride16]) }
row("Lite0 features to stride 16, 256x256", String(format: "%.2f ms", s16.median), "(batch 1, \(s16.runs) runs)")
let full = measure { _ = network.logits(input) }
row("Lite0 classifier, 256x256, batch 1", String(format: "%.2f ms", full.median), "(\(full.runs) runs)")
let batch8 = Preprocessing.batch(Array(repeating: input, count: 8))
let full8 = measure(minRuns: 5) { _ = network.logits(batch8) }
row("Lite0 classifier, 256x256, batch 8", String(format: "%.2f ms/image", full8.median / 8), "(\(full8.runs) runs)")

// Learned components at 256x256 with default shapes (weights random: timing does not depend on them).
do {
    var g = SeededGenerator(seed: 1)
    let learning = LearningSettings()
    let d = PatchFeatureExtractor.dimension
    let teacher = PatchFeatureExtractor(backbone: network).embed(input)
    let identity = FeatureStandardization(mean: [Float](repeating: 0, count: d), scale: [Float](repeating: 1, count: d))
    let students = StudentEnsemble(
        students: (0..<learning.students).map { _ in
            StudentNetwork(width: learning.studentWidth, outChannels: d, generator: &g)
        }, standardization: identity)
    let st = measure { _ = students.maps(input: input, teacher: teacher) }
    row(
        "students (\(learning.students), width \(learning.studentWidth)) maps, 256x256",
        String(format: "%.2f ms", st.median), "(\(st.runs) runs)")
    let l = learning.latentChannels
    let ae = MemoryAutoencoder(
        encoder: ConvStack(
            inChannels: d, specs: MemoryAutoencoder.encoderSpecs(inChannels: d, latent: l), generator: &g),
        decoder: ConvStack(
            inChannels: l, specs: MemoryAutoencoder.decoderSpecs(latent: l, outChannels: d), generator: &g),
        memory: Tensor(
            shape: [learning.memorySize, l], storage: (0..<(learning.memorySize * l)).map { _ in g.nextGaussian() }),
        readout: MemoryReadout(temperature: learning.temperature, shrinkage: learning.shrinkage),
        standardization: identity)
    let aeTime = measure { _ = ae.residual(teacher: teacher) }
    row("memory autoencoder residual, 256x256", String(format: "%.2f ms", aeTime.median), "(\(aeTime.runs) runs)")
}

// The networks' own GEMM shapes: the packed product against OpenBLAS and BLIS, one thread.
setComputeThreads(1)
kernelRows(row)
depthwiseRows(row)
classifierRows(row)
gemmRows(row)
setComputeThreads(threads)

// Detector rows: whole-command runs on the shared magnetic_tile data, each in its own process
// so its peak resident memory (wait4's ru_maxrss) is its own.
func runChild(_ arguments: [String], silent: Bool = false) -> (seconds: Double, peakMiB: Double, status: Int32) {
    var pid: pid_t = 0
    let argv = arguments.map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    // `silent`: the child's stdout (an eval table) goes to /dev/null, not into the bench's table.
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if silent { posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0) }
    let t0 = DispatchTime.now().uptimeNanoseconds
    guard posix_spawn(&pid, arguments[0], &actions, nil, argv, environ) == 0 else { return (0, 0, -1) }
    var status: Int32 = 0
    var usage = rusage()
    wait4(pid, &status, 0, &usage)
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    return (seconds, Double(usage.ru_maxrss) / 1024, status)
}

let data =
    environment["ANOMAP_BENCH_DATA"] ?? root.appendingPathComponent("../shared/data/magnetic_tile").standardized.path
let dataset = FileManager.default.fileExists(atPath: data + "/train/good") ? try? EvaluationSet.mvtec(data) : nil
if let set = dataset {
    let exe = root.appendingPathComponent(".build/release/anomap").path
    let scratch = NSTemporaryDirectory() + "anomap-bench-\(getpid())"
    try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let trainCount = (try? FileManager.default.contentsOfDirectory(atPath: data + "/train/good").count) ?? 0
    let testCount = (try? FileManager.default.contentsOfDirectory(atPath: data + "/test/good").count) ?? 1
    // Each preset: trained by the tool in a child process (time, peak memory), timed decode to
    // map in this process, whole `inspect` commands, and (fast preset) its accuracy by `eval`'s code.
    for preset in DetectorSettings.Preset.allCases {
        let model = scratch + "/\(preset.rawValue).safetensors"
        let train = runChild([
            exe, "train", data + "/train/good", "-o", model, "--preset", preset.rawValue, "--quiet",
            "--threads", String(threads),
        ])
        row(
            "\(preset.rawValue) preset: train on magnetic_tile train/good (\(trainCount) images)",
            String(format: "%.1f s", train.seconds),
            String(format: "(peak RSS %.0f MiB, exit %d)", train.peakMiB, train.status))
        // Per-image time as `eval` reports it (decode to map, median), in this process: it has
        // loaded only the backbone so far (training ran in a child).
        guard
            let detector = try? ModelBundle.read(
                model, extractor: PatchFeatureExtractor(backbone: network),
                backboneSHA256: weightsSHA256)
        else { continue }
        var times = [Double]()
        for item in set.items {
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard let image = try? ImageCodec.read(contentsOf: item.path) else { continue }
            _ = detector.inspect(image)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        times.sort()
        row(
            "\(preset.rawValue) preset (\(detector.settings.components.map(\.rawValue).joined(separator: "+"))), decode to map",
            String(format: "%.1f ms/image", times.isEmpty ? 0 : times[times.count / 2]),
            "(median over \(times.count) test images, as `eval` reports it)")
        if preset == .fast {
            let r = Evaluator.evaluate(detector, on: set)
            row(
                "fast preset accuracy (image AUROC / pixel AUROC / AUPRO@0.3 / F1-max)",
                String(
                    format: "%.3f / %.3f / %.3f / %.3f", r.overall.image_auroc ?? 0, r.overall.pixel_auroc ?? 0,
                    r.overall.aupro ?? 0, r.overall.f1_max ?? 0), "(`anomap eval DATA --train --preset fast`)")
        }
        let bare = runChild([
            exe, "inspect", data + "/test/good", "--model", model, "--out", scratch + "/a-\(preset.rawValue)",
            "--no-images", "--quiet", "--threads", String(threads),
        ])
        row(
            "\(preset.rawValue) preset: inspect \(testCount) images, results only",
            String(format: "%.1f ms/image", 1000 * bare.seconds / Double(testCount)),
            String(format: "(whole command incl. start-up; peak RSS %.0f MiB)", bare.peakMiB))
        let full = runChild([
            exe, "inspect", data + "/test/good", "--model", model, "--out", scratch + "/b-\(preset.rawValue)",
            "--quiet", "--threads", String(threads),
        ])
        row(
            "\(preset.rawValue) preset: inspect \(testCount) images, with heatmap/overlay/mask PNGs",
            String(format: "%.1f images/s", Double(testCount) / full.seconds),
            String(
                format: "(%.1f ms/image, whole command; peak RSS %.0f MiB)", 1000 * full.seconds / Double(testCount),
                full.peakMiB))
        guard preset == .learned else { continue }
        if let probe = set.items.first.flatMap({ try? ImageCodec.read(contentsOf: $0.path) }) {
            shiftCostRow(detector, probe: probe, row)
        }
        pipelineRows(detector, sources: pipelineSources(sample), scratch: scratch, row)
        let report = runChild([
            exe, "inspect", data + "/test/good", "--model", model, "--out", scratch + "/c", "--quiet",
            "--report", scratch + "/report", "--threads", String(threads),
        ])
        row(
            "\(preset.rawValue) preset: inspect \(testCount) images, PNGs and HTML report",
            String(format: "%.1f images/s", Double(testCount) / report.seconds),
            String(
                format: "(%.1f ms/image, whole command; peak RSS %.0f MiB)", 1000 * report.seconds / Double(testCount),
                report.peakMiB))
    }
} else {
    print("  (detector rows skipped: no dataset at \(data); set ANOMAP_BENCH_DATA to an MVTec-layout folder)")
}

// High resolution: the small-defect benchmark (1024x2560 parts with hairline cracks, pinholes
// and faint stains, made by SyntheticData), squashed to 256x256 against the resolution `train`
// chooses (aspect kept, tiled); the cost against the pixels processed; a 2000x8000 image.
if environment["ANOMAP_BENCH_HIGHRES"] != "0" {
    let exe = root.appendingPathComponent(".build/release/anomap").path
    let scratch = NSTemporaryDirectory() + "anomap-bench-highres-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    print("  high resolution: writing the small-defect benchmark and evaluating it (several minutes)...")
    func metrics(_ out: String) -> String {
        guard let bytes = FileManager.default.contents(atPath: out + "/metrics.json"),
            let report = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any],
            let o = report["overall"] as? [String: Any]
        else { return "failed" }
        func number(_ d: [String: Any], _ key: String) -> Double { (d[key] as? NSNumber)?.doubleValue ?? 0 }
        return String(
            format: "%.3f / %.3f / %.3f (%.0f ms/image, train %.0f s)", number(o, "image_auroc"),
            number(o, "pixel_auroc"), number(o, "aupro"), number(report, "ms_per_image"),
            number(report, "train_seconds"))
    }
    let squash = ["--no-keep-aspect", "--input-size", "256", "--tile", "0"]
    // What train chose before the common size: native resolution up to 1024^2 pixels in tiles.
    let tiles = ["--keep-aspect", "--input-size", "1024", "--tile", "256"]
    for channels in [1, 3] {
        let set = scratch + "/small-defects-\(channels)"
        guard (try? SmallDefectParts.write(to: set, shape: .init(channels: channels))) != nil else { continue }
        let kind = channels == 1 ? "gray" : "RGB"
        for preset in channels == 1 ? DetectorSettings.Preset.allCases : [.fast] {
            var variants = [("256x256 squash", "squash", squash), ("chosen by train", "chosen", [String]())]
            if preset == .fast { variants.insert(("256-pixel tiles at 1024^2", "tiles", tiles), at: 1) }
            for (name, tag, extra) in variants {
                let out = scratch + "/eval-\(channels)-\(preset.rawValue)-\(tag)"
                let model = scratch + "/\(preset.rawValue)-\(channels)-\(tag).safetensors"
                let run = runChild(
                    [
                        exe, "eval", set, "--train", "--preset", preset.rawValue, "--out", out, "--save-model", model,
                        "--quiet", "--threads", String(threads),
                    ] + extra, silent: true)
                row(
                    "small defects (\(kind) 1024x2560), \(preset.rawValue) preset, \(name): image AUROC / pixel AUROC / AUPRO@0.3",
                    metrics(out), String(format: "(peak RSS %.0f MiB, exit %d)", run.peakMiB, run.status))
            }
        }
    }
    // Cost against pixels: fast models at 1x, 4x and 16x the pixels of 256x256, aspect kept in
    // 256-pixel tiles and at one common size, each inspecting the gray set's good test images.
    let gray = scratch + "/small-defects-1"
    for (layout, tile) in [("--tile 256", "256"), ("common size", "0")] {
        for (factor, side) in [(1, 256), (4, 512), (16, 1024)] {
            let model = scratch + "/scale-\(tile)-\(side).safetensors"
            let train = runChild([
                exe, "train", gray + "/train/good", "-o", model, "--preset", "fast", "--input-size", String(side),
                "--keep-aspect", "--tile", tile, "--quiet", "--threads", String(threads),
            ])
            let count = (try? FileManager.default.contentsOfDirectory(atPath: gray + "/test/good").count) ?? 1
            let run = runChild([
                exe, "inspect", gray + "/test/good", "--model", model, "--out", scratch + "/scale-out-\(tile)-\(side)",
                "--no-images", "--quiet", "--threads", String(threads),
            ])
            row(
                "fast preset, \(factor)x the pixels of 256x256 (--input-size \(side) --keep-aspect, \(layout)): inspect",
                String(format: "%.0f ms/image", 1000 * run.seconds / Double(count)),
                String(
                    format: "(whole command over %d 1024x2560 images; peak RSS %.0f MiB; training peak %.0f MiB)",
                    count, run.peakMiB, train.peakMiB))
        }
    }
    // A 2000x8000 part inspected with the models `train` chose for the gray set.
    var g = SeededGenerator(seed: 99)
    let huge = scratch + "/huge/part.png"
    try? FileManager.default.createDirectory(atPath: scratch + "/huge", withIntermediateDirectories: true)
    if let part = try? SmallDefectParts.defective("hairline", .init(width: 2000, height: 8000), generator: &g),
        (try? ImageCodec.writePNG(part.image, to: huge, compressionLevel: 1)) != nil
    {
        for preset in DetectorSettings.Preset.allCases {
            let run = runChild([
                exe, "inspect", huge, "--model", scratch + "/\(preset.rawValue)-1-chosen.safetensors", "--out",
                scratch + "/huge-out-\(preset.rawValue)", "--quiet", "--threads", String(threads),
            ])
            row(
                "\(preset.rawValue) preset, inspect one 2000x8000 image with heatmap/overlay/mask PNGs",
                String(format: "%.1f s", run.seconds),
                String(format: "(peak RSS %.0f MiB, limit 1024; exit %d)", run.peakMiB, run.status))
        }
    }
}

// Ablation of the scoring components on the dataset: one model is trained with every
// component, then each combination is evaluated on its own (each component keeps its own
// calibration). A row's training time is the shared phases (teacher features, calibration)
// plus the phases its components need.
var ablation: [String] = []
if environment["ANOMAP_BENCH_ABLATION"] != "0", let set = dataset {
    print("  ablation: training every component on \(set.trainingImages.count) images (several minutes)...")
    var settings = DetectorSettings()
    settings.components = [.knn, .gaussian, .st, .variance, .ae, .gan]
    let extractor = PatchFeatureExtractor(backbone: network)
    if let (all, report) = try? Trainer.train(
        paths: set.trainingImages, extractor: extractor, backboneSHA256: weightsSHA256,
        settings: settings)
    {
        let phases = report.phaseSeconds
        let shared = (phases["features"] ?? 0) + (phases["calibration"] ?? 0)
        // (map components, image-score components; empty = the map's maximum)
        let combos: [([Component], [Component])] = [
            ([.knn], []), ([.gaussian], []), ([.st], []), ([.st, .variance], []), ([.ae], []), ([.st, .ae], []),
            ([.st, .ae, .knn], []), ([.gaussian, .st, .ae], []), ([.gaussian, .st], [.gaussian]),
            ([.gaussian, .ae], [.gaussian]),
            ([.gaussian, .st, .ae], [.gaussian]), ([.gaussian, .st, .ae, .knn], [.gaussian]), ([.gan], []),
            ([.gaussian, .st, .ae, .gan], [.gaussian]), ([.gaussian, .st, .ae, .gan], [.gaussian, .gan]),
        ]
        ablation.append(
            "| components | image score | image AUROC | pixel AUROC | AUPRO@0.3 | F1-max | train s | ms/image |")
        ablation.append("|---|---|---|---|---|---|---|---|")
        for (combo, score) in combos {
            let isDefault = combo == DetectorSettings().components && score == DetectorSettings().scoreComponents
            // The default's weights, and the default's with weight 1 for `gan` beside them.
            let defaults = DetectorSettings()
            let extendsDefault = combo.starts(with: defaults.components) && combo.count == defaults.components.count + 1
            let weights =
                isDefault ? defaults.componentWeights : extendsDefault ? defaults.componentWeights + [1] : []
            guard let detector = try? all.selecting(combo, weights: weights, scoreComponents: score) else { continue }
            let r = Evaluator.evaluate(detector, on: set)
            var train = shared
            for phase in Set(combo.compactMap { report.componentPhases[$0] }) { train += phases[phase] ?? 0 }
            let name = combo.map(\.rawValue).joined(separator: "+") + (isDefault ? " (default)" : "")
            let scoreName = score.isEmpty ? "max of map" : score.map(\.rawValue).joined(separator: "+")
            let line = String(
                format: "| %@ | %@ | %.3f | %.3f | %.3f | %.3f | %.0f | %.1f |", name, scoreName,
                r.overall.image_auroc ?? 0, r.overall.pixel_auroc ?? 0, r.overall.aupro ?? 0,
                r.overall.f1_max ?? 0, train, r.ms_per_image)
            print("  " + line)
            ablation.append(line)
        }
        // The gan component's variants, each trained alone: its map from the discriminator
        // alone (and, from that model, the image score as the pooled discriminator output,
        // mean -log D over every cell, instead of the map's maximum) or from the residual
        // alone, its phase 1 alone, and OGNet's own negatives in phase 2.
        let variants: [(String, Bool, (inout LearningSettings) -> Void)] = [
            ("gan, map: discriminator only", true, { $0.ganMap = .input }),
            ("gan, map: residual only", false, { $0.ganMap = .residual }),
            ("gan, phase 1 only", false, { $0.ganDiscriminatorEpochs = 0 }),
            ("gan, OGNet's negatives in phase 2", false, { $0.ganNegatives = .ognet }),
        ]
        for (name, pooled, change) in variants {
            var alone = DetectorSettings()
            alone.components = [.gan]
            alone.scoreComponents = []
            change(&alone.learning)
            guard
                let (detector, report) = try? Trainer.train(
                    paths: set.trainingImages, extractor: extractor, backboneSHA256: weightsSHA256, settings: alone)
            else { continue }
            let r = Evaluator.evaluate(detector, on: set)
            var lines = [
                String(
                    format: "| %@ | max of map | %.3f | %.3f | %.3f | %.3f | %.0f | %.1f |", name,
                    r.overall.image_auroc ?? 0, r.overall.pixel_auroc ?? 0, r.overall.aupro ?? 0,
                    r.overall.f1_max ?? 0, report.seconds, r.ms_per_image)
            ]
            if pooled {
                var scores = [Double](), labels = [Bool]()
                for item in set.items {
                    guard let image = try? detector.read(contentsOf: item.path).image else { continue }
                    let cells = detector.rawTileMaps(image).tiles.flatMap { $0[0] }
                    scores.append(Double(cells.reduce(0, +)) / Double(max(cells.count, 1)))
                    labels.append(item.type != "good")
                }
                let auroc = areaUnderROC(scores: scores, labels: labels) ?? 0
                lines.append(String(format: "| %@ | pooled discriminator output | %.3f | | | | | |", name, auroc))
            }
            for line in lines {
                print("  " + line)
                ablation.append(line)
            }
        }
        let phaseText = phases.keys.sorted().map { String(format: "%@ %.0f s", $0, phases[$0] ?? 0) }.joined(
            separator: ", ")
        ablation.append("")
        ablation.append(
            "(one model with every component, trained in \(String(format: "%.0f", report.seconds)) s: \(phaseText))")
    }
}

print("")
print("| measurement | median | notes |")
print("|---|---|---|")
for (name, value, note) in rows {
    print("| \(name) | \(value) | \(note.trimmingCharacters(in: CharacterSet(charactersIn: "()"))) |")
}
if !ablation.isEmpty {
    print("")
    print("Ablation on \((data as NSString).lastPathComponent):")
    for line in ablation { print(line) }
}
