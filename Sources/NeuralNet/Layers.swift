import Tensors

/// How a convolution pads its input.
public enum Padding: Sendable, Equatable {
    /// Fixed zero padding on each side.
    case explicit(top: Int, bottom: Int, left: Int, right: Int)
    /// TensorFlow 'SAME': output = ceil(input / stride), extra padding at the bottom/right.
    case same
}

/// A 2-D convolution layer's parameters (dense, grouped or depthwise) with bias and activation:
/// what a checkpoint holds, batch norm folded; inference packs it (`PackedConvolution`).
public struct Conv2d: Sendable {
    /// (O, C / groups, k, k).
    public var weight: Tensor
    /// (O) or empty.
    public var bias: [Float]
    /// Stride in both directions.
    public var stride: Int
    /// Padding rule.
    public var padding: Padding
    /// Channel groups.
    public var groups: Int
    /// Activation applied after the bias.
    public var activation: Activation

    /// Creates a layer from its weights.
    public init(
        weight: Tensor, bias: [Float] = [], stride: Int = 1, padding: Padding, groups: Int = 1,
        activation: Activation = .none
    ) {
        precondition(weight.shape.count == 4 && weight.shape[2] == weight.shape[3])
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.activation = activation
    }

    /// Output channels.
    public var outChannels: Int { weight.shape[0] }
    /// Input channels.
    public var inChannels: Int { weight.shape[1] * groups }

    /// The concrete geometry for an input of `height` x `width`.
    public func geometry(height: Int, width: Int) -> ConvGeometry {
        let k = weight.shape[2]
        switch padding {
        case .same:
            return .same(
                inChannels: inChannels, outChannels: outChannels, kernel: k, stride: stride,
                height: height, width: width, groups: groups)
        case let .explicit(t, b, l, r):
            return ConvGeometry(
                inChannels: inChannels, outChannels: outChannels, kernel: k, stride: stride,
                padding: (t, b, l, r), groups: groups)
        }
    }

    /// The layer with an inference-mode batch norm folded into its weight and bias.
    public func foldingBatchNorm(
        gamma: [Float], beta: [Float], mean: [Float], variance: [Float],
        epsilon: Float
    ) -> Conv2d {
        var copy = self
        (copy.weight, copy.bias) = foldBatchNorm(
            weight: weight, bias: bias, gamma: gamma, beta: beta, mean: mean,
            variance: variance, epsilon: epsilon)
        return copy
    }
}

/// A fully connected layer: y = x W^T + b.
public struct Linear: Sendable {
    /// (out, in).
    public var weight: Tensor
    /// (out).
    public var bias: [Float]

    /// Creates a layer from its weights.
    public init(weight: Tensor, bias: [Float]) {
        precondition(weight.shape.count == 2 && (bias.isEmpty || bias.count == weight.shape[0]))
        self.weight = weight
        self.bias = bias
    }

    /// (N, in) -> (N, out).
    public func forward(_ x: Tensor) -> Tensor {
        let n = x.shape[0], inputs = weight.shape[1], outputs = weight.shape[0]
        precondition(x.count == n * inputs, "linear: input \(x.shape) vs weight \(weight.shape)")
        var y = Tensor(shape: [n, outputs])
        x.storage.withUnsafeBufferPointer { xs in
            weight.storage.withUnsafeBufferPointer { ws in
                bias.withUnsafeBufferPointer { bs in
                    y.storage.withUnsafeMutableBufferPointer { ys in
                        guard let xp = xs.baseAddress, let wp = ws.baseAddress, let yp = ys.baseAddress else { return }
                        denseRows(
                            xp, batch: n, weights: wp, bias: bias.isEmpty ? nil : bs.baseAddress, inputs: inputs,
                            outputs: outputs, into: yp)
                    }
                }
            }
        }
        return y
    }

    /// Gradients of a loss through `forward`: given the input x (N, in) and dL/dy (N, out),
    /// dL/dW = dy^T x (out, in), dL/db = sum over the batch of dy (out), dL/dx = dy W (N, in).
    public func backward(
        input x: Tensor, outputGradient dy: Tensor
    ) -> (
        weight: Tensor, bias: [Float], input: Tensor
    ) {
        let n = x.shape[0], inputs = weight.shape[1], outputs = weight.shape[0]
        precondition(x.count == n * inputs && dy.count == n * outputs)
        var dw = Tensor(shape: [outputs, inputs]), dx = Tensor(shape: [n, inputs])
        var db = [Float](repeating: 0, count: outputs)
        for b in 0..<n { for o in 0..<outputs { db[o] += dy.storage[b * outputs + o] } }
        x.storage.withUnsafeBufferPointer { xs in
            dy.storage.withUnsafeBufferPointer { gs in
                weight.storage.withUnsafeBufferPointer { ws in
                    dw.storage.withUnsafeMutableBufferPointer { dws in
                        dx.storage.withUnsafeMutableBufferPointer { dxs in
                            guard let xp = xs.baseAddress, let gp = gs.baseAddress, let wp = ws.baseAddress,
                                let dwp = dws.baseAddress, let dxp = dxs.baseAddress
                            else { return }
                            sgemm(
                                transposeA: true, m: outputs, n: inputs, k: n, a: gp, lda: outputs, b: xp,
                                ldb: inputs, c: dwp, ldc: inputs)
                            sgemm(
                                m: n, n: inputs, k: outputs, a: gp, lda: outputs, b: wp, ldb: inputs, c: dxp,
                                ldc: inputs)
                        }
                    }
                }
            }
        }
        return (dw, db, dx)
    }
}
