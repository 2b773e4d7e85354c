import Dispatch
import Foundation
import Imaging
import Models
import Tensors

/// A trained detector: teacher features, an ordered list of scoring components, their
/// calibration, the fused map's normalization and the threshold.
public struct Detector: Sendable {
    /// The frozen feature extractor.
    public let extractor: PatchFeatureExtractor
    /// The scoring components, in `settings.components` order.
    public let components: [any ScoringComponent]
    /// Per-position standardization of learned components' maps, by component.
    public var positional: [Component: PositionalStandardization]
    /// Calibration of each component's map, in `settings.components` order.
    public let componentNormalizations: [Normalization]
    /// Training settings.
    public let settings: DetectorSettings
    /// Calibration of the heatmap (the fused map).
    public let normalization: Normalization
    /// Calibration of the image score when it comes from its own map (`hasScoreMap`); otherwise
    /// the same as `normalization`.
    public let scoreNormalization: Normalization
    /// Normalized image score at or above which an image is anomalous; also the pixel
    /// threshold of the predicted defect mask.
    public var threshold: Float
    /// sha256 of the backbone weights file it was trained with.
    public let backboneSHA256: String
    /// Image-level shift detectors, when the model has them (bundles from before have none).
    public var shift: ShiftModel?

    /// Assembles a detector from its parts; `components` follow `settings.components`.
    public init(
        extractor: PatchFeatureExtractor, components: [any ScoringComponent],
        positional: [Component: PositionalStandardization] = [:], componentNormalizations: [Normalization],
        settings: DetectorSettings, normalization: Normalization, scoreNormalization: Normalization? = nil,
        threshold: Float, backboneSHA256: String, shift: ShiftModel? = nil
    ) {
        precondition(components.map(\.name) == settings.components, "components do not follow the settings")
        precondition(componentNormalizations.count == settings.components.count)
        self.extractor = extractor
        self.components = components
        self.positional = positional
        self.componentNormalizations = componentNormalizations
        self.settings = settings
        self.normalization = normalization
        self.scoreNormalization = scoreNormalization ?? normalization
        self.threshold = threshold
        self.backboneSHA256 = backboneSHA256
        self.shift = shift
    }

    /// The first component of type `type`, if the detector has one.
    public func component<C: ScoringComponent>(_ type: C.Type) -> C? {
        components.lazy.compactMap { $0 as? C }.first
    }

    /// The default threshold for a sensitivity in 0...1: 1.5 - sensitivity on the normalized
    /// scale, so the default 0.5 flags an image whose peak exceeds the peak of 99% of the
    /// held-out good images.
    public static func threshold(sensitivity: Double) -> Float { Float(1.5 - sensitivity) }

    /// Where coarse maps live: the feature grid and the model input it came from.
    public struct MapGeometry: Sendable {
        /// Feature grid height and width (one map value per patch).
        public var gridHeight: Int, gridWidth: Int
        /// Model input height and width.
        public var inputHeight: Int, inputWidth: Int
    }

    /// What the components see of each tile of `image`, in layout order (one for an untiled
    /// detector), made one at a time as `body` asks for them; returns the layout.
    @discardableResult
    public func forEachTile(of image: Image, _ body: (ComponentInput) -> Void) -> TileLayout {
        ComponentInput.forEachTile(of: image, settings: settings, extractor: extractor, body)
    }

    /// Each tile's raw component maps (`tiles[tile][component]`, settings order) and the layout;
    /// `observe` sees each tile's input too (what the shift detectors gather, in the same pass).
    public func rawTileMaps(
        _ image: Image, observing observe: (ComponentInput) -> Void = { _ in }
    ) -> (
        tiles: [[[Float]]], layout: TileLayout
    ) {
        var tiles = [[[Float]]]()
        let layout = forEachTile(of: image) {
            observe($0)
            tiles.append(rawCoarseMaps($0))
        }
        return (tiles, layout)
    }

    /// What the shift detectors read of an image, in one pass over its tiles and without the
    /// components' maps: the teacher features pooled over every patch of every tile (per-channel
    /// median, (D)), and, when `gradients`, each component's training-loss gradient norm
    /// averaged over tiles (the components that have one: `ScoringComponent.lossGradientNorm`).
    public func shiftFeatures(_ image: Image, gradients: Bool = false) -> ShiftFeatures {
        var probe = ShiftProbe(components: gradients ? components : [])
        _ = forEachTile(of: image) { probe.observe($0) }
        return probe.features
    }

    /// Tiles' raw maps standardized position by position (where the detector has statistics,
    /// which are per tile position) and stitched into one map per component on the whole
    /// image's grid, with its geometry.
    public func stitched(_ tiles: [[[Float]]], layout: TileLayout) -> (maps: [[Float]], geometry: MapGeometry) {
        let maps = components.indices.map { c in
            layout.stitch(
                tiles.map { tile in
                    guard let standardization = positional[components[c].name],
                        standardization.mean.count == tile[c].count
                    else { return tile[c] }
                    return standardization.apply(tile[c])
                })
        }
        let grid = layout.grid
        return (
            maps,
            MapGeometry(
                gridHeight: grid.height, gridWidth: grid.width, inputHeight: layout.height, inputWidth: layout.width)
        )
    }

    /// Each component's map on the whole image's feature grid (positionally standardized where
    /// the detector has statistics, tiles stitched), in settings order, and their geometry.
    public func coarseMaps(_ image: Image) -> (maps: [[Float]], geometry: MapGeometry) {
        let (tiles, layout) = rawTileMaps(image)
        return stitched(tiles, layout: layout)
    }

    /// Each component's raw map on the feature grid, in settings order.
    ///
    /// Every network and scorer after the teacher is an independent job: the pieces of shared
    /// work (one per student) and each component without shared work. With two or more threads
    /// they run side by side, each on one core (measured faster than splitting each small layer
    /// across cores); then the components with shared work read its outputs.
    func rawCoarseMaps(_ input: ComponentInput) -> [[Float]] {
        var shared = [any SharedWork](), sharedIndex = [Int?](repeating: nil, count: components.count)
        for (i, component) in components.enumerated() {
            guard let work = component.sharedWork else { continue }
            if let k = shared.firstIndex(where: { $0.key == work.key }) {
                sharedIndex[i] = k
            } else {
                sharedIndex[i] = shared.count
                shared.append(work)
            }
        }
        let offsets = shared.reduce(into: [0]) { $0.append(($0.last ?? 0) + $1.pieces) }
        let pieceCount = offsets.last ?? 0
        let own = components.indices.filter { sharedIndex[$0] == nil }
        // Larger jobs first, so that the last ones to start are small and the cores finish
        // together: whole components, then the pieces of works cut in few pieces, then those
        // cut in many. Each output keeps its slot, so the order changes no number.
        let pieceOwner = shared.indices.sorted { shared[$0].pieces < shared[$1].pieces }
            .flatMap { k in (0..<shared[k].pieces).map { (k, $0) } }
        var outputs = [Tensor](repeating: Tensor(shape: [0]), count: pieceCount)
        var raw = [[Float]](repeating: [], count: components.count)
        let parallel = computeThreads > 1
        outputs.withUnsafeMutableBufferPointer { outputBuffer in
            raw.withUnsafeMutableBufferPointer { rawBuffer in
                let (out, maps) = (UnsafeSendable(outputBuffer.baseAddress), UnsafeSendable(rawBuffer.baseAddress))
                func run(_ job: Int) {
                    if job < own.count {
                        let index = own[job]
                        maps.pointer?[index] = components[index].coarseMap(input, shared: [], singleThreaded: parallel)
                    } else {
                        let (k, piece) = pieceOwner[job - own.count]
                        out.pointer?[offsets[k] + piece] = shared[k].piece(piece, of: input, singleThreaded: parallel)
                    }
                }
                let jobs = pieceCount + own.count
                if parallel {
                    DispatchQueue.concurrentPerform(iterations: jobs, execute: run)
                } else {
                    (0..<jobs).forEach(run)
                }
            }
        }
        for (i, k) in sharedIndex.enumerated() {
            guard let k else { continue }
            raw[i] = components[i].coarseMap(
                input, shared: Array(outputs[offsets[k]..<offsets[k + 1]]), singleThreaded: parallel)
        }
        return raw
    }

    /// The same detector restricted to some of its trained components, each keeping its stored
    /// calibration (for ablations and for trying a lighter model without retraining). The
    /// fused scale keeps 0 at normal and about 1 at the good images' peak, but it is not
    /// re-calibrated: set a threshold for it by hand or with validation images.
    public func selecting(
        _ names: [Component], weights: [Float] = [], scoreComponents: [Component]? = nil
    ) throws -> Detector {
        var indices = [Int]()
        for c in names {
            guard let i = settings.components.firstIndex(of: c) else {
                throw PipelineError.input(
                    "the model has no \(c) component (it has \(settings.components.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            indices.append(i)
        }
        guard !indices.isEmpty else { throw PipelineError.input("no components selected") }
        var subset = settings
        subset.components = names
        subset.componentWeights = weights.isEmpty && names == settings.components ? settings.componentWeights : weights
        subset.scoreComponents =
            scoreComponents ?? (settings.scoreComponents.allSatisfy(names.contains) ? settings.scoreComponents : [])
        guard subset.scoreComponents.allSatisfy(names.contains) else {
            throw PipelineError.input("score components must be among the selected components")
        }
        let norms = indices.map { componentNormalizations[$0] }
        // One component: its raw map with its own calibration; several: calibrated maps averaged.
        let identity = Normalization(normalLevel: 0, peakLevel: 1)
        let fused = norms.count == 1 ? norms[0] : identity
        var scoreNorm = fused
        if subset.scoreComponents.count == 1, let i = settings.components.firstIndex(of: subset.scoreComponents[0]) {
            scoreNorm = componentNormalizations[i]
        } else if !subset.scoreComponents.isEmpty {
            scoreNorm = subset.scoreComponents == settings.scoreComponents ? scoreNormalization : identity
        }
        return Detector(
            extractor: extractor, components: indices.map { components[$0] }, positional: positional,
            componentNormalizations: norms, settings: subset, normalization: fused,
            scoreNormalization: scoreNorm, threshold: threshold, backboneSHA256: backboneSHA256, shift: shift)
    }

    /// Appends (x, y) * weight channels to (1, D, h, w) features: the patch's position in 0...1
    /// on the whole image's grid of `gridWidth` x `gridHeight` cells, of which the features are
    /// the cells from `offset` on (a tile's).
    static func embeddings(
        _ features: Tensor, positionWeight: Float, offset: (x: Int, y: Int) = (0, 0),
        grid: (height: Int, width: Int)? = nil
    ) -> Tensor {
        guard positionWeight > 0 else { return features }
        let h = features.height, w = features.width
        let (gh, gw) = grid ?? (h, w)
        var position = Tensor(shape: [1, 2, h, w])
        for y in 0..<h {
            for x in 0..<w {
                position.storage[y * w + x] = positionWeight * (Float(offset.x + x) + 0.5) / Float(gw)
                position.storage[h * w + y * w + x] = positionWeight * (Float(offset.y + y) + 0.5) / Float(gh)
            }
        }
        return concatChannels([features, position])
    }
}

extension ComponentInput {
    /// What the components see of each tile of `image` under `settings` (also before a
    /// detector exists), in layout order, made one at a time as `body` asks for them (the whole
    /// working image once when untiled); returns the layout.
    @discardableResult
    static func forEachTile(
        of image: Image, settings: DetectorSettings, extractor: PatchFeatureExtractor,
        _ body: (ComponentInput) -> Void
    ) -> TileLayout {
        let input = settings.input(for: image)
        let layout = TileLayout(width: input.width, height: input.height, settings: settings)
        for t in 0..<layout.count {
            body(ComponentInput(tile: t, of: input, layout: layout, settings: settings, extractor: extractor))
        }
        return layout
    }

    /// What the components see of tile `index` of a working image (1, 3, H, W) laid out by
    /// `layout`; the position channels, if any, locate the tile's patches in the whole image.
    init(
        tile index: Int, of input: Tensor, layout: TileLayout, settings: DetectorSettings,
        extractor: PatchFeatureExtractor
    ) {
        let crop = layout.crop(input, tile: index)
        let teacher = extractor.embed(crop, includingStride4: settings.includesStride4)
        self.init(
            image: crop, teacher: teacher,
            embeddings: Detector.embeddings(
                teacher, positionWeight: settings.positionWeight, offset: layout.cellOffset(index), grid: layout.grid))
    }
}

/// An image's features as the shift detectors read them, before standardization.
public struct ShiftFeatures: Sendable {
    /// The teacher's patch embeddings pooled over the image (per-channel median), (D).
    public var pooled: [Float]
    /// The components' training-loss gradient norms, averaged over tiles (empty when not asked for).
    public var gradients: [Component: Float]
}

/// Gathers `ShiftFeatures` tile by tile: the pooled teacher features, and the gradient norms
/// of `components` (those that have one).
struct ShiftProbe {
    let components: [any ScoringComponent]
    var pooling = Pooling(), sums = [Component: Float](), tiles = 0

    /// Adds one tile.
    mutating func observe(_ input: ComponentInput) {
        pooling.add(input.teacher)
        tiles += 1
        for component in components {
            if let norm = component.lossGradientNorm(input) { sums[component.name, default: 0] += norm }
        }
    }

    /// What was gathered.
    var features: ShiftFeatures { features(pooled: pooling.value) }

    /// What was gathered, with the pooled features computed already (`pooling`'s medians).
    func features(pooled: [Float]) -> ShiftFeatures {
        ShiftFeatures(pooled: pooled, gradients: sums.mapValues { $0 / Float(max(1, tiles)) })
    }
}

/// Per-channel medians of (1, D, h, w) feature maps over all their positions, accumulated
/// map by map. The median, not the mean: a defect moves the patches it covers, which moves a
/// mean in proportion to its area (a fray over a fifth of a tile reads as a shifted image),
/// while a whole-image change (lighting, blur, another product) moves every patch and so the
/// median; measured on magnetic_tile, see the README ("Whole-image shift").
struct Pooling {
    var values = [[Float]]()

    /// Adds a map's positions.
    mutating func add(_ features: Tensor) {
        let d = features.shape[1], hw = features.height * features.width
        if values.isEmpty { values = [[Float]](repeating: [], count: d) }
        features.storage.withUnsafeBufferPointer { f in
            for c in 0..<d { values[c] += UnsafeBufferPointer(rebasing: f[(c * hw)..<((c + 1) * hw)]) }
        }
    }

    /// The medians (empty before any map).
    var value: [Float] { values.map { v in v.withUnsafeBufferPointer { median($0) } } }

    /// The medians of `channels` alone, written at their channel indices of `out`.
    func medians(of channels: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for c in channels { out[c] = values[c].withUnsafeBufferPointer { median($0) } }
    }
}
