import Tensors

/// Spectral normalization of a stack's weights (Miyato et al., ICLR 2018): each layer's weight,
/// seen as a matrix W (O, C k k), is divided by an estimate of its largest singular value σ,
/// kept by one power iteration per training step, so the network is about 1-Lipschitz and a
/// discriminator cannot sharpen its decision without bound (a remedy for unstable GAN training).
/// Biases are left as they are.
public struct SpectralNormalization: Sendable {
    /// Estimate of each layer's left singular vector, (O) per layer.
    public private(set) var left: [[Float]]

    /// One normalization: the stack with W / σ, and each layer's σ, u and v.
    public struct Factors: Sendable {
        /// σ per layer.
        public var sigma: [Float]
        /// Left singular vector per layer, (O).
        public var left: [[Float]]
        /// Right singular vector per layer, (C k k).
        public var right: [[Float]]
    }

    /// Random unit starting vectors for every layer of `stack`, from `generator`.
    public init(for stack: ConvStack, generator: inout SeededGenerator) {
        left = stack.weights.map { w in
            normalized((0..<w.shape[0]).map { _ in generator.nextGaussian() })
        }
    }

    /// `iterations` power iterations per layer (v = W^T u / |.|, u = W v / |.|, σ = u^T W v),
    /// starting from the kept vectors, which move on; returns the normalized stack.
    public mutating func normalize(_ stack: ConvStack, iterations: Int = 1) -> (stack: ConvStack, factors: Factors) {
        var out = stack
        var factors = Factors(sigma: [], left: [], right: [])
        for (i, w) in stack.weights.enumerated() {
            let o = w.shape[0], k = w.count / o
            var u = left[i], v = [Float](repeating: 0, count: k), wv = [Float](repeating: 0, count: o)
            for _ in 0..<max(1, iterations) {
                for j in 0..<k { v[j] = 0 }
                for r in 0..<o {
                    let ur = u[r], row = r * k
                    for j in 0..<k { v[j] += w.storage[row + j] * ur }
                }
                v = normalized(v)
                for r in 0..<o {
                    var acc: Float = 0
                    for j in 0..<k { acc += w.storage[r * k + j] * v[j] }
                    wv[r] = acc
                }
                u = normalized(wv)
            }
            let sigma = max(zip(u, wv).reduce(0) { $0 + $1.0 * $1.1 }, 1e-12)
            left[i] = u
            out.weights[i].storage = w.storage.map { $0 / sigma }
            factors.sigma.append(sigma)
            factors.left.append(u)
            factors.right.append(v)
        }
        return (out, factors)
    }

    /// Turns gradients with respect to the normalized weights G into gradients with respect to
    /// the raw weights: with σ = u^T W v and u, v held fixed, d(W / σ) gives
    /// dL/dW = (G - <G, W / σ> u v^T) / σ. Bias gradients pass unchanged.
    public static func backward(
        _ gradients: inout ConvStack.Gradients, normalized: ConvStack, factors: Factors
    ) {
        for i in gradients.weights.indices {
            let w = normalized.weights[i].storage, u = factors.left[i], v = factors.right[i]
            let k = v.count, sigma = factors.sigma[i]
            var inner: Float = 0
            for j in w.indices { inner += gradients.weights[i][j] * w[j] }
            for r in u.indices {
                let c = inner * u[r]
                for j in 0..<k {
                    gradients.weights[i][r * k + j] = (gradients.weights[i][r * k + j] - c * v[j]) / sigma
                }
            }
        }
    }
}

/// x / |x| (x unchanged when it is zero).
private func normalized(_ x: [Float]) -> [Float] {
    let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
    return norm > 0 ? x.map { $0 / norm } : x
}
