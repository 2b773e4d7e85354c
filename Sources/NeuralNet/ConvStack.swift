import Foundation
import Tensors

/// Shape of one layer of a `ConvStack`.
public struct LayerSpec: Equatable, Sendable {
    /// Output channels.
    public var outChannels: Int
    /// Square kernel side.
    public var kernel: Int
    /// Stride.
    public var stride: Int
    /// Zero padding on every side.
    public var padding: Int
    /// Activation after the convolution.
    public var activation: Activation
    /// Bilinear upsampling factor applied to the layer's input first (1 = none).
    public var upsample: Int

    /// Creates a spec: ReLU after the convolution when `relu`, unless `activation` says otherwise.
    public init(
        outChannels: Int, kernel: Int, stride: Int = 1, padding: Int? = nil, relu: Bool = true,
        activation: Activation? = nil, upsample: Int = 1
    ) {
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        self.padding = padding ?? (kernel - 1) / 2
        self.activation = activation ?? (relu ? .relu : .none)
        self.upsample = upsample
    }

    /// He initialization's gain squared for this activation: 2 / (1 + a^2) for a (leaky) ReLU
    /// of negative slope a, 1 for a linear layer (He et al. 2015).
    var initGain: Float {
        switch activation {
        case .none: return 1
        case .relu, .relu6: return 2
        case .leakyRelu: return 2 / (1 + Activation.leakySlope * Activation.leakySlope)
        }
    }
}

/// A plain chain of convolutions (with optional ReLU and bilinear upsampling) that can be
/// trained: the students and the autoencoder halves are built from it.
public struct ConvStack: Sendable {
    /// Layer shapes.
    public let specs: [LayerSpec]
    /// Input channels of the first layer.
    public let inChannels: Int
    /// (O, C, k, k) weight of each layer.
    public var weights: [Tensor] { didSet { packing = PackingCache() } }
    /// (O) bias of each layer.
    public var biases: [[Float]] { didSet { packing = PackingCache() } }
    /// The layers packed for inference, made on the first `forward` after the weights change
    /// (packing every call cost 4% of an image's inspection).
    private var packing = PackingCache()

    /// Packed layers shared by the copies of a stack until its weights change.
    final class PackingCache: @unchecked Sendable {
        private let lock = NSLock()
        private var layers: [PackedConvolution]?

        func layers(_ make: () -> [PackedConvolution]) -> [PackedConvolution] {
            lock.lock()
            defer { lock.unlock() }
            if let layers { return layers }
            let made = make()
            layers = made
            return made
        }
    }

    /// A stack with He-normal weights (He et al. 2015: std sqrt(2 / fan-in) before a ReLU,
    /// sqrt(1 / fan-in) before nothing) and zero biases, drawn from `generator`.
    public init(inChannels: Int, specs: [LayerSpec], generator: inout SeededGenerator) {
        self.inChannels = inChannels
        self.specs = specs
        var weights = [Tensor](), biases = [[Float]]()
        var c = inChannels
        for spec in specs {
            let fanIn = c * spec.kernel * spec.kernel
            let std = (spec.initGain / Float(fanIn)).squareRoot()
            let shape = [spec.outChannels, c, spec.kernel, spec.kernel]
            weights.append(
                Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in std * generator.nextGaussian() }))
            biases.append([Float](repeating: 0, count: spec.outChannels))
            c = spec.outChannels
        }
        self.weights = weights
        self.biases = biases
    }

    /// A stack from stored parameters, or nil when a shape does not match the specs.
    public init?(inChannels: Int, specs: [LayerSpec], weights: [Tensor], biases: [[Float]]) {
        guard weights.count == specs.count, biases.count == specs.count else { return nil }
        var c = inChannels
        for (i, spec) in specs.enumerated() {
            guard weights[i].shape == [spec.outChannels, c, spec.kernel, spec.kernel],
                biases[i].count == spec.outChannels
            else { return nil }
            c = spec.outChannels
        }
        self.inChannels = inChannels
        self.specs = specs
        self.weights = weights
        self.biases = biases
    }

    /// Output channels of the last layer.
    public var outChannels: Int { specs.last?.outChannels ?? inChannels }

    func geometry(_ layer: Int) -> ConvGeometry {
        let s = specs[layer]
        return .symmetric(
            inChannels: weights[layer].shape[1], outChannels: s.outChannels, kernel: s.kernel,
            stride: s.stride, pad: s.padding)
    }

    /// Inference: (N, C, H, W) -> (N, O, H', W') through the channels-last kernels (weights
    /// packed once, see `packing`), split across cores, or on
    /// the calling thread alone when the caller runs several networks side by side: small
    /// layers split across cores cost more in hand-offs than whole networks do. The same
    /// kernels either way, so the numbers do not depend on how the work is spread.
    public func forward(_ x: Tensor, singleThreaded: Bool = false) -> Tensor {
        if specs.isEmpty { return x }
        // Channels-last from the start: a planar input's patches, gathered pixel by pixel from C
        // planes, cost as much as the first layer's product (measured: 6.5% of `eval`).
        return forward(ChannelsLastBatch(x), singleThreaded: singleThreaded).planar
    }

    /// `forward` on a channels-last batch, (N, H, W, C) -> (N, H', W', O), for callers that
    /// chain stacks without converting between them.
    public func forward(_ x: ChannelsLastBatch, singleThreaded: Bool = false) -> ChannelsLastBatch {
        let n = x.batch, threads = singleThreaded ? 1 : computeThreads
        var (h, w, c) = (x.height, x.width, x.channels)
        var values = x.values
        let layers = packing.layers {
            specs.indices.map {
                PackedConvolution(
                    weight: weights[$0], bias: biases[$0], depthwise: false, activation: specs[$0].activation)
            }
        }
        for (i, spec) in specs.enumerated() {
            if spec.upsample > 1 {
                values = upsampleBilinearChannelsLast(
                    values, batch: n, height: h, width: w, channels: c, toHeight: h * spec.upsample,
                    width: w * spec.upsample)
                (h, w) = (h * spec.upsample, w * spec.upsample)
            }
            let g = geometry(i)
            let (oh, ow) = g.outputSize(height: h, width: w)
            let packed = layers[i]
            let (ih, iw, ic) = (h, w, c)
            values = channelsLastLayer(
                values, batch: n, inputPerImage: ih * iw * ic, outputRows: oh, outputPerRow: ow * spec.outChannels,
                threads: threads
            ) { _, input, rows, y in
                let o = spec.outChannels
                if g.isPointwise {
                    packedProduct(
                        input + rows.lowerBound * iw * ic, ldx: ic, pixels: rows.count * iw, weights: packed,
                        into: y + rows.lowerBound * ow * o, ldy: o)
                    return
                }
                // k x k: read in place from the band's rows (`denseConvolutionRows`): gathering a
                // patch per pixel wrote k * k times the input and cost a fifth of the students' time.
                denseConvolutionRows(rows, height: ih, width: iw, geometry: g, weights: packed, into: y) { iy, row in
                    row.initialize(from: input + iy * iw * ic, count: iw * ic)
                }
            }
            (h, w, c) = (oh, ow, spec.outChannels)
        }
        return ChannelsLastBatch(values: values, batch: n, height: h, width: w, channels: c)
    }

    /// Everything the training forward keeps for the backward pass.
    public struct Tape: Sendable {
        var inputs: [Tensor] = []  // each layer's input (after upsampling)
        var inputShapes: [[Int]] = []  // each layer's input before upsampling
        var columns: [[Float]] = []
        var outputs: [Tensor] = []
    }

    /// Training forward of one image, (1, C, H, W), recording the tape.
    public func trainingForward(_ x: Tensor) -> (Tensor, Tape) {
        var tape = Tape()
        var a = x
        for (i, spec) in specs.enumerated() {
            tape.inputShapes.append(a.shape)
            if spec.upsample > 1 {
                a = upsampleBilinear(a, height: a.height * spec.upsample, width: a.width * spec.upsample)
            }
            var columns = [Float]()
            var y = convolutionForward(a, weight: weights[i], bias: biases[i], geometry: geometry(i), columns: &columns)
            if spec.activation != .none { y = activate(y, spec.activation) }
            tape.inputs.append(a)
            tape.columns.append(columns)
            tape.outputs.append(y)
            a = y
        }
        return (a, tape)
    }

    /// Gradients of every layer's weight and bias, shaped like the stack.
    public struct Gradients: Sendable {
        /// dL/dweight per layer (flattened).
        public var weights: [[Float]]
        /// dL/dbias per layer.
        public var biases: [[Float]]

        /// Zero gradients for `stack`.
        public init(for stack: ConvStack) {
            weights = stack.weights.map { [Float](repeating: 0, count: $0.count) }
            biases = stack.biases.map { [Float](repeating: 0, count: $0.count) }
        }

        /// No gradients at all: the backward pass skips the parameters.
        fileprivate init(emptyFor stack: ConvStack) {
            weights = stack.weights.map { _ in [] }
            biases = stack.biases.map { _ in [] }
        }

        /// Sets every gradient to zero.
        public mutating func zero() {
            for i in weights.indices {
                for j in weights[i].indices { weights[i][j] = 0 }
                for j in biases[i].indices { biases[i][j] = 0 }
            }
        }

        /// Adds another set of gradients.
        public mutating func add(_ other: Gradients) {
            for i in weights.indices {
                for j in weights[i].indices { weights[i][j] += other.weights[i][j] }
                for j in biases[i].indices { biases[i][j] += other.biases[i][j] }
            }
        }
    }

    /// dL/dx of `trainingForward` alone: `backward` without the parameters' gradients (what a
    /// generator needs from the discriminator it is trained against).
    public func inputGradient(_ dy: Tensor, tape: Tape) -> Tensor {
        var none = Gradients(emptyFor: self)
        return backward(dy, tape: tape, gradients: &none, needsInputGradient: true)
            ?? Tensor(shape: tape.inputShapes[0])
    }

    /// dL/dW of the last layer alone (flattened as its weight), given dL/dy of the output: the
    /// one-class gradient signal reads only it, so the layers below are not gone through.
    public func lastLayerWeightGradient(_ dy: Tensor, tape: Tape) -> [Float] {
        let i = specs.count - 1
        let d = activationBackward(dy, output: tape.outputs[i], specs[i].activation)
        var weight = [Float](repeating: 0, count: weights[i].count), noBias = [Float]()
        _ = convolutionBackward(
            d, weight: weights[i], geometry: geometry(i), columns: tape.columns[i], inputShape: tape.inputs[i].shape,
            weightGradient: &weight, biasGradient: &noBias, needsInputGradient: false)
        return weight
    }

    /// Backward of `trainingForward`: accumulates into `gradients`; returns dL/dx when asked.
    public func backward(_ dy: Tensor, tape: Tape, gradients: inout Gradients, needsInputGradient: Bool) -> Tensor? {
        var d = dy
        for i in stride(from: specs.count - 1, through: 0, by: -1) {
            let spec = specs[i]
            d = activationBackward(d, output: tape.outputs[i], spec.activation)
            let wantsInput = i > 0 || needsInputGradient
            guard
                let dx = convolutionBackward(
                    d, weight: weights[i], geometry: geometry(i), columns: tape.columns[i],
                    inputShape: tape.inputs[i].shape, weightGradient: &gradients.weights[i],
                    biasGradient: &gradients.biases[i], needsInputGradient: wantsInput)
            else { return nil }
            d = dx
            if spec.upsample > 1 {
                let shape = tape.inputShapes[i]
                d = upsampleBilinearBackward(d, height: shape[2], width: shape[3])
            }
        }
        return d
    }

    /// Named tensors for a checkpoint: `prefix.i.weight`, `prefix.i.bias`.
    public func namedTensors(prefix: String) -> [String: Tensor] {
        var out = [String: Tensor]()
        for i in specs.indices {
            out["\(prefix).\(i).weight"] = weights[i]
            out["\(prefix).\(i).bias"] = Tensor(shape: [biases[i].count], storage: biases[i])
        }
        return out
    }

    /// A stack read back from `namedTensors`, or nil when a tensor is missing or misshapen.
    public init?(inChannels: Int, specs: [LayerSpec], tensors: [String: Tensor], prefix: String) {
        var weights = [Tensor](), biases = [[Float]]()
        for i in specs.indices {
            guard let w = tensors["\(prefix).\(i).weight"], let b = tensors["\(prefix).\(i).bias"] else { return nil }
            weights.append(w)
            biases.append(b.storage)
        }
        self.init(inChannels: inChannels, specs: specs, weights: weights, biases: biases)
    }
}

/// Adam with decoupled weight decay (AdamW, Loshchilov & Hutter, ICLR 2019).
public struct AdamW: Sendable {
    /// Step size.
    public var learningRate: Float
    /// First-moment decay.
    public var beta1: Float = 0.9
    /// Second-moment decay.
    public var beta2: Float = 0.999
    /// Denominator guard.
    public var epsilon: Float = 1e-8
    /// Decoupled weight decay per step, as a multiple of the learning rate.
    public var weightDecay: Float
    private var moments = [Int: [Float]]()
    private var velocities = [Int: [Float]]()
    private var steps = 0

    /// Creates an optimizer.
    public init(learningRate: Float, weightDecay: Float = 0) {
        self.learningRate = learningRate
        self.weightDecay = weightDecay
    }

    /// Starts a step (advances the bias-correction counter); call once before the updates of a step.
    public mutating func beginStep() { steps += 1 }

    /// Updates parameter `index` in place from its gradient times `scale` (e.g. 1 / batch).
    public mutating func update(
        _ index: Int, value: inout [Float], gradient: [Float], scale: Float = 1,
        decays: Bool = true
    ) {
        precondition(value.count == gradient.count && steps > 0)
        var m = moments[index] ?? [Float](repeating: 0, count: value.count)
        var v = velocities[index] ?? [Float](repeating: 0, count: value.count)
        let c1 = 1 - pow(beta1, Float(steps)), c2 = 1 - pow(beta2, Float(steps))
        let decay = decays ? learningRate * weightDecay : 0
        for i in value.indices {
            let g = gradient[i] * scale
            m[i] = beta1 * m[i] + (1 - beta1) * g
            v[i] = beta2 * v[i] + (1 - beta2) * g * g
            value[i] -= learningRate * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon) + decay * value[i]
        }
        moments[index] = m
        velocities[index] = v
    }
}

/// Float power for the bias corrections.
@inline(__always) func pow(_ x: Float, _ n: Float) -> Float { Float(Foundation.pow(Double(x), Double(n))) }

extension AdamW {
    /// Updates every weight (decayed) and bias (not decayed) of a stack; `slot` keeps the
    /// optimizer state of different stacks apart.
    public mutating func update(_ stack: inout ConvStack, gradients: ConvStack.Gradients, scale: Float, slot: Int) {
        for i in stack.specs.indices {
            update(slot * 1024 + 2 * i, value: &stack.weights[i].storage, gradient: gradients.weights[i], scale: scale)
            update(
                slot * 1024 + 2 * i + 1, value: &stack.biases[i], gradient: gradients.biases[i], scale: scale,
                decays: false)
        }
    }
}
