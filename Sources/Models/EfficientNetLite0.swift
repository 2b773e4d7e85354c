import NeuralNet
import SafeFiles
import Tensors

/// EfficientNet-Lite0 (Tan & Le 2019; "lite": no squeeze-excite, ReLU6, fixed stem and head),
/// loaded from the lukemelas EfficientNet-PyTorch tensor names with batch norms folded.
///
/// Padding is TensorFlow 'SAME' (asymmetric for stride 2: the extra pixel goes bottom/right):
/// the weights were trained in TensorFlow, and symmetric padding would shift every stride-2
/// stage by half a pixel, which measurably changes the features and the logits.
public struct EfficientNetLite0: Sendable {
    /// Feature maps the backbone can stop at, named by their stride.
    public enum Stage: Int, Sendable, CaseIterable, Comparable {
        /// Stride 2, 16 channels.
        case stride2 = 2
        /// Stride 4, 24 channels.
        case stride4 = 4
        /// Stride 8, 40 channels.
        case stride8 = 8
        /// Stride 16, 112 channels.
        case stride16 = 16
        /// Stride 32, 320 channels.
        case stride32 = 32

        /// Channels of this stage's feature map.
        public var channels: Int { [2: 16, 4: 24, 8: 40, 16: 112, 32: 320][rawValue] ?? 0 }

        /// Ordered by stride.
        public static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }
    }

    /// Batch-norm epsilon of the TensorFlow originals.
    public static let batchNormEpsilon: Float = 1e-3
    /// Classifier classes.
    public static let classCount = 1000

    /// One inverted-residual block: optional 1x1 expansion, depthwise, 1x1 projection.
    struct Block: Sendable {
        var expand: Conv2d?
        var depthwise: Conv2d
        var project: Conv2d
        var residual: Bool

        func forward(_ x: Tensor) -> Tensor {
            var h = expand.map { $0.forward(x) } ?? x
            h = depthwise.forward(h)
            h = project.forward(h)
            return residual ? add(h, x) : h
        }
    }

    /// (repeats, kernel, stride, expansion, in, out) per stage, as in EfficientNet-B0.
    static let blockTable = [
        (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ]
    /// Index of the last block of each output stage.
    static let stageEnds: [Stage: Int] = [.stride2: 0, .stride4: 2, .stride8: 4, .stride16: 10, .stride32: 15]

    var stem: Conv2d
    var blocks: [Block]
    var head: Conv2d
    var classifier: Linear

    /// Builds the network from a checkpoint with the original tensor names.
    public init(checkpoint: SafeTensors, path: String = "checkpoint") throws {
        func vector(_ name: String, _ n: Int) throws -> [Float] {
            try checkpoint.tensor(name, shape: [n], path: path).storage
        }
        func conv(
            _ name: String, bn: String, shape: [Int], stride: Int, groups: Int,
            activation: Activation
        ) throws -> Conv2d {
            let w = try checkpoint.tensor(name, shape: shape, path: path)
            let o = shape[0]
            return try Conv2d(weight: w, stride: stride, padding: .same, groups: groups, activation: activation)
                .foldingBatchNorm(
                    gamma: vector(bn + ".weight", o), beta: vector(bn + ".bias", o),
                    mean: vector(bn + ".running_mean", o), variance: vector(bn + ".running_var", o),
                    epsilon: Self.batchNormEpsilon)
        }
        stem = try conv(
            "_conv_stem.weight", bn: "_bn0", shape: [32, 3, 3, 3], stride: 2, groups: 1, activation: .relu6)
        var blocks = [Block]()
        for (repeats, k, s, e, cin, cout) in Self.blockTable {
            for r in 0..<repeats {
                let inC = r == 0 ? cin : cout, stride = r == 0 ? s : 1, mid = inC * e
                let p = "_blocks.\(blocks.count)."
                let expand =
                    e == 1
                    ? nil
                    : try conv(
                        p + "_expand_conv.weight", bn: p + "_bn0", shape: [mid, inC, 1, 1],
                        stride: 1, groups: 1, activation: .relu6)
                let depthwise = try conv(
                    p + "_depthwise_conv.weight", bn: p + "_bn1", shape: [mid, 1, k, k],
                    stride: stride, groups: mid, activation: .relu6)
                let project = try conv(
                    p + "_project_conv.weight", bn: p + "_bn2", shape: [cout, mid, 1, 1],
                    stride: 1, groups: 1, activation: .none)
                blocks.append(
                    Block(
                        expand: expand, depthwise: depthwise, project: project,
                        residual: stride == 1 && inC == cout))
            }
        }
        self.blocks = blocks
        head = try conv(
            "_conv_head.weight", bn: "_bn1", shape: [1280, 320, 1, 1], stride: 1, groups: 1,
            activation: .relu6)
        classifier = try Linear(
            weight: checkpoint.tensor("_fc.weight", shape: [1000, 1280], path: path),
            bias: vector("_fc.bias", 1000))
    }

    /// Loads the network from a safetensors file.
    public init(contentsOf path: String) throws {
        try self.init(checkpoint: SafeTensors.read(contentsOf: path), path: path)
    }

    /// Maps 0...255 RGB values to the network's input range: (x - 127) / 128.
    @inlinable
    public static func normalize(_ value: Float) -> Float { (value - 127) / 128 }

    /// Runs the backbone on (N, 3, H, W) normalized input and returns the requested stages'
    /// feature maps (N, C, ceil(H / s), ceil(W / s)), stopping after the deepest one asked for.
    public func features(_ input: Tensor, stages: Set<Stage>) -> [Stage: Tensor] {
        precondition(input.shape.count == 4 && input.channels == 3, "input must be (N, 3, H, W), got \(input.shape)")
        guard let deepest = stages.max(), let last = Self.stageEnds[deepest] else { return [:] }
        var out = [Stage: Tensor]()
        var x = stem.forward(input)
        for i in 0...last {
            x = blocks[i].forward(x)
            for s in stages where Self.stageEnds[s] == i { out[s] = x }
        }
        return out
    }

    /// ImageNet logits (N, 1000) for (N, 3, H, W) normalized input.
    public func logits(_ input: Tensor) -> Tensor {
        guard var x = features(input, stages: [.stride32])[.stride32] else { return Tensor(shape: [0, 1000]) }
        x = head.forward(x)
        return classifier.forward(globalAveragePool(x))
    }
}
