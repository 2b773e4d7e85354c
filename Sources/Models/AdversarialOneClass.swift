import NeuralNet
import Tensors

/// An adversarially trained one-class model over the teacher's standardized embeddings, after
/// "Old is Gold" (OGNet, Zaheer et al., CVPR 2020): a generator reconstructs the embeddings
/// and a fully convolutional discriminator, trained first against the generator and then to
/// tell real data and good reconstructions from poor reconstructions and pseudo-anomalies,
/// says for every feature cell how normal it looks (one logit per cell).
public struct AdversarialOneClass: Sendable {
    /// What the map reads.
    public enum MapSource: String, Codable, CaseIterable, Sendable {
        /// -log D(G(x)) per cell: the discriminator judging the reconstruction, as OGNet scores.
        case reconstruction
        /// -log D(x) per cell: the discriminator judging the input itself.
        case input
        /// The reconstruction residual alone: the generator's mean squared error per cell.
        case residual
        /// -log D(x) plus the residual in units of `residualScale` (measured on magnetic_tile:
        /// the discriminator outlines thin cracks, the residual broken-off pieces and large areas).
        case combined
    }

    /// What phase 2 shows the discriminator as abnormal.
    public enum Negatives: String, Codable, CaseIterable, Sendable {
        /// Training features plus Gaussian noise of many scales (noise-contrastive, as SimpleNet's).
        case perturbed
        /// OGNet's: the old generator's reconstructions and the mean of two training inputs.
        case ognet
        /// Both.
        case both
    }

    /// Generator: (D, h, w) -> (D, h, w), an encoder to (latent, h / 4, w / 4) and a decoder
    /// back (the autoencoder's shapes, without the memory).
    public static func generatorSpecs(channels: Int, latent: Int) -> [LayerSpec] {
        [
            LayerSpec(outChannels: 96, kernel: 3, stride: 2),
            LayerSpec(outChannels: 96, kernel: 3, stride: 2),
            LayerSpec(outChannels: latent, kernel: 1, relu: false),
            LayerSpec(outChannels: 96, kernel: 3, upsample: 2),
            LayerSpec(outChannels: 64, kernel: 3, upsample: 2),
            LayerSpec(outChannels: channels, kernel: 1, relu: false),
        ]
    }

    /// Patch discriminator: (D, h, w) -> (1, h, w) logits, leaky ReLU between layers, each cell
    /// judged on its own embedding (1 x 1 layers: measured on magnetic_tile, 3 x 3 layers that see
    /// the neighbours learned the texture around a defect and localized worse).
    public static func discriminatorSpecs(channels: Int, width: Int) -> [LayerSpec] {
        [
            LayerSpec(outChannels: width, kernel: 1, activation: .leakyRelu),
            LayerSpec(outChannels: width, kernel: 1, activation: .leakyRelu),
            LayerSpec(outChannels: width, kernel: 1, activation: .leakyRelu),
            LayerSpec(outChannels: 1, kernel: 1, relu: false),
        ]
    }

    /// Generator (frozen after phase 1).
    public var generator: ConvStack
    /// Discriminator, weights spectrally normalized already when trained so.
    public var discriminator: ConvStack
    /// Teacher standardization both networks see.
    public let standardization: FeatureStandardization
    /// The residual's unit in `combined`: its mean per cell over the training images divided by
    /// the residual weight times the mean of -log D(x) (`balancedResidualScale`).
    public var residualScale: Float
    /// What the map reads.
    public var mapSource: MapSource

    /// Assembles a model.
    public init(
        generator: ConvStack, discriminator: ConvStack, standardization: FeatureStandardization,
        residualScale: Float, mapSource: MapSource
    ) {
        self.generator = generator
        self.discriminator = discriminator
        self.standardization = standardization
        self.residualScale = residualScale
        self.mapSource = mapSource
    }

    /// Abnormality map (h * w) for raw teacher embeddings (1, D, h, w): -log D per cell (the
    /// discriminator's "fake" loss, 0 for a cell it is sure is normal), of the reconstruction
    /// or of the input, the reconstruction residual, or -log D(x) plus the residual in units
    /// of `residualScale` for `combined`.
    public func map(teacher: Tensor, singleThreaded: Bool = false) -> [Float] {
        map(standardized: standardization.apply(teacher), singleThreaded: singleThreaded)
    }

    /// `map` of standardized embeddings x (1, D, h, w).
    public func map(standardized x: Tensor, singleThreaded: Bool = false) -> [Float] {
        func judged(_ t: Tensor) -> [Float] {
            discriminator.forward(t, singleThreaded: singleThreaded).storage.map { softplus(-$0) }
        }
        func residual() -> [Float] { channelMeanSquaredError(generator.forward(x, singleThreaded: singleThreaded), x) }
        switch mapSource {
        case .input: return judged(x)
        case .reconstruction: return judged(generator.forward(x, singleThreaded: singleThreaded))
        case .residual: return residual()
        case .combined:
            let unit = 1 / max(residualScale, 1e-12)
            return zip(judged(x), residual()).map { $0 + $1 * unit }
        }
    }

    /// The `residualScale` that gives the residual `weight` times the share of -log D(x) in the
    /// combined map, each term in units of its mean per cell over `standardized` (the training
    /// embeddings, (1, D, h, w) each): (mean residual) / (weight x mean -log D(x)).
    public func balancedResidualScale(over standardized: [Tensor], weight: Float) -> Float {
        var probe = self
        var totals = (judged: 0.0, residual: 0.0)
        for x in standardized {
            probe.mapSource = .input
            let judged = probe.map(standardized: x)
            probe.mapSource = .residual
            let residual = probe.map(standardized: x)
            totals.judged += Double(judged.reduce(0, +)) / Double(max(judged.count, 1))
            totals.residual += Double(residual.reduce(0, +)) / Double(max(residual.count, 1))
        }
        let scale = totals.residual / max(Double(weight) * totals.judged, 1e-12)
        return Float(min(max(scale, 1e-12), 1e12))
    }
}

/// Per-cell mean squared difference over channels of two (1, D, h, w) maps, (h * w): the
/// reconstruction residual of the autoencoders.
public func channelMeanSquaredError(_ a: Tensor, _ b: Tensor) -> [Float] {
    precondition(a.shape == b.shape)
    let d = a.channels, p = a.height * a.width
    var map = [Float](repeating: 0, count: p)
    for c in 0..<d {
        for i in 0..<p {
            let e = a.storage[c * p + i] - b.storage[c * p + i]
            map[i] += e * e
        }
    }
    return map.map { $0 / Float(max(d, 1)) }
}
