import NeuralNet
import Tensors

/// EfficientNet-Lite0's classifier differentiated with respect to its input: a planar
/// (1, C, H, W) forward that keeps what its backward needs, then the backward through the
/// classifier, the head, every inverted-residual block (projection, depthwise, expansion,
/// ReLU6, residual) and the stem. For ODIN's input perturbation (Liang, Li & Srikant 2018),
/// which moves an image along the sign of this gradient.
///
/// Built on demand from the inference network's packed layers (`unpackedWeight`), so a loaded
/// backbone carries no second copy of its weights. Slower than the channels-last inference
/// path (it is run only by `eval-shift` and ODIN's fit), and checked against it and against
/// finite differences (Lite0InputGradientTests).
public struct Lite0InputGradient: Sendable {
    /// A layer's weight (O, C / groups, k, k), bias and activation.
    struct Layer: Sendable {
        var weight: Tensor, bias: [Float], activation: Activation, depthwise: Bool

        init(_ packed: PackedConvolution) {
            (weight, bias, activation, depthwise) = (
                packed.unpackedWeight, packed.biasValues, packed.activation, packed.isDepthwise
            )
        }
    }

    /// One inverted-residual block's layers.
    struct Block: Sendable {
        var expand: Layer?, depthwise: Layer, project: Layer, stride: Int, residual: Bool
    }

    let stem: Layer, blocks: [Block], head: Layer
    let classifier: Linear

    /// The planar layers of `backbone`.
    public init(_ backbone: EfficientNetLite0) {
        stem = Layer(backbone.stem)
        blocks = backbone.blocks.map {
            Block(
                expand: $0.expand.map(Layer.init), depthwise: Layer($0.depthwise), project: Layer($0.project),
                stride: $0.stride, residual: $0.residual)
        }
        head = Layer(backbone.head)
        classifier = backbone.classifier
    }

    /// The ImageNet logits (1000) of a (1, 3, H, W) normalized input, and the gradient with
    /// respect to the input, (1, 3, H, W), of the loss whose gradient with respect to the logits
    /// `lossGradient` returns (given the logits).
    public func inputGradient(
        _ input: Tensor, lossGradient: ([Float]) -> [Float]
    ) -> (logits: [Float], gradient: Tensor) {
        precondition(input.shape.count == 4 && input.batch == 1 && input.channels == 3)
        // Each step pushes its backward (dL/dy -> dL/dx); they run in reverse.
        var backward = [(Tensor) -> Tensor]()
        var x = Self.convolve(
            input, stem, stride: 2, same: true, backward: &backward)
        for block in blocks {
            var steps = [(Tensor) -> Tensor]()
            var h = x
            if let expand = block.expand { h = Self.convolve(h, expand, stride: 1, same: false, backward: &steps) }
            h = Self.convolve(h, block.depthwise, stride: block.stride, same: true, backward: &steps)
            h = Self.convolve(h, block.project, stride: 1, same: false, backward: &steps)
            if block.residual { Self.add(x, into: &h) }
            let residual = block.residual
            backward.append { dy in
                var g = steps.reversed().reduce(dy) { $1($0) }
                if residual { Self.add(dy, into: &g) }
                return g
            }
            x = h
        }
        let maps = Self.convolve(x, head, stride: 1, same: false, backward: &backward)
        // Average over pixels, then the classifier.
        let channels = maps.channels, pixels = maps.height * maps.width
        var pooled = Tensor(shape: [1, channels])
        for c in 0..<channels {
            var sum: Float = 0
            for p in 0..<pixels { sum += maps.storage[c * pixels + p] }
            pooled.storage[c] = sum / Float(pixels)
        }
        let logits = classifier.forward(pooled).storage
        let dLogits = Tensor(shape: [1, logits.count], storage: lossGradient(logits))
        let dPooled = classifier.backward(input: pooled, outputGradient: dLogits).input
        var dMaps = Tensor(shape: maps.shape)
        for c in 0..<channels {
            let share = dPooled.storage[c] / Float(pixels)
            for p in 0..<pixels { dMaps.storage[c * pixels + p] = share }
        }
        return (logits, backward.reversed().reduce(dMaps) { $1($0) })
    }

    /// y += x, elementwise (a residual and its gradient).
    static func add(_ x: Tensor, into y: inout Tensor) {
        precondition(x.shape == y.shape)
        x.storage.withUnsafeBufferPointer { xs in
            y.storage.withUnsafeMutableBufferPointer { ys in
                for i in ys.indices { ys[i] += xs[i] }
            }
        }
    }

    /// One layer forward (padding TensorFlow 'SAME' when `same`, else none), pushing its
    /// backward onto `backward`.
    static func convolve(
        _ x: Tensor, _ layer: Layer, stride: Int, same: Bool, backward: inout [(Tensor) -> Tensor]
    ) -> Tensor {
        let o = layer.weight.shape[0], k = layer.weight.shape[2]
        let c = x.channels, groups = layer.depthwise ? c : 1
        let geometry =
            same
            ? ConvGeometry.same(
                inChannels: c, outChannels: o, kernel: k, stride: stride, height: x.height, width: x.width,
                groups: groups)
            : ConvGeometry.symmetric(inChannels: c, outChannels: o, kernel: k, stride: stride, pad: 0, groups: groups)
        var columns = [Float]()
        var y =
            layer.depthwise
            ? depthwiseForward(x, weight: layer.weight, bias: layer.bias, geometry: geometry)
            : convolutionForward(x, weight: layer.weight, bias: layer.bias, geometry: geometry, columns: &columns)
        if layer.activation != .none {
            let activation = layer.activation
            y.storage.withUnsafeMutableBufferPointer { v in
                for i in v.indices { v[i] = activation.apply(v[i]) }
            }
        }
        let output = y, inputShape = x.shape
        backward.append { dy in
            let dz = activationBackward(dy, output: output, layer.activation)
            if layer.depthwise {
                return depthwiseInputGradient(dz, weight: layer.weight, geometry: geometry, inputShape: inputShape)
            }
            var none = [Float]()
            var noBias = [Float]()
            return convolutionBackward(
                dz, weight: layer.weight, geometry: geometry, columns: columns, inputShape: inputShape,
                weightGradient: &none, biasGradient: &noBias, needsInputGradient: true) ?? Tensor(shape: inputShape)
        }
        return y
    }
}
