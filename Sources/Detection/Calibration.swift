import Imaging
import Models
import Tensors

extension Trainer {
    /// Held-out images whose shifted copies form the shift detectors' validation set.
    public static let shiftedValidationImages = 20

    /// A detector calibrated on held-out good images: each component's map, then the fused
    /// map (and the image score's own map, when it has one), normalized so that 0 is the
    /// median normal pixel and 1 the 99th percentile of the images' peaks. Learned components'
    /// maps are first standardized position by position when the settings ask for it. Also
    /// returns what the shift detectors are fitted on: each readable image's pooled teacher
    /// features and ImageNet head, and the same of shifted copies of it (every `ImageShift`).
    static func calibrate(
        _ components: [any ScoringComponent], extractor: PatchFeatureExtractor,
        settings: DetectorSettings, on paths: [String], threshold: Float, backboneSHA256: String,
        failures: inout [String], progress: ProgressHandler
    ) throws -> (
        detector: Detector, heldOut: [ShiftInput], shifted: [ShiftInput]
    ) {
        let identity = Normalization(normalLevel: 0, peakLevel: 1)
        func detector(
            positional: [Component: PositionalStandardization] = [:], perComponent: [Normalization]? = nil,
            normalization: Normalization = identity, scoreNormalization: Normalization? = nil
        ) -> Detector {
            Detector(
                extractor: extractor, components: components, positional: positional,
                componentNormalizations: perComponent ?? components.map { _ in identity }, settings: settings,
                normalization: normalization, scoreNormalization: scoreNormalization, threshold: threshold,
                backboneSHA256: backboneSHA256)
        }
        // Coarse maps are small (one value per patch): kept, so the positional statistics and
        // the quantiles come from one pass of the networks. Positional statistics are per tile
        // position (every tile has the same grid), so the tiles are kept until stitched.
        var tiles = [[[[Float]]]](), layouts = [TileLayout]()
        var heldOut = [ShiftInput](), shifted = [ShiftInput]()
        let raw = detector()
        // The synthetic shifts of the held-out images: the validation set of shift detectors
        // that choose a parameter (ODIN's temperature). Their own seed: no other draw moves.
        var shiftGenerator = SeededGenerator(seed: settings.seed ^ 0x5641_4C49_4400_0000)
        let backbone = extractor.backbone
        let perturbing = settings.fitsODINPerturbation ? Lite0InputGradient(backbone) : nil
        func head(_ image: Image) -> HeadOutput {
            HeadOutput(backbone: backbone, input: settings.input(for: image), perturbing: perturbing)
        }
        for (i, path) in paths.enumerated() {
            progress("calibration", i, paths.count)
            do {
                let image = try raw.read(contentsOf: path).image
                var probe = ShiftProbe(components: components)
                let (maps, layout) = raw.rawTileMaps(image) { probe.observe($0) }
                let features = probe.features
                heldOut.append(ShiftInput(pooled: features.pooled, head: head(image), gradients: features.gradients))
                // Of the first `shiftedValidationImages` only: shifting every held-out image
                // cost 36 s of a 70 s fast-preset training on magnetic_tile.
                for kind in ImageShift.allCases where heldOut.count <= Self.shiftedValidationImages {
                    let copy = try kind.apply(image, generator: &shiftGenerator)
                    shifted.append(ShiftInput(pooled: raw.shiftFeatures(copy).pooled, head: head(copy)))
                }
                tiles.append(maps)
                layouts.append(layout)
            } catch {
                failures.append(String(describing: error))
            }
        }
        progress("calibration", paths.count, paths.count)
        guard !tiles.isEmpty else {
            throw PipelineError.input("none of the calibration images could be read")
        }
        var positional = [Component: PositionalStandardization]()
        for (c, name) in settings.components.enumerated()
        where name.isLearned && settings.learning.positionalNormalization {
            positional[name] = PositionalStandardization(of: tiles.flatMap { $0.map { $0[c] } })
        }
        let standardized = detector(positional: positional)
        // Each image its own geometry: with aspect-preserving input the grids differ.
        var coarse = [[[Float]]](repeating: [], count: components.count)
        var geometries = [Detector.MapGeometry]()
        for (maps, layout) in zip(tiles, layouts) {
            let (stitched, geometry) = standardized.stitched(maps, layout: layout)
            for (c, map) in stitched.enumerated() { coarse[c].append(map) }
            geometries.append(geometry)
        }
        tiles = []

        // Each component: the median of its refined maps' pixels (every 7th) and the 99th
        // percentile of their peaks.
        var pixels = [[Float]](repeating: [], count: components.count)
        var peaks = [[Float]](repeating: [], count: components.count)
        for image in layouts.indices {
            for c in components.indices {
                let result = standardized.refine(coarse[c][image], geometry: geometries[image])
                peaks[c].append(result.score)
                pixels[c] += stride(from: 0, to: result.map.count, by: 7).map { result.map[$0] }
            }
        }
        let perComponent = zip(pixels, peaks).map {
            Normalization(normalLevel: quantile($0.0, 0.5), peakLevel: quantile($0.1, 0.99))
        }

        // The fused map (and the score's own map) from the same coarse maps, refined once more
        // (keeping every refined map instead would make memory grow with the calibration set).
        // A single component's fine map is its raw map: its own calibration applies.
        let fusing = detector(positional: positional, perComponent: perComponent)
        let groups =
            [(Array(settings.components.indices), settings.wideBlurSigma > 0)]
            + (fusing.hasScoreMap ? [(fusing.scoreIndices, false)] : [])
        let ownCalibration = groups.map { indices, widened in indices.count == 1 && !widened }
        var fusedPixels = groups.map { _ in [Float]() }, fusedPeaks = groups.map { _ in [Float]() }
        if ownCalibration.contains(false) {
            for image in layouts.indices {
                let (map, scoreMap) = fusing.fusedMaps(coarse: coarse.map { $0[image] }, geometry: geometries[image])
                for (g, result) in [map, scoreMap ?? map].prefix(groups.count).enumerated() where !ownCalibration[g] {
                    fusedPeaks[g].append(result.score)
                    fusedPixels[g] += stride(from: 0, to: result.map.count, by: 7).map { result.map[$0] }
                }
            }
        }
        let calibrated = groups.indices.map { g in
            ownCalibration[g]
                ? perComponent[groups[g].0[0]]
                : Normalization(normalLevel: quantile(fusedPixels[g], 0.5), peakLevel: quantile(fusedPeaks[g], 0.99))
        }
        let calibratedDetector = detector(
            positional: positional, perComponent: perComponent, normalization: calibrated[0],
            scoreNormalization: calibrated.count > 1 ? calibrated[1] : calibrated[0])
        return (calibratedDetector, heldOut, shifted)
    }
}
