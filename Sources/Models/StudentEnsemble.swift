import Dispatch
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
        scale = zip(sum, squares).map { s, q in Float(max(q / n - (s / n) * (s / n), 0).squareRoot()) }.map {
            max($0, 1e-4)
        }
    }

    /// (1, D, h, w) features standardized channel by channel.
    public func apply(_ features: Tensor) -> Tensor {
        let p = features.height * features.width
        var out = features
        // Through the buffer, which vectorizes; through `storage`'s subscript it did not.
        out.storage.withUnsafeMutableBufferPointer { values in
            for c in 0..<mean.count {
                let m = mean[c], s = 1 / scale[c]
                for i in (c * p)..<((c + 1) * p) { values[i] = (values[i] - m) * s }
            }
        }
        return out
    }
}

/// One student: image (3, H, W) -> standardized teacher embedding (D, H / 8, W / 8).
///
/// The teacher embedding mixes stride-8 features with stride-16 ones whose receptive field
/// is far larger than a few 3x3 layers see, and a student that cannot see what the teacher
/// saw fails on normal images too. So the student has two scales: a trunk of three stride-2
/// 3x3 convolutions and one more 3x3 at stride 8 (receptive field 47 pixels), a branch that
/// continues at stride 16 (two 3x3, receptive field 111 pixels) and is upsampled back, and a
/// 1x1 head over both.
public struct StudentNetwork: Sendable {
    /// Stride-8 trunk.
    public var trunk: ConvStack
    /// Stride-16 branch on the trunk's output.
    public var branch: ConvStack
    /// 1x1 head over the concatenated trunk and upsampled branch.
    public var head: ConvStack

    /// Layer shapes for a width (channels of the widest layers) and output channels.
    public static func specs(
        width: Int, outChannels: Int
    ) -> (trunk: [LayerSpec], branch: [LayerSpec], head: [LayerSpec]) {
        (
            [
                LayerSpec(outChannels: width / 4, kernel: 3, stride: 2),
                LayerSpec(outChannels: width / 2, kernel: 3, stride: 2),
                LayerSpec(outChannels: width, kernel: 3, stride: 2),
                LayerSpec(outChannels: width, kernel: 3),
            ],
            [
                LayerSpec(outChannels: width, kernel: 3, stride: 2),
                LayerSpec(outChannels: width, kernel: 3),
            ],
            [LayerSpec(outChannels: outChannels, kernel: 1, relu: false)]
        )
    }

    /// A freshly initialized student.
    public init(width: Int, outChannels: Int, generator: inout SeededGenerator) {
        let s = StudentNetwork.specs(width: width, outChannels: outChannels)
        trunk = ConvStack(inChannels: 3, specs: s.trunk, generator: &generator)
        branch = ConvStack(inChannels: width, specs: s.branch, generator: &generator)
        head = ConvStack(inChannels: 2 * width, specs: s.head, generator: &generator)
    }

    /// A student read from named tensors (`prefix.trunk.i.weight`, ...), or nil when one is
    /// missing or misshapen.
    public init?(width: Int, outChannels: Int, tensors: [String: Tensor], prefix: String) {
        let s = StudentNetwork.specs(width: width, outChannels: outChannels)
        guard let t = ConvStack(inChannels: 3, specs: s.trunk, tensors: tensors, prefix: prefix + ".trunk"),
            let b = ConvStack(inChannels: width, specs: s.branch, tensors: tensors, prefix: prefix + ".branch"),
            let h = ConvStack(inChannels: 2 * width, specs: s.head, tensors: tensors, prefix: prefix + ".head")
        else { return nil }
        (trunk, branch, head) = (t, b, h)
    }

    /// Named tensors for a checkpoint.
    public func namedTensors(prefix: String) -> [String: Tensor] {
        trunk.namedTensors(prefix: prefix + ".trunk").merging(branch.namedTensors(prefix: prefix + ".branch")) { a, _ in
            a
        }
        .merging(head.namedTensors(prefix: prefix + ".head")) { a, _ in a }
    }

    /// Inference: (1, 3, H, W) -> (1, D, H / 8, W / 8), optionally on the calling thread alone.
    public func forward(_ x: Tensor, singleThreaded: Bool = false) -> Tensor {
        forward(ChannelsLastBatch(x), singleThreaded: singleThreaded).planar
    }

    /// Inference, channels-last: (1, H, W, 3) -> (1, H / 8, W / 8, D).
    public func forward(_ x: ChannelsLastBatch, singleThreaded: Bool = false) -> ChannelsLastBatch {
        // Channels-last from the input to the head's output: converting at each of the three
        // stacks was about 4% of `inspect`'s profile. The same arithmetic per element.
        let a = trunk.forward(x, singleThreaded: singleThreaded)
        let b = branch.forward(a, singleThreaded: singleThreaded)
        return head.forward(
            a.stacked(with: b.upsampled(height: a.height, width: a.width)), singleThreaded: singleThreaded)
    }

    /// The head's input: the trunk's map and the branch's, upsampled to it, stacked by channel.
    private static func headInput(_ a: Tensor, _ b: Tensor) -> Tensor {
        concatChannels([a, upsampleBilinear(b, height: a.height, width: a.width)])
    }

    /// dL/dW of the head's last layer (flattened) for the mean squared error between the
    /// student's output on `x` (1, 3, H, W) and `target` (1, D, H / 8, W / 8): the students'
    /// training loss (at the default hard share of 1).
    public func lastLayerGradient(_ x: Tensor, target: Tensor) -> [Float] {
        let a = trunk.forward(x)
        let b = branch.forward(a)
        let (y, tape) = head.trainingForward(
            Self.headInput(a, b))
        return head.lastLayerWeightGradient(meanSquaredError(y, target).gradient, tape: tape)
    }

    /// What the training forward keeps.
    public struct Tape: Sendable {
        var trunk: ConvStack.Tape, branch: ConvStack.Tape, head: ConvStack.Tape
        var trunkShape: [Int], branchShape: [Int]
    }

    /// Training forward of one image.
    public func trainingForward(_ x: Tensor) -> (Tensor, Tape) {
        let (a, trunkTape) = trunk.trainingForward(x)
        let (b, branchTape) = branch.trainingForward(a)
        let (y, headTape) = head.trainingForward(
            Self.headInput(a, b))
        return (
            y, Tape(trunk: trunkTape, branch: branchTape, head: headTape, trunkShape: a.shape, branchShape: b.shape)
        )
    }

    /// Gradients of all three parts.
    public struct Gradients: Sendable {
        /// Per part.
        public var trunk: ConvStack.Gradients, branch: ConvStack.Gradients, head: ConvStack.Gradients

        /// Zero gradients for a student.
        public init(for s: StudentNetwork) {
            trunk = .init(for: s.trunk)
            branch = .init(for: s.branch)
            head = .init(for: s.head)
        }

        /// Sets every gradient to zero.
        public mutating func zero() {
            trunk.zero()
            branch.zero()
            head.zero()
        }
    }

    /// Backward of `trainingForward` (accumulates parameter gradients; the input needs none).
    public func backward(_ dy: Tensor, tape: Tape, gradients: inout Gradients) {
        guard let dc = head.backward(dy, tape: tape.head, gradients: &gradients.head, needsInputGradient: true) else {
            return
        }
        // Split the concatenation's gradient: trunk channels first, then the upsampled branch.
        let trunkCount = tape.trunkShape.reduce(1, *)
        var da = Tensor(shape: tape.trunkShape, storage: Array(dc.storage[0..<trunkCount]))
        let dUp = Tensor(
            shape: [1, tape.branchShape[1], tape.trunkShape[2], tape.trunkShape[3]],
            storage: Array(dc.storage[trunkCount...]))
        let db = upsampleBilinearBackward(dUp, height: tape.branchShape[2], width: tape.branchShape[3])
        if let fromBranch = branch.backward(
            db, tape: tape.branch, gradients: &gradients.branch, needsInputGradient: true)
        {
            for i in 0..<da.count { da.storage[i] += fromBranch.storage[i] }
        }
        _ = trunk.backward(da, tape: tape.trunk, gradients: &gradients.trunk, needsInputGradient: false)
    }
}

extension AdamW {
    /// Updates every parameter of a student.
    public mutating func update(_ s: inout StudentNetwork, gradients: StudentNetwork.Gradients, scale: Float) {
        update(&s.trunk, gradients: gradients.trunk, scale: scale, slot: 0)
        update(&s.branch, gradients: gradients.branch, scale: scale, slot: 1)
        update(&s.head, gradients: gradients.head, scale: scale, slot: 2)
    }
}

/// Students that learn to imitate the frozen teacher on normal images only, so they fail
/// where an image is abnormal (Bergmann et al., "Uninformed Students", CVPR 2020; the
/// student-teacher half of EfficientAD, Batzner et al., WACV 2024).
public struct StudentEnsemble: Sendable {
    /// The students.
    public var students: [StudentNetwork]
    /// Teacher standardization the students regress.
    public let standardization: FeatureStandardization

    /// Wraps trained students.
    public init(students: [StudentNetwork], standardization: FeatureStandardization) {
        self.students = students
        self.standardization = standardization
    }

    /// Both maps for one image: the mean over students of the mean squared discrepancy to the
    /// teacher per patch, and the predictive variance across students per patch (averaged over
    /// channels), each (h, w).
    ///
    /// input: (1, 3, H, W) normalized image; teacher: (1, D, H / 8, W / 8) raw embeddings.
    public func maps(input: Tensor, teacher: Tensor) -> (discrepancy: [Float], variance: [Float]) {
        let x = ChannelsLastBatch(input)
        // Students side by side, one per core (measured faster than splitting each layer).
        var outputs = [Tensor](repeating: Tensor(shape: [0]), count: students.count)
        if students.count > 1 && computeThreads > 1 {
            outputs.withUnsafeMutableBufferPointer { buffer in
                let out = UnsafeSendable(buffer.baseAddress)
                DispatchQueue.concurrentPerform(iterations: students.count) { k in
                    out.pointer?[k] = Self.pixelRows(students[k].forward(x, singleThreaded: true))
                }
            }
        } else {
            outputs = students.map { Self.pixelRows($0.forward(x)) }
        }
        return maps(outputs: outputs, teacher: teacher)
    }

    /// A student's channels-last output (1, h, w, D) as the (h * w, D) matrix `maps` reads.
    public static func pixelRows(_ output: ChannelsLastBatch) -> Tensor {
        Tensor(shape: [output.height * output.width, output.channels], storage: output.values)
    }

    /// The L2 norm of the gradient of the ensemble's loss on one image (the students' mean
    /// squared error to the standardized teacher, averaged over students) with respect to every
    /// student's last layer: (1 / K) sqrt(sum over students of |dL_k / dW_k|^2). A student that
    /// does not know what to do with an input gets a large gradient.
    ///
    /// input: (1, 3, H, W) normalized image; teacher: (1, D, H / 8, W / 8) raw embeddings.
    public func lastLayerGradientNorm(input: Tensor, teacher: Tensor) -> Float {
        let target = standardization.apply(teacher)
        let squares = students.reduce(Float(0)) { sum, student in
            sum + student.lastLayerGradient(input, target: target).reduce(0) { $0 + $1 * $1 }
        }
        return squares.squareRoot() / Float(max(1, students.count))
    }

    /// Both maps from the students' outputs, one (h * w, D) matrix of pixel rows per student
    /// (`pixelRows`): channels-last, as the students compute them, so that no output is
    /// reordered; the teacher's standardized target is, once.
    public func maps(outputs: [Tensor], teacher: Tensor) -> (discrepancy: [Float], variance: [Float]) {
        let standardized = standardization.apply(teacher)
        let d = standardized.channels, p = standardized.height * standardized.width
        precondition(outputs.allSatisfy { $0.shape == [p, d] }, "student outputs must be (h * w, D) pixel rows")
        let target = channelsLast(standardized)
        var discrepancy = [Float](repeating: 0, count: p), variance = [Float](repeating: 0, count: p)
        // Blocks of sixteen pixels are independent: split between the cores (this runs after the
        // students' side-by-side work, with the other core idle).
        let blocks = (p + 15) / 16, workers = max(1, min(computeThreads, blocks))
        withStorage(of: outputs[...]) { rows in
            target.withUnsafeBufferPointer { goal in
                discrepancy.withUnsafeMutableBufferPointer { dOut in
                    variance.withUnsafeMutableBufferPointer { vOut in
                        let goal = UnsafeSendable(goal.baseAddress), rows = rows.map { UnsafeSendable($0) }
                        let (dOut, vOut) = (UnsafeSendable(dOut.baseAddress), UnsafeSendable(vOut.baseAddress))
                        DispatchQueue.concurrentPerform(iterations: workers) { w in
                            guard let g = goal.pointer, let dm = dOut.pointer, let vm = vOut.pointer else { return }
                            Self.mapBlocks(
                                (blocks * w / workers)..<(blocks * (w + 1) / workers), pixels: p, channels: d,
                                rows: rows.map(\.pointer), target: g, into: (dm, vm))
                        }
                    }
                }
            }
        }
        return (discrepancy, variance)
    }

    /// `body` with the start of every tensor's storage, each valid for the call.
    private func withStorage<R>(
        of tensors: ArraySlice<Tensor>, _ starts: [UnsafePointer<Float>] = [],
        _ body: ([UnsafePointer<Float>]) -> R
    ) -> R {
        guard let first = tensors.first else { return body(starts) }
        return first.storage.withUnsafeBufferPointer { buffer in
            withStorage(of: tensors.dropFirst(), starts + (buffer.baseAddress.map { [$0] } ?? []), body)
        }
    }

    /// `maps` for pixel blocks `blocks` (sixteen pixels each) of `pixels`: the students' (P, D)
    /// pixel rows, the standardized target's, both maps written at the blocks' pixels.
    private static func mapBlocks(
        _ blocks: Range<Int>, pixels p: Int, channels d: Int, rows: [UnsafePointer<Float>],
        target goal: UnsafePointer<Float>,
        into maps: (discrepancy: UnsafeMutablePointer<Float>, variance: UnsafeMutablePointer<Float>)
    ) {
        let k = Float(rows.count), scale = 1 / Float(d)
        typealias V = SIMD16<Float>
        let lanes = V.scalarCount
        // Per pixel, each student's row added into per-channel sums (vectors over the channels),
        // and each channel's two terms (its error and its spread over the students) written to
        // the pixel's lane of (d, 16) blocks. Then sixteen pixels at a time sum their terms over
        // the channels, one lane each: every value is the same chain of operations as a loop over
        // channels, then students, would make. Summed one pixel at a time, the channels made
        // a chain of dependent adds and scalar divisions (0.45 ms an image on one core, after
        // the students' side-by-side work).
        let sums = UnsafeMutablePointer<Float>.allocate(capacity: 3 * max(d, 1))
        let terms = UnsafeMutablePointer<Float>.allocate(capacity: 2 * lanes * max(d, 1))
        defer {
            sums.deallocate()
            terms.deallocate()
        }
        terms.initialize(repeating: 0, count: 2 * lanes * max(d, 1))
        let (mean, squares, error) = (sums, sums + d, sums + 2 * d)
        let (errorTerms, spreadTerms) = (terms, terms + lanes * d)
        // Dividing by a power of two (two students) is multiplying by its exact inverse: the
        // same rounded quotient, without the vector division's latency.
        let kv = V(repeating: k), inverse = V(repeating: 1 / k), exact = k.significand == 1
        func quotient(_ v: V) -> V { exact ? v * inverse : v / kv }
        for block in blocks {
            let first = block * lanes, count = min(lanes, p - first)
            for lane in 0..<count {
                let t = (first + lane) * d, g = goal + t
                sums.update(repeating: 0, count: 3 * d)
                for row in rows {
                    let r = row + t
                    // Sixteen channels a vector: lane by lane the same operations as the tail.
                    var c = 0
                    while c + lanes <= d {
                        let v = load(r + c, as: V.self), e = v - load(g + c, as: V.self)
                        store(load(mean + c, as: V.self) + v, mean + c)
                        store(load(squares + c, as: V.self) + v * v, squares + c)
                        store(load(error + c, as: V.self) + e * e, error + c)
                        c += lanes
                    }
                    while c < d {
                        let v = r[c], e = v - g[c]
                        mean[c] += v
                        squares[c] += v * v
                        error[c] += e * e
                        c += 1
                    }
                }
                // max(x, 0) as `Swift.max` has it: 0 where 0 >= x.
                var c = 0
                while c + lanes <= d {
                    let m = quotient(load(mean + c, as: V.self))
                    let e = quotient(load(error + c, as: V.self))
                    let spread = quotient(load(squares + c, as: V.self)) - m * m
                    let kept = spread.replacing(with: 0, where: spread .<= 0)
                    for j in 0..<lanes {
                        errorTerms[(c + j) * lanes + lane] = e[j]
                        spreadTerms[(c + j) * lanes + lane] = kept[j]
                    }
                    c += lanes
                }
                while c < d {
                    let m = mean[c] / k
                    errorTerms[c * lanes + lane] = error[c] / k
                    spreadTerms[c * lanes + lane] = max(squares[c] / k - m * m, 0)
                    c += 1
                }
            }
            var errors = V(), spreads = V()
            for c in 0..<d {
                errors += load(errorTerms + c * lanes, as: V.self)
                spreads += load(spreadTerms + c * lanes, as: V.self)
            }
            for lane in 0..<count {
                maps.discrepancy[first + lane] = errors[lane] * scale
                maps.variance[first + lane] = spreads[lane] * scale
            }
        }
    }
}
