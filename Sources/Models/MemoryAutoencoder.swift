import NeuralNet
import Tensors

/// A convolutional autoencoder over the teacher's standardized embeddings whose latent is
/// rebuilt from a memory of normal items (MemAE, Gong et al. ICCV 2019). The bottleneck is
/// spatial (stride 4 below the embedding grid) and every latent vector is replaced by a sparse
/// mix of memory items, so a defect cannot be reproduced and shows as a residual.
public struct MemoryAutoencoder: Sendable {
    /// Encoder: (D, h, w) -> (latent, h / 4, w / 4).
    public static func encoderSpecs(inChannels: Int, latent: Int) -> [LayerSpec] {
        [
            LayerSpec(outChannels: 96, kernel: 3, stride: 2),
            LayerSpec(outChannels: 96, kernel: 3, stride: 2),
            LayerSpec(outChannels: latent, kernel: 1, relu: false),
        ]
    }

    /// Decoder: (latent, h / 4, w / 4) -> (D, h, w), bilinear upsampling then 3x3 convolutions.
    public static func decoderSpecs(latent: Int, outChannels: Int) -> [LayerSpec] {
        [
            LayerSpec(outChannels: 96, kernel: 3, upsample: 2),
            LayerSpec(outChannels: 64, kernel: 3, upsample: 2),
            LayerSpec(outChannels: outChannels, kernel: 1, relu: false),
        ]
    }

    /// Encoder.
    public var encoder: ConvStack
    /// Decoder.
    public var decoder: ConvStack
    /// (N, latent) memory items.
    public var memory: Tensor
    /// Addressing rule.
    public var readout: MemoryReadout
    /// Teacher standardization it reconstructs.
    public let standardization: FeatureStandardization

    /// Assembles an autoencoder.
    public init(
        encoder: ConvStack, decoder: ConvStack, memory: Tensor, readout: MemoryReadout,
        standardization: FeatureStandardization
    ) {
        self.encoder = encoder
        self.decoder = decoder
        self.memory = memory
        self.readout = readout
        self.standardization = standardization
    }

    /// Reconstruction of standardized embeddings (1, D, h, w), h and w multiples of 4.
    public func reconstruct(_ standardized: Tensor, singleThreaded: Bool = false) -> Tensor {
        let (latent, _) = readout.forward(encoder.forward(standardized, singleThreaded: singleThreaded), memory: memory)
        return decoder.forward(latent, singleThreaded: singleThreaded)
    }

    /// The L2 norm of the gradient of this image's reconstruction loss (the mean squared error
    /// over every value of the standardized embeddings) with respect to the decoder's last
    /// layer's weights, by that layer's backward pass: a model that does not know what to do
    /// with an input gets a large gradient.
    public func lastLayerGradientNorm(teacher: Tensor) -> Float {
        let target = standardization.apply(teacher)
        let (latent, _) = readout.forward(encoder.forward(target), memory: memory)
        let (out, tape) = decoder.trainingForward(latent)
        let n = Float(out.count)
        let dy = Tensor(shape: out.shape, storage: zip(out.storage, target.storage).map { 2 * ($0 - $1) / n })
        return decoder.lastLayerWeightGradient(dy, tape: tape).reduce(0) { $0 + $1 * $1 }.squareRoot()
    }

    /// Residual map (h, w): mean squared reconstruction error over channels, for raw teacher
    /// embeddings (1, D, h, w); optionally computed on the calling thread alone.
    public func residual(teacher: Tensor, singleThreaded: Bool = false) -> [Float] {
        let target = standardization.apply(teacher)
        return channelMeanSquaredError(reconstruct(target, singleThreaded: singleThreaded), target)
    }
}
