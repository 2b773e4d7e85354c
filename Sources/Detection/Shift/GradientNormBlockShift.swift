import NeuralNet
import Tensors

/// `gradnorm-block`: GradNorm (Huang, Geng & Li 2021) with the gradient taken through the last
/// block too: the L1 norm of dKL(u || softmax)/dW over the classifier's weights and the
/// weights of the layer before the pooling (Lite0's 1x1 head, 320 -> 1280, ReLU6). The paper
/// takes the last layer by default and deeper layers as an option; this is that option.
/// Nothing to fit.
public struct GradientNormBlockShift: StatelessShiftDetector {
    /// The name.
    public static let name = "gradnorm-block"
    /// A few words.
    public static let summary = "gradient norm of the ImageNet head and its last block"
    /// Reads the head.
    public static let needsHead = true

    /// The detector.
    public init() {}

    /// dKL/dW of the layer before the pooling, (features, in) row-major, by backpropagating
    /// dKL/dz = softmax(z) - 1/C through the classifier, the average over pixels and ReLU6:
    /// dW = sum over pixels p of delta_p x_p^T, delta_p = (W_fc^T dz / P) where 0 < a_p < 6;
    /// nil without the last block's maps.
    public static func lastBlockWeightGradient(_ head: HeadOutput) -> [Float]? {
        guard let block = head.lastBlock else { return nil }
        let p = softmax(head.logits, temperature: 1), c = Double(p.count)
        let dz = Tensor(shape: [1, p.count], storage: p.map { Float($0 - 1 / c) })
        let h = Tensor(shape: [1, head.features.count], storage: head.features)
        let dPooled = head.classifier.backward(input: h, outputGradient: dz).input.storage
        let features = head.features.count, pixels = block.pixels, inputs = block.input.count / pixels
        var delta = [Float](repeating: 0, count: pixels * features)
        for q in 0..<pixels {
            for o in 0..<features {
                let a = block.output[q * features + o]
                if a > 0 && a < 6 { delta[q * features + o] = dPooled[o] / Float(pixels) }
            }
        }
        var gradient = [Float](repeating: 0, count: features * inputs)
        delta.withUnsafeBufferPointer { ds in
            block.input.withUnsafeBufferPointer { xs in
                gradient.withUnsafeMutableBufferPointer { gs in
                    guard let dp = ds.baseAddress, let xp = xs.baseAddress, let gp = gs.baseAddress else { return }
                    // dW (features, in) = delta^T (features, P) x X (P, in)
                    sgemm(
                        transposeA: true, m: features, n: inputs, k: pixels, a: dp, lda: features, b: xp, ldb: inputs,
                        c: gp, ldc: inputs)
                }
            }
        }
        return gradient
    }

    /// -(||dKL/dW_classifier||_1 + ||dKL/dW_block||_1).
    public func score(_ input: ShiftInput) -> Float {
        guard let head = input.head, let block = Self.lastBlockWeightGradient(head) else { return .nan }
        let classifier = GradientNormShift.weightGradient(head).storage
        return -(classifier.reduce(0) { $0 + abs($1) } + block.reduce(0) { $0 + abs($1) })
    }
}
