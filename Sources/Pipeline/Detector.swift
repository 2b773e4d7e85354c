import Dispatch
import Foundation
import Imaging
import Metrics
import Models
import Tensors

/// Scoring components a detector can combine.
public enum Component: String, Codable, CaseIterable, Sendable {
    /// Distance to the nearest patch in a memory bank of normal patches (PatchCore).
    case knn
    /// Mahalanobis distance to a Gaussian of normal patches at the same position (PaDiM).
    case gaussian
    /// Teacher-student discrepancy: students trained to imitate the teacher on normal images.
    case st
    /// Disagreement (predictive variance) among the students.
    case variance
    /// Reconstruction residual of the memory-bank autoencoder (MemAE).
    case ae

    /// Components from a comma-separated list of names ("gaussian,st").
    public static func list(_ text: String) throws -> [Component] {
        let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let parsed = names.compactMap(Component.init(rawValue:))
        guard !parsed.isEmpty, parsed.count == names.count else {
            throw PipelineError.input("components are a comma-separated list of: \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return parsed
    }

    /// Whether the component needs the students.
    public var usesStudents: Bool { self == .st || self == .variance }
    /// Whether the component is learned by gradient descent (rather than fitted in one pass).
    public var isLearned: Bool { usesStudents || self == .ae }
}

/// Choices made when a detector is trained; stored in the model bundle.
public struct DetectorSettings: Codable, Equatable, Sendable {
    /// Scoring components; their calibrated maps are averaged. The default is what measured
    /// best on magnetic_tile (see the README's accuracy table).
    public var components: [Component] = [.gaussian, .st, .ae] {
        // Weights are positional: other components must not inherit another list's weights.
        didSet { if components != oldValue { componentWeights = [] } }
    }
    /// Weight of each component in the fused map (same order as `components`; empty = equal).
    /// The default counts the students twice: measured best for AUPRO on magnetic_tile
    /// (weights 1-2-1 to 1-3-1 form a plateau; see the README).
    public var componentWeights: [Float] = [1, 2, 1]
    /// Components whose fused map gives the image score (empty = all of `components`). The
    /// map (heatmap, mask, pixel metrics) always fuses every component; a subset here lets
    /// the image-level decision rest on the components that measure best for it. Training
    /// drops entries that are not among `components` (none left: all components score).
    public var scoreComponents: [Component] = [.gaussian]
    /// Embedding channels (a seeded random subset) the positional Gaussian models.
    public var gaussianChannels = 152
    /// Side of the square the image is resized to before feature extraction.
    public var inputSize = 256
    /// Patch embeddings kept in the memory bank.
    public var bankSize = 4096
    /// Share of the good images held out to calibrate normalization and threshold.
    public var calibrationShare = 0.15
    /// Seed for every random choice (split, patch sampling, projection, first coreset pick).
    public var seed: UInt64 = 0
    /// Largest number of training patches considered by the coreset (bounds memory and time).
    public var maxCandidates = 120_000
    /// Dimension of the random projection used for coreset selection.
    public var projectionDimension = 64
    /// Gaussian smoothing of the map, in pixels at `inputSize` (PatchCore uses 4 at 256;
    /// 2 measured slightly better for AUPRO here, with the wide map covering large defects).
    public var blurSigma: Float = 2
    /// Smoothing, in pixels at `inputSize`, of a second, wide-scale copy of the fused map; the
    /// heatmap is the pixelwise maximum of the two (0: off). Small defects keep their sharp
    /// peaks from the `blurSigma` map, large smooth ones (magnetic_tile's `uneven`) are covered
    /// whole by the wide map. The image score always comes from the `blurSigma` map.
    public var wideBlurSigma: Float = 0
    /// Weight of two extra embedding channels holding the patch's (x, y) position in 0...1:
    /// 0 ignores position; larger values make a patch match normal patches from nearby
    /// positions only (products photographed in a fixed pose).
    public var positionWeight: Float = 0

    /// Hyper-parameters of the learned components (st, variance, ae).
    public var learning = LearningSettings()

    /// Keep each image's aspect ratio (resizing to about inputSize^2 pixels, sides multiples
    /// of 8) instead of squashing it to an inputSize square.
    public var keepsAspectRatio = false

    /// The model-resolution size for an image of `width` x `height`.
    public func modelSize(width: Int, height: Int) -> (width: Int, height: Int) {
        guard keepsAspectRatio else { return (inputSize, inputSize) }
        let scale = Double(inputSize) / (Double(width) * Double(height)).squareRoot()
        func side(_ v: Int) -> Int { max(32, Int((Double(v) * scale / 8).rounded()) * 8) }
        return (side(width), side(height))
    }

    /// The image resized for the backbone and normalized: (1, 3, h, w).
    public func input(for image: Image) -> Tensor {
        let (w, h) = modelSize(width: image.width, height: image.height)
        return Preprocessing.lite0Input(image, width: w, height: h)
    }

    /// Feature grid (height, width) of a fixed-size input: the model size at stride 8.
    public var featureGrid: (height: Int, width: Int) {
        let size = modelSize(width: inputSize, height: inputSize)
        return ((size.height + 7) / 8, (size.width + 7) / 8)
    }

    /// Channels of a bank entry.
    public var embeddingDimension: Int { PatchFeatureExtractor.dimension + (positionWeight > 0 ? 2 : 0) }

    /// Defaults.
    public init() {}

    /// Training presets: named starting points that explicit options refine.
    public enum Preset: String, CaseIterable, Sendable {
        /// The defaults: gaussian + students + autoencoder, best at outlining each defect
        /// region (AUPRO); trains in about 4 minutes on 762 images.
        case learned
        /// Gaussian + a 1024-entry memory bank, with the wide-scale map: no gradient training
        /// (about 30 s on 762 images), under 20 ms per image, and the best pixel AUROC measured
        /// on magnetic_tile, at a lower AUPRO than `learned`.
        case fast

        /// The settings the preset starts from.
        public var settings: DetectorSettings {
            var s = DetectorSettings()
            if self == .fast {
                s.components = [.gaussian, .knn]
                s.scoreComponents = [.gaussian]
                s.bankSize = 1024
                s.wideBlurSigma = 24
            }
            return s
        }
    }

    /// Decodes settings; a field missing from an older bundle of the same format version
    /// takes its default, so adding an option does not orphan existing models.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = DetectorSettings()
        components = try c.decodeIfPresent([Component].self, forKey: .components) ?? [.knn]
        // Bundles written before these fields existed fused with equal weights and smoothed by 4.
        componentWeights = try c.decodeIfPresent([Float].self, forKey: .componentWeights) ?? []
        scoreComponents = try c.decodeIfPresent([Component].self, forKey: .scoreComponents) ?? []
        gaussianChannels = try c.decodeIfPresent(Int.self, forKey: .gaussianChannels) ?? d.gaussianChannels
        inputSize = try c.decodeIfPresent(Int.self, forKey: .inputSize) ?? d.inputSize
        bankSize = try c.decodeIfPresent(Int.self, forKey: .bankSize) ?? d.bankSize
        calibrationShare = try c.decodeIfPresent(Double.self, forKey: .calibrationShare) ?? d.calibrationShare
        seed = try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed
        maxCandidates = try c.decodeIfPresent(Int.self, forKey: .maxCandidates) ?? d.maxCandidates
        projectionDimension = try c.decodeIfPresent(Int.self, forKey: .projectionDimension) ?? d.projectionDimension
        blurSigma = try c.decodeIfPresent(Float.self, forKey: .blurSigma) ?? 4
        wideBlurSigma = try c.decodeIfPresent(Float.self, forKey: .wideBlurSigma) ?? d.wideBlurSigma
        positionWeight = try c.decodeIfPresent(Float.self, forKey: .positionWeight) ?? d.positionWeight
        keepsAspectRatio = try c.decodeIfPresent(Bool.self, forKey: .keepsAspectRatio) ?? d.keepsAspectRatio
        learning = try c.decodeIfPresent(LearningSettings.self, forKey: .learning) ?? d.learning
    }
}

/// Maps raw distances to a scale where 0 is the median normal pixel and 1 is the peak of
/// the held-out good images (their 99th-percentile image score).
public struct Normalization: Codable, Equatable, Sendable {
    /// Median raw pixel value over the calibration maps.
    public var normalLevel: Float
    /// 99th percentile of the calibration images' raw scores.
    public var peakLevel: Float

    /// Creates a normalization from its two levels.
    public init(normalLevel: Float, peakLevel: Float) {
        self.normalLevel = normalLevel
        self.peakLevel = peakLevel
    }

    /// The normalized value of a raw one.
    @inlinable
    public func apply(_ raw: Float) -> Float { (raw - normalLevel) / max(peakLevel - normalLevel, 1e-6) }
}

/// Per-position statistics of a component's coarse map over held-out good images: a learned
/// component errs more at some positions of every normal image (image borders and corners,
/// where padding and cropping vary), and standardizing each position against its own normal
/// spread keeps those positions from dominating the image score.
public struct PositionalStandardization: Sendable, Equatable {
    /// (h * w) mean of the map at each position.
    public var mean: [Float]
    /// (h * w) spread at each position, floored at the median spread.
    public var scale: [Float]

    /// Wraps stored statistics.
    public init(mean: [Float], scale: [Float]) {
        precondition(mean.count == scale.count)
        self.mean = mean
        self.scale = scale
    }

    /// Statistics of equally sized maps (at least one).
    public init(of maps: [[Float]]) {
        let p = maps.first?.count ?? 0, n = Double(max(maps.count, 1))
        var mean = [Float](repeating: 0, count: p), spread = [Float](repeating: 0, count: p)
        for i in 0..<p {
            var s = 0.0, q = 0.0
            for m in maps { s += Double(m[i]); q += Double(m[i]) * Double(m[i]) }
            mean[i] = Float(s / n)
            spread[i] = Float(max(q / n - (s / n) * (s / n), 0).squareRoot())
        }
        let floor = max(spread.isEmpty ? 1e-6 : quantile(spread, 0.5), 1e-6)
        self.mean = mean
        scale = spread.map { max($0, floor) }
    }

    /// A map standardized position by position.
    public func apply(_ map: [Float]) -> [Float] {
        precondition(map.count == mean.count)
        return (0..<map.count).map { (map[$0] - mean[$0]) / scale[$0] }
    }
}

/// A trained detector: teacher features, scoring components, normalization, threshold.
public struct Detector: Sendable {
    /// The frozen feature extractor.
    public let extractor: PatchFeatureExtractor
    /// The memory bank of normal patches (component `knn`).
    public let bank: PatchMemoryBank?
    /// Per-position Gaussians (component `gaussian`).
    public let gaussian: PositionalGaussian?
    /// Students (components `st` and `variance`).
    public let students: StudentEnsemble?
    /// Memory autoencoder (component `ae`).
    public let autoencoder: MemoryAutoencoder?
    /// Per-position standardization of learned components' maps, by component.
    public var positional: [Component: PositionalStandardization]
    /// Calibration of each component's map, in `settings.components` order.
    public let componentNormalizations: [Normalization]
    /// Training settings.
    public let settings: DetectorSettings
    /// Calibration result.
    public let normalization: Normalization
    /// Calibration of the image score when it comes from a subset of the components
    /// (`settings.scoreComponents`); otherwise unused.
    public let scoreNormalization: Normalization
    /// Normalized image score at or above which an image is anomalous; also the pixel
    /// threshold of the predicted defect mask.
    public var threshold: Float
    /// sha256 of the backbone weights file it was trained with.
    public let backboneSHA256: String

    /// Assembles a detector from its parts.
    public init(extractor: PatchFeatureExtractor, bank: PatchMemoryBank?, gaussian: PositionalGaussian?,
                students: StudentEnsemble? = nil, autoencoder: MemoryAutoencoder? = nil,
                positional: [Component: PositionalStandardization] = [:], componentNormalizations: [Normalization], settings: DetectorSettings,
                normalization: Normalization, scoreNormalization: Normalization? = nil, threshold: Float, backboneSHA256: String) {
        precondition(componentNormalizations.count == settings.components.count)
        self.extractor = extractor
        self.bank = bank
        self.gaussian = gaussian
        self.students = students
        self.autoencoder = autoencoder
        self.positional = positional
        self.componentNormalizations = componentNormalizations
        self.settings = settings
        self.normalization = normalization
        self.scoreNormalization = scoreNormalization ?? normalization
        self.threshold = threshold
        self.backboneSHA256 = backboneSHA256
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

    /// Each component's map on the feature grid (positionally standardized where the detector
    /// has statistics), in settings order, and their geometry.
    public func coarseMaps(_ image: Image) -> (maps: [[Float]], geometry: MapGeometry) {
        let input = settings.input(for: image)
        let teacher = extractor.embed(input)
        let features = Detector.embeddings(teacher, positionWeight: settings.positionWeight)
        // Every network and scorer after the teacher is an independent job; with two or more
        // threads they run side by side, each on one core (measured faster than splitting
        // each small layer across cores).
        let studentCount = settings.components.contains(where: \.usesStudents) ? students?.students.count ?? 0 : 0
        let scorers = settings.components.indices.filter { !settings.components[$0].usesStudents }
        var outputs = [Tensor](repeating: Tensor(shape: [0]), count: studentCount)
        var raw = [[Float]](repeating: [], count: settings.components.count)
        let parallel = computeThreads > 1
        outputs.withUnsafeMutableBufferPointer { outputBuffer in
            raw.withUnsafeMutableBufferPointer { rawBuffer in
                let (out, maps) = (UnsafeSendable(outputBuffer.baseAddress), UnsafeSendable(rawBuffer.baseAddress))
                func run(_ job: Int) {
                    if job < studentCount {
                        out.pointer?[job] = students?.students[job].forward(input, singleThreaded: parallel) ?? Tensor(shape: [0])
                        return
                    }
                    let index = scorers[job - studentCount]
                    switch settings.components[index] {
                    case .knn: maps.pointer?[index] = bank?.nearestDistances(features) ?? []
                    case .gaussian: maps.pointer?[index] = gaussian?.distances(features) ?? []
                    case .ae: maps.pointer?[index] = autoencoder?.residual(teacher: teacher, singleThreaded: parallel) ?? []
                    case .st, .variance: break
                    }
                }
                let jobs = studentCount + scorers.count
                if parallel { DispatchQueue.concurrentPerform(iterations: jobs, execute: run) } else { (0..<jobs).forEach(run) }
            }
        }
        if studentCount > 0, let students {
            let (discrepancy, variance) = students.maps(outputs: outputs, teacher: teacher)
            for (i, c) in settings.components.enumerated() where c.usesStudents { raw[i] = c == .st ? discrepancy : variance }
        }
        let maps = zip(settings.components, raw).map { component, coarse -> [Float] in
            guard let standardization = positional[component], standardization.mean.count == coarse.count else { return coarse }
            return standardization.apply(coarse)
        }
        return (maps, MapGeometry(gridHeight: features.height, gridWidth: features.width,
                                  inputHeight: input.height, inputWidth: input.width))
    }

    /// A coarse map upsampled to half the model resolution and smoothed.
    public func refine(_ coarse: [Float], geometry g: MapGeometry) -> AnomalyResult {
        // Smoothed at half the model resolution (sigma halved to match): the map is
        // resampled to the photo's own size afterwards anyway, and this is 8x less work
        // than blurring at full model resolution (measured: 9% of inspection time).
        let (w, h) = (max(1, g.inputWidth / 2), max(1, g.inputHeight / 2))
        let grid = Tensor(shape: [1, 1, g.gridHeight, g.gridWidth], storage: coarse)
        let fine = upsampleBilinear(grid, height: h, width: w).storage
        return AnomalyResult(map: gaussianBlur(fine, width: w, height: h, sigma: settings.blurSigma / 2), width: w, height: h)
    }

    /// Each component's raw map at half the model resolution (upsampled and blurred), in settings order.
    public func componentMaps(_ image: Image) -> [AnomalyResult] {
        let (maps, geometry) = coarseMaps(image)
        return maps.map { refine($0, geometry: geometry) }
    }

    /// Whether the image score comes from a proper subset of the components.
    public var scoresSeparately: Bool {
        !settings.scoreComponents.isEmpty && settings.scoreComponents != settings.components
    }

    /// Whether the image score comes from another map than the heatmap (a subset of the
    /// components, or the heatmap before its wide-scale maximum), with its own calibration.
    public var hasScoreMap: Bool { scoresSeparately || settings.wideBlurSigma > 0 }

    /// Indices of the components that give the image score.
    var scoreIndices: [Int] {
        scoresSeparately ? settings.scoreComponents.compactMap { settings.components.firstIndex(of: $0) } : Array(settings.components.indices)
    }

    /// Fuses the maps of the components at `indices`: one component's raw map, or the
    /// weighted mean of several calibrated maps.
    func fuse(_ maps: [AnomalyResult], indices: [Int]) -> AnomalyResult {
        guard let first = indices.first else { return AnomalyResult(map: [0], width: 1, height: 1) }
        return AnomalyResult(map: fuse(maps.map(\.map), indices: indices), width: maps[first].width, height: maps[first].height)
    }

    /// `fuse` on equally sized planes (refined maps, or coarse maps on the feature grid).
    func fuse(_ planes: [[Float]], indices: [Int]) -> [Float] {
        guard let first = indices.first else { return [0] }
        guard indices.count > 1 else { return planes[first] }
        var fused = [Float](repeating: 0, count: planes[first].count)
        let weights = indices.map { settings.componentWeights.count == planes.count ? settings.componentWeights[$0] : 1 }
        let total = max(weights.reduce(0, +), 1e-6)
        for (index, weight) in zip(indices, weights) where weight > 0 {
            let norm = componentNormalizations[index], plane = planes[index]
            for i in 0..<fused.count { fused[i] += weight / total * norm.apply(plane[i]) }
        }
        return fused
    }

    /// The fused map of all components and, when the score has a map of its own (`hasScoreMap`), that map.
    public func fusedMaps(_ image: Image) -> (map: AnomalyResult, scoreMap: AnomalyResult?) {
        let (coarse, geometry) = coarseMaps(image)
        return fusedMaps(coarse: coarse, geometry: geometry)
    }

    /// `fusedMaps` from the components' coarse maps.
    public func fusedMaps(coarse: [[Float]], geometry: MapGeometry) -> (map: AnomalyResult, scoreMap: AnomalyResult?) {
        let maps = coarse.map { refine($0, geometry: geometry) }
        let all = Array(maps.indices)
        let fine = fuse(maps, indices: all)
        let scoreMap = scoresSeparately ? fuse(maps, indices: scoreIndices) : fine
        guard settings.wideBlurSigma > 0 else { return (fine, scoresSeparately ? scoreMap : nil) }
        // Fused on the coarse grid, then refined once: upsampling and blurring are linear and
        // keep constants, so this equals fusing the refined maps, at a component's cost.
        let wideCoarse = fuse(coarse, indices: all)
        // Smoothed at a quarter of the model resolution (a wide blur leaves nothing finer to
        // keep; 8x less work than at half resolution), then brought to the fine map's size.
        let (w, h) = (max(1, geometry.inputWidth / 4), max(1, geometry.inputHeight / 4))
        let grid = Tensor(shape: [1, 1, geometry.gridHeight, geometry.gridWidth], storage: wideCoarse)
        let quarter = gaussianBlur(upsampleBilinear(grid, height: h, width: w).storage, width: w, height: h,
                                   sigma: settings.wideBlurSigma / 4)
        let wide = upsampleBilinear(Tensor(shape: [1, 1, h, w], storage: quarter), height: fine.height, width: fine.width)
        let map = zip(fine.map, wide.storage).map { max($0, $1) }
        return (AnomalyResult(map: map, width: fine.width, height: fine.height), scoreMap)
    }

    /// The fused map at model resolution (for a single component, its raw map); its score is
    /// the map's maximum, or the maximum of the score components' map.
    public func analyze(_ image: Image) -> AnomalyResult {
        let (map, scoreMap) = fusedMaps(image)
        var result = map
        if let scoreMap { result.score = scoreMap.score }
        return result
    }

    /// The same detector restricted to some of its trained components, each keeping its stored
    /// calibration (for ablations and for trying a lighter model without retraining). The
    /// fused scale keeps 0 at normal and about 1 at the good images' peak, but it is not
    /// re-calibrated: set a threshold for it by hand or with validation images.
    public func selecting(_ components: [Component], weights: [Float] = [], scoreComponents: [Component]? = nil) throws -> Detector {
        var indices = [Int]()
        for c in components {
            guard let i = settings.components.firstIndex(of: c) else {
                throw PipelineError.input("the model has no \(c.rawValue) component (it has \(settings.components.map(\.rawValue).joined(separator: ", ")))")
            }
            indices.append(i)
        }
        guard !indices.isEmpty else { throw PipelineError.input("no components selected") }
        var subset = settings
        subset.components = components
        subset.componentWeights = weights.isEmpty && components == settings.components ? settings.componentWeights : weights
        subset.scoreComponents = scoreComponents ?? (settings.scoreComponents.allSatisfy(components.contains) ? settings.scoreComponents : [])
        guard subset.scoreComponents.allSatisfy(components.contains) else {
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
        return Detector(extractor: extractor, bank: bank, gaussian: gaussian, students: students, autoencoder: autoencoder,
                        positional: positional, componentNormalizations: norms, settings: subset, normalization: fused,
                        scoreNormalization: scoreNorm, threshold: threshold, backboneSHA256: backboneSHA256)
    }

    /// Patch embeddings of normalized input, with position channels when configured.
    public func embeddings(_ input: Tensor) -> Tensor {
        Detector.embeddings(extractor.embed(input), positionWeight: settings.positionWeight)
    }

    /// Appends (x, y) * weight channels to (1, D, h, w) features.
    static func embeddings(_ features: Tensor, positionWeight: Float) -> Tensor {
        guard positionWeight > 0 else { return features }
        let h = features.height, w = features.width
        var position = Tensor(shape: [1, 2, h, w])
        for y in 0..<h {
            for x in 0..<w {
                position.storage[y * w + x] = positionWeight * (Float(x) + 0.5) / Float(w)
                position.storage[h * w + y * w + x] = positionWeight * (Float(y) + 0.5) / Float(h)
            }
        }
        return concatChannels([features, position])
    }

    /// Full inspection of one image: normalized map at the image's own size, verdict, regions.
    public func inspect(_ image: Image) -> Inspection {
        let raw = analyze(image)
        let resized = resizePlanes(raw.map, channels: 1, width: raw.width, height: raw.height,
                                   toWidth: image.width, toHeight: image.height, method: .bilinear)
        let map = resized.map { normalization.apply($0) }
        let score = (hasScoreMap ? scoreNormalization : normalization).apply(raw.score)
        return Inspection(rawScore: raw.score, score: score, map: map,
                          width: image.width, height: image.height, threshold: threshold)
    }
}

/// A rectangle in image pixels.
public struct BoundingBox: Codable, Equatable, Sendable {
    /// Left column, top row, width and height.
    public var x: Int, y: Int, width: Int, height: Int

    /// Creates a box.
    public init(x: Int, y: Int, width: Int, height: Int) {
        (self.x, self.y, self.width, self.height) = (x, y, width, height)
    }
}

/// What anomap concludes about one image.
public struct Inspection: Sendable {
    /// Raw image score (distance units).
    public var rawScore: Float
    /// Normalized image score (0 normal median, 1 peak of good images).
    public var score: Float
    /// Normalized map at the image's resolution, (height, width).
    public let map: [Float]
    /// Image width.
    public let width: Int
    /// Image height.
    public let height: Int
    /// Threshold used for the verdict and the mask.
    public let threshold: Float
    /// Predicted defect pixels (map >= threshold), computed once: the area, the boxes and the
    /// mask image all read it.
    public let mask: [Bool]

    /// Assembles an inspection.
    public init(rawScore: Float, score: Float, map: [Float], width: Int, height: Int, threshold: Float) {
        precondition(map.count == width * height)
        (self.rawScore, self.score, self.map, self.width, self.height, self.threshold) = (rawScore, score, map, width, height, threshold)
        mask = map.map { $0 >= threshold }
    }

    /// Whether the image is judged anomalous.
    public var isAnomalous: Bool { score >= threshold }
    /// Share of the image predicted defective.
    public var defectArea: Double { Double(mask.filter { $0 }.count) / Double(max(1, map.count)) }
    /// Bounding boxes of the connected predicted regions, largest first.
    public var regions: [BoundingBox] {
        connectedRegions(mask, width: width, height: height)
    }
}

/// Bounding boxes of 8-connected true regions of a mask, largest area first.
func connectedRegions(_ mask: [Bool], width: Int, height: Int) -> [BoundingBox] {
    connectedComponents(mask, width: width, height: height)
        .sorted { $0.count > $1.count }
        .map { members in
            var (x0, y0, x1, y1) = (width, height, -1, -1)
            for i in members {
                let y = i / width, x = i % width
                x0 = min(x0, x); x1 = max(x1, x); y0 = min(y0, y); y1 = max(y1, y)
            }
            return BoundingBox(x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1)
        }
}
