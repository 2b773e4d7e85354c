import NeuralNet
import Tensors

/// Per-channel standardization of the teacher's patch embeddings: what the learned models
/// regress, so every channel weighs the same in their losses and maps.
public struct FeatureStandardization: Sendable, Equatable {
    /// (D) channel means over the training patches.
    public var mean: [Float]
    /// (D) channel standard deviations (floored so a dead channel cannot divide by zero).
    public var scale: [Float]

    /// Wraps precomputed statistics.
    public init(mean: [Float], scale: [Float]) {
        precondition(mean.count == scale.count)
        self.mean = mean
        self.scale = scale
    }

    /// Statistics of a set of (1, D, h, w) feature maps (Welford-free: sums in Double).
    public init(of features: [Tensor]) {
        let d = features.first?.channels ?? 0
        var sum = [Double](repeating: 0, count: d), squares = [Double](repeating: 0, count: d)
        var count = 0
        for f in features {
            let p = f.height * f.width
            count += p
            for c in 0..<d {
                for i in 0..<p {
                    let v = Double(f.storage[c * p + i])
                    sum[c] += v
                    squares[c] += v * v
                }
            }
        }
        let n = Double(max(count, 1))
        mean = sum.map { Float($0 / n) }
        scale = zip(sum, squares).map { s, q in Float(max(q / n - (s / n) * (s / n), 0).squareRoot()) }.map { max($0, 1e-4) }
    }

    /// (1, D, h, w) features standardized channel by channel.
    public func apply(_ features: Tensor) -> Tensor {
        let p = features.height * features.width
        var out = features
        for c in 0..<mean.count {
            let m = mean[c], s = 1 / scale[c]
            for i in 0..<p { out.storage[c * p + i] = (out.storage[c * p + i] - m) * s }
        }
        return out
    }
}

/// Students that learn to imitate the frozen teacher on normal images only, so they fail
/// where an image is abnormal (Bergmann et al., "Uninformed Students", CVPR 2020; the
/// student-teacher half of EfficientAD, Batzner et al., WACV 2024).
public struct StudentEnsemble: Sendable {
    /// The architecture of one student: image (3, H, W) -> standardized teacher embedding
    /// (D, H / 8, W / 8). Three stride-2 3x3 convolutions reach the teacher's stride 8, a
    /// further 3x3 widens the receptive field to 47 pixels (the 3x3-averaged stride-8/16
    /// teacher patch sees more, but its centre weighs most), and a 1x1 maps to D channels.
    public static func specs(width: Int, outChannels: Int) -> [LayerSpec] {
        [LayerSpec(outChannels: width / 4, kernel: 3, stride: 2),
         LayerSpec(outChannels: width / 2, kernel: 3, stride: 2),
         LayerSpec(outChannels: width, kernel: 3, stride: 2),
         LayerSpec(outChannels: width, kernel: 3),
         LayerSpec(outChannels: outChannels, kernel: 1, relu: false)]
    }

    /// The students.
    public var students: [ConvStack]
    /// Teacher standardization the students regress.
    public let standardization: FeatureStandardization

    /// Wraps trained students.
    public init(students: [ConvStack], standardization: FeatureStandardization) {
        self.students = students
        self.standardization = standardization
    }

    /// Both maps for one image: the mean over students of the mean squared discrepancy to the
    /// teacher per patch, and the predictive variance across students per patch (averaged over
    /// channels), each (h, w).
    ///
    /// input: (1, 3, H, W) normalized image; teacher: (1, D, H / 8, W / 8) raw embeddings.
    public func maps(input: Tensor, teacher: Tensor) -> (discrepancy: [Float], variance: [Float]) {
        let target = standardization.apply(teacher)
        let d = target.channels, p = target.height * target.width
        let outputs = students.map { $0.forward(input) }
        var discrepancy = [Float](repeating: 0, count: p), variance = [Float](repeating: 0, count: p)
        let k = Float(outputs.count)
        for c in 0..<d {
            for i in 0..<p {
                var mean: Float = 0, squares: Float = 0, error: Float = 0
                for o in outputs {
                    let v = o.storage[c * p + i]
                    mean += v
                    squares += v * v
                    let e = v - target.storage[c * p + i]
                    error += e * e
                }
                mean /= k
                discrepancy[i] += error / k
                variance[i] += max(squares / k - mean * mean, 0)
            }
        }
        let scale = 1 / Float(d)
        return (discrepancy.map { $0 * scale }, variance.map { $0 * scale })
    }
}
