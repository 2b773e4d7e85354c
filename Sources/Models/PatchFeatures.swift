import Tensors

/// Locally aware patch embeddings from the frozen EfficientNet-Lite0 teacher (the PatchCore
/// recipe, Roth et al. CVPR 2022): stride-8 (40 ch) and stride-16 (112 ch, bilinearly
/// upsampled to stride 8) features concatenated, then averaged over each 3x3 neighbourhood
/// so every patch also sees its surroundings.
public struct PatchFeatureExtractor: Sendable {
    /// The frozen backbone.
    public let backbone: EfficientNetLite0
    /// Channels of an embedding: 40 + 112.
    public static let dimension = 152
    /// Pixels of input per embedding along each axis.
    public static let stride = 8

    /// Wraps a backbone.
    public init(backbone: EfficientNetLite0) { self.backbone = backbone }

    /// (N, 3, H, W) normalized input -> (N, 152, ceil(H / 8), ceil(W / 8)) embeddings.
    public func embed(_ input: Tensor) -> Tensor {
        let stages = backbone.features(input, stages: [.stride8, .stride16])
        guard let s8 = stages[.stride8], let s16 = stages[.stride16] else { return Tensor(shape: [0]) }
        let up = upsampleBilinear(s16, height: s8.height, width: s8.width)
        return pool2d(concatChannels([s8, up]), kind: .average, kernel: 3, stride: 1, padding: 1)
    }
}
