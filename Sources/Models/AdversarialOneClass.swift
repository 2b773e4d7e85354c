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
        /// -log D(x) plus the reconstruction residual on its training scale.
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
    /// Mean residual per cell over the training images: the residual's unit in `combined`.
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
    /// or of the input, plus the residual in units of `residualScale` for `combined`.
    public func map(teacher: Tensor, singleThreaded: Bool = false) -> [Float] {
        let x = standardization.apply(teacher)
        func judged(_ t: Tensor) -> [Float] {
            discriminator.forward(t, singleThreaded: singleThreaded).storage.map { softplus(-$0) }
        }
        switch mapSource {
        case .input: return judged(x)
        case .reconstruction: return judged(generator.forward(x, singleThreaded: singleThreaded))
        case .combined:
            let g = generator.forward(x, singleThreaded: singleThreaded), unit = 1 / max(residualScale, 1e-12)
            return zip(judged(x), channelMeanSquaredError(g, x)).map { $0 + $1 * unit }
        }
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
