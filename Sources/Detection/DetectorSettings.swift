import Imaging
import Models
import Tensors

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

    /// Add the teacher's stride-4 stage (24 channels, averaged 2x2 down to the stride-8 grid) to
    /// every patch embedding: finer detail for hairline and pinhole defects at little cost (the
    /// backbone computes that stage on the way anyway). Off by default; see the README.
    public var includesStride4 = false

    /// Channels of the teacher's patch embedding (152, or 176 with the stride-4 stage).
    public var featureDimension: Int { PatchFeatureExtractor.dimension(includingStride4: includesStride4) }

    /// Hyper-parameters of the learned components (st, variance, ae, gan).
    public var learning = LearningSettings()

    /// Keep each image's aspect ratio (resizing to about inputSize^2 pixels, sides multiples
    /// of 8) instead of squashing it to an inputSize square.
    public var keepsAspectRatio = false

    /// The one model size (width, height) every image is resized to when the aspect is kept
    /// without tiles and a component needs one feature grid (gaussian, st, variance, ae, gan):
    /// the training images' median size scaled to about inputSize^2 pixels, sides multiples of
    /// 32 (`commonSize(medianWidth:medianHeight:)`); images of other sizes are resized to it.
    /// (0, 0): none, each image keeps its own aspect (possible for knn alone).
    public var commonWidth = 0, commonHeight = 0

    /// Side, in model pixels, of the square tiles the working image is cut into (a multiple of
    /// 32; 0: the whole image at once). Every component then sees tiles of one size, whatever
    /// the image's size and aspect, and the tiles' maps are stitched into one.
    public var tileSize = 0
    /// Share of a tile's side that neighbouring tiles overlap (0...0.75); the overlap is
    /// blended, so a defect on a tile border is seen whole by one tile or the other.
    public var tileOverlap = 0.25

    /// Decode a JPEG at least twice the input square on both sides at 1/2, 1/4 or 1/8 of its
    /// size (libjpeg's DCT scaling), which skips most of the decoding and of the resizing for
    /// the model; maps and masks keep the full size. Off for bundles trained before it existed,
    /// so they see what they saw.
    public var scalesLargeJPEGs = true

    /// Fit ODIN's input perturbation too (the `odin` shift detector's magnitude, chosen with
    /// its temperature on the held-out images): the backbone's input gradient and five more
    /// forward passes per held-out image, about 0.15 s each. Off by default: on magnetic_tile
    /// the ImageNet-head detectors measure near chance (README, "Whole-image shift").
    public var fitsODINPerturbation = false

    /// How images are decoded for the model (training, calibration, inspection, evaluation).
    public var decodeOptions: DecodeOptions {
        DecodeOptions(minimumSide: keepsAspectRatio || !scalesLargeJPEGs ? nil : inputSize)
    }

    /// Whether the working image is cut into tiles.
    public var isTiled: Bool { tileSize > 0 }

    /// Whether every image is resized to `commonWidth` x `commonHeight`.
    public var hasCommonSize: Bool { keepsAspectRatio && !isTiled && commonWidth > 0 && commonHeight > 0 }

    /// The common model size for training images of median size `medianWidth` x
    /// `medianHeight`: their aspect at about inputSize^2 pixels, each side a multiple of 32 (so
    /// networks that halve the grid twice fit) and at least 32.
    public func commonSize(medianWidth: Int, medianHeight: Int) -> (width: Int, height: Int) {
        let scale = Double(inputSize) / (Double(max(1, medianWidth)) * Double(max(1, medianHeight))).squareRoot()
        func side(_ v: Int) -> Int { max(32, Int((Double(max(1, v)) * scale / 32).rounded()) * 32) }
        return (side(medianWidth), side(medianHeight))
    }

    /// Why `component`, which needs every image on one feature grid (a model per grid position,
    /// or networks and statistics of one fixed size), cannot take these settings; nil when the
    /// input size is fixed (square input, a common size, or tiles).
    func fixedSizeRefusal(_ component: Component) -> String? {
        keepsAspectRatio && !isTiled && !hasCommonSize
            ? "the \(component) component needs one fixed input size: give the aspect-kept model a common size (anomap train chooses it), add --tile SIZE or drop --keep-aspect"
            : nil
    }

    /// Why a component whose network halves the feature grid twice cannot run: it needs one
    /// fixed size, a multiple of 32 pixels (tiles and common sizes always are).
    func quarterGridRefusal(_ component: Component) -> String? {
        if let refusal = fixedSizeRefusal(component) { return refusal }
        if !isTiled && !hasCommonSize && inputSize % 32 != 0 {
            return "the \(component) component needs an input size that is a multiple of 32, got \(inputSize)"
        }
        return nil
    }

    /// Why the size and tiling settings cannot work together (one line), or nil.
    public var resolutionRefusal: String? {
        if commonWidth != 0 || commonHeight != 0 {
            let sides = [commonWidth, commonHeight]
            // The area stays near inputSize^2 (at most 1024^2, each side rounded to 32).
            guard sides.allSatisfy({ (32...8192).contains($0) && $0 % 32 == 0 }),
                commonWidth * commonHeight <= 2 * 1024 * 1024
            else {
                return "the common size \(commonWidth)x\(commonHeight) must have sides that are multiples of 32 "
                    + "in 32...8192 and at most 2^21 pixels"
            }
        }
        guard isTiled else { return nil }
        if tileSize < 64 || tileSize > 1024 || tileSize % 32 != 0 {
            return "--tile must be a multiple of 32 in 64...1024, got \(tileSize)"
        }
        if !(0...0.75).contains(tileOverlap) { return "--tile-overlap must be in 0...0.75, got \(tileOverlap)" }
        if !keepsAspectRatio && tileSize > inputSize {
            return
                "--tile \(tileSize) is larger than the \(inputSize)x\(inputSize) input: lower --tile or raise --input-size"
        }
        return nil
    }

    /// The model-resolution (working) size for an image of `width` x `height`: the inputSize
    /// square, or with `keepsAspectRatio` about inputSize^2 pixels at the image's aspect, each
    /// side a multiple of 8 and, when tiled, at least one tile.
    public func modelSize(width: Int, height: Int) -> (width: Int, height: Int) {
        guard keepsAspectRatio else { return (inputSize, inputSize) }
        if hasCommonSize { return (commonWidth, commonHeight) }
        var scale = Double(inputSize) / (Double(width) * Double(height)).squareRoot()
        if isTiled { scale = max(scale, Double(tileSize) / Double(max(1, min(width, height)))) }
        func side(_ v: Int) -> Int { max(isTiled ? tileSize : 32, Int((Double(v) * scale / 8).rounded()) * 8) }
        return (side(width), side(height))
    }

    /// The image resized for the backbone and normalized: (1, 3, h, w).
    public func input(for image: Image) -> Tensor {
        let (w, h) = modelSize(width: image.width, height: image.height)
        return Preprocessing.lite0Input(image, width: w, height: h)
    }

    /// Feature grid (height, width) that the components see: a tile's, or a fixed-size input's
    /// (the model size at stride 8).
    public var featureGrid: (height: Int, width: Int) {
        if isTiled { return (tileSize / 8, tileSize / 8) }
        let size = modelSize(width: inputSize, height: inputSize)
        return ((size.height + 7) / 8, (size.width + 7) / 8)
    }

    /// Channels of a bank entry.
    public var embeddingDimension: Int { featureDimension + (positionWeight > 0 ? 2 : 0) }

    /// Defaults.
    public init() {}

    /// Training presets: named starting points that explicit options refine.
    public enum Preset: String, CaseIterable, Sendable {
        /// The defaults: gaussian + students + autoencoder, best at outlining each defect
        /// region (AUPRO); trains in about 4 minutes on 762 images.
        case learned
        /// Gaussian + a 1024-entry memory bank, with the wide-scale map: no gradient training
        /// (about 45 s on 762 images, shift detectors included), under 20 ms per image, and the best pixel AUROC measured
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
        tileSize = try c.decodeIfPresent(Int.self, forKey: .tileSize) ?? d.tileSize
        tileOverlap = try c.decodeIfPresent(Double.self, forKey: .tileOverlap) ?? d.tileOverlap
        learning = try c.decodeIfPresent(LearningSettings.self, forKey: .learning) ?? d.learning
        // Bundles written before DCT-scaled decoding existed decoded at full size.
        scalesLargeJPEGs = try c.decodeIfPresent(Bool.self, forKey: .scalesLargeJPEGs) ?? false
        fitsODINPerturbation = try c.decodeIfPresent(Bool.self, forKey: .fitsODINPerturbation) ?? false
        commonWidth = try c.decodeIfPresent(Int.self, forKey: .commonWidth) ?? 0
        commonHeight = try c.decodeIfPresent(Int.self, forKey: .commonHeight) ?? 0
        includesStride4 = try c.decodeIfPresent(Bool.self, forKey: .includesStride4) ?? false
    }

    /// Encodes every setting; the tile fields only when tiled, so untiled bundles keep the bytes
    /// they had before tiling existed.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(components, forKey: .components)
        try c.encode(componentWeights, forKey: .componentWeights)
        try c.encode(scoreComponents, forKey: .scoreComponents)
        try c.encode(gaussianChannels, forKey: .gaussianChannels)
        try c.encode(inputSize, forKey: .inputSize)
        try c.encode(bankSize, forKey: .bankSize)
        try c.encode(calibrationShare, forKey: .calibrationShare)
        try c.encode(seed, forKey: .seed)
        try c.encode(maxCandidates, forKey: .maxCandidates)
        try c.encode(projectionDimension, forKey: .projectionDimension)
        try c.encode(blurSigma, forKey: .blurSigma)
        try c.encode(wideBlurSigma, forKey: .wideBlurSigma)
        try c.encode(positionWeight, forKey: .positionWeight)
        try c.encode(
            LearningEncoding(settings: learning, includingAdversarial: components.contains(.gan)), forKey: .learning)
        try c.encode(keepsAspectRatio, forKey: .keepsAspectRatio)
        if isTiled {
            try c.encode(tileSize, forKey: .tileSize)
            try c.encode(tileOverlap, forKey: .tileOverlap)
        }
        // Only when on, so older bundles written again keep their bytes.
        if scalesLargeJPEGs { try c.encode(scalesLargeJPEGs, forKey: .scalesLargeJPEGs) }
        if fitsODINPerturbation { try c.encode(fitsODINPerturbation, forKey: .fitsODINPerturbation) }
        if includesStride4 { try c.encode(includesStride4, forKey: .includesStride4) }
        if hasCommonSize {
            try c.encode(commonWidth, forKey: .commonWidth)
            try c.encode(commonHeight, forKey: .commonHeight)
        }
    }

    private enum CodingKeys: String, CodingKey {
        case components, componentWeights, scoreComponents, gaussianChannels, inputSize, bankSize, calibrationShare
        case seed, maxCandidates, projectionDimension, blurSigma, wideBlurSigma, positionWeight, learning
        case keepsAspectRatio, tileSize, tileOverlap, scalesLargeJPEGs, fitsODINPerturbation, includesStride4
        case commonWidth, commonHeight
    }
}

/// The learning settings as a bundle stores them: the `gan` component's fields only in a model
/// that has it.
private struct LearningEncoding: Encodable {
    let settings: LearningSettings
    let includingAdversarial: Bool

    func encode(to encoder: Encoder) throws {
        try settings.encode(to: encoder, includingAdversarial: includingAdversarial)
    }
}
