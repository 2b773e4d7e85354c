/// `aegrad`: the one-class gradient signal: the norm of the gradient of the autoencoder's own
/// reconstruction loss on the image with respect to its decoder's last layer's weights
/// (`MemoryAutoencoder.lastLayerGradientNorm`). A model that does not know what to do with an
/// input gets a large gradient. Fitted only for models with the `ae` component; nothing to fit.
public struct AutoencoderGradientShift: ComponentGradientShift {
    /// The name.
    public static let name = "aegrad"
    /// A few words.
    public static let summary = "gradient norm of the autoencoder's loss"
    /// Reads the autoencoder's gradient.
    public static var gradientComponent: Component? { AutoencoderComponent.name }

    /// The detector.
    public init() {}
}
