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

    /// (repeats, kernel, stride, expansion, in, out) per stage, as in EfficientNet-B0.
    static let blockTable = [
        (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
        (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
        (1, 3, 1, 6, 192, 320),
    ]
    /// Index of the last block of each output stage.
    static let stageEnds: [Stage: Int] = [.stride2: 0, .stride4: 2, .stride8: 4, .stride16: 10, .stride32: 15]

    // Inference runs channels-last (NHWC) on weights packed once here (see ChannelsLast.swift).
    let stem: PackedConvolution
    let blocks: [InvertedResidual]
    let head: PackedConvolution
    /// The ImageNet classifier on the pooled head features: (1000, 1280).
    public let classifier: Linear

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
        let stemLayer = try conv(
            "_conv_stem.weight", bn: "_bn0", shape: [32, 3, 3, 3], stride: 2, groups: 1, activation: .relu6)
        stem = PackedConvolution(weight: stemLayer.weight, bias: stemLayer.bias, depthwise: false, activation: .relu6)
        var blocks = [InvertedResidual]()
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
                    InvertedResidual(
                        expand: expand, depthwise: depthwise, project: project,
                        residual: stride == 1 && inC == cout))
            }
        }
        self.blocks = blocks
        let headLayer = try conv(
            "_conv_head.weight", bn: "_bn1", shape: [1280, 320, 1, 1], stride: 1, groups: 1,
            activation: .relu6)
        head = PackedConvolution(weight: headLayer.weight, bias: headLayer.bias, depthwise: false, activation: .relu6)
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
        guard let deepest = stages.max(), let last = Self.stageEnds[deepest] else { return [:] }
        var out = [Stage: Tensor]()
        run(input, through: last) { index, map in
            for s in stages where Self.stageEnds[s] == index {
                out[s] = channelsFirst(
                    map.values, batch: input.batch, height: map.height, width: map.width, channels: map.channels)
            }
        }
        return out
    }

    /// ImageNet logits (N, 1000) for (N, 3, H, W) normalized input.
    public func logits(_ input: Tensor) -> Tensor { classifier.forward(headFeatures(input)) }

    /// The head's features averaged over pixels, (N, 1280): what the classifier reads.
    public func headFeatures(_ input: Tensor) -> Tensor {
        let maps = headMaps(input)
        return Self.averageOverPixels(maps.output, batch: input.batch, pixels: maps.pixels)
    }

    /// The head's output (N * pixels, 1280), channels-last, averaged over each image's pixels:
    /// (N, 1280). Each channel's sum runs over the pixels in order, sixteen channels a vector
    /// (as a scalar loop through the tensor it took 50 µs of the classifier's 4 ms).
    public static func averageOverPixels(_ output: [Float], batch: Int, pixels: Int) -> Tensor {
        let c = 1280, scale = Float(max(1, pixels))
        precondition(output.count == batch * pixels * c)
        return Tensor(shape: [batch, c]) { pooled in
            output.withUnsafeBufferPointer { out in
                guard let y = pooled.baseAddress else { return }
                for b in 0..<batch {
                    for c0 in Swift.stride(from: 0, to: c, by: 16) {
                        var sum = SIMD16<Float>()
                        for p in 0..<pixels {
                            guard let o = out.baseAddress else { break }
                            sum += load(o + (b * pixels + p) * c + c0, as: SIMD16<Float>.self)
                        }
                        store(sum / scale, y + b * c + c0)
                    }
                }
            }
        }
    }

    /// The head layer's input (the last block's output) and output (1x1, 320 -> 1280, ReLU6),
    /// channels-last: (N * pixels, 320) and (N * pixels, 1280), `pixels` per image; what the
    /// gradient through the last block reads.
    public func headMaps(_ input: Tensor) -> (input: [Float], output: [Float], pixels: Int) {
        var maps = (input: [Float](), output: [Float](), pixels: 0)
        run(input, through: blocks.count - 1) { index, map in
            guard index == blocks.count - 1 else { return }
            // Its pixels split between threads.
            let pixels = map.height * map.width
            let heads = channelsLastLayer(
                map.values, batch: input.batch, inputPerImage: pixels * map.channels, outputRows: pixels,
                outputPerRow: 1280
            ) { _, x, rows, y in
                if !rows.isEmpty {
                    packedProduct(
                        x + rows.lowerBound * map.channels, ldx: map.channels, pixels: rows.count, weights: head,
                        into: y + rows.lowerBound * 1280, ldy: 1280)
                }
            }
            maps = (map.values, heads, pixels)
        }
        return maps
    }

    /// A channels-last feature map of a whole batch: (N, H, W, C) values.
    struct Map {
        var values: [Float]
        var height: Int, width: Int, channels: Int
    }

    /// The stem and blocks 0...last on (N, 3, H, W) input, handing each block's output to `visit`.
    func run(_ input: Tensor, through last: Int, visit: (Int, Map) -> Void) {
        precondition(input.shape.count == 4 && input.channels == 3, "input must be (N, 3, H, W), got \(input.shape)")
        let n = input.batch, h = input.height, w = input.width
        // Stem: 3x3 stride 2 ('SAME') read in place from the band's input rows, copied
        // channels-last from the planar input with their padding (see `denseConvolutionRows`).
        let g = ConvGeometry.same(inChannels: 3, outChannels: 32, kernel: 3, stride: 2, height: h, width: w)
        let (sh, sw) = g.outputSize(height: h, width: w)
        let stem = self.stem
        var map = Map(
            values: channelsLastLayer(
                input.storage, batch: n, inputPerImage: h * w * 3, outputRows: sh, outputPerRow: sw * 32
            ) { _, x, rows, y in
                denseConvolutionRows(rows, height: h, width: w, geometry: g, weights: stem, into: y) { iy, row in
                    for ch in 0..<3 {
                        let plane = x + ch * h * w + iy * w
                        for ix in 0..<w { row[ix * 3 + ch] = plane[ix] }
                    }
                }
            }, height: sh, width: sw, channels: 32)
        for index in 0...last {
            let block = blocks[index]
            let (oh, ow) = block.geometry(height: map.height, width: map.width).outputSize(
                height: map.height, width: map.width)
            let (ih, iw, cin) = (map.height, map.width, map.channels)
            // Small maps of a single image split into bands: the expansion first, split by
            // rows, then the rest (see `forward`, which expands whole images itself).
            let expanded =
                n < computeThreads && ih * iw <= InvertedResidual.wholeExpansionPixels
                ? map.values.withUnsafeBufferPointer { x in
                    x.baseAddress.flatMap { block.expandAll($0, images: n, height: ih, width: iw) }
                } : nil
            let values = channelsLastLayer(
                map.values, batch: n, inputPerImage: ih * iw * cin, outputRows: oh, outputPerRow: ow * block.outChannels
            ) { image, x, rows, y in
                block.forward(x, height: ih, width: iw, rows: rows, into: y, expanded: expanded, image: image)
            }
            map = Map(values: values, height: oh, width: ow, channels: block.outChannels)
            visit(index, map)
        }
    }
}
