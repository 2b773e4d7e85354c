import Tensors

/// `gradnorm`: the L1 norm of the gradient, with respect to the ImageNet classifier's weights,
/// of the KL divergence between the uniform distribution and the softmax (GradNorm, Huang, Geng
/// & Li 2021). In-distribution images get larger gradients, so the score is the negative norm.
/// The gradient comes from the classifier's own backward pass (`Linear.backward`) on
/// dKL/dz = softmax(z) - 1/C; it factors as (sum_c |p_c - 1/C|) (sum_k |h_k|), the softmax
/// part times the feature part. Nothing to fit.
public struct GradientNormShift: StatelessShiftDetector {
    /// The name.
    public static let name = "gradnorm"
    /// A few words.
    public static let summary = "gradient norm of the ImageNet head"
    /// Reads the head.
    public static let needsHead = true

    /// The detector.
    public init() {}

    /// dKL(u || softmax(z)) / dW of the classifier, (classes, features), by its backward pass.
    public static func weightGradient(_ head: HeadOutput) -> Tensor {
        let p = softmax(head.logits, temperature: 1), c = Double(p.count)
        let dz = Tensor(shape: [1, p.count], storage: p.map { Float($0 - 1 / c) })
        let h = Tensor(shape: [1, head.features.count], storage: head.features)
        return head.classifier.backward(input: h, outputGradient: dz).weight
    }

    /// -||dKL/dW||_1.
    public func score(_ input: ShiftInput) -> Float {
        guard let head = input.head else { return .nan }
        return -Self.weightGradient(head).storage.reduce(0) { $0 + abs($1) }
    }
}
