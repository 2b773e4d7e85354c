import Metrics
import Models
import Tensors

/// `odin`: the maximum softmax probability at temperature T (Liang, Li & Srikant 2018), T
/// chosen by grid search as the method prescribes: the T whose scores best separate held-out
/// good images from shifted copies of them (ROC-AUC). With `train --odin-perturbation`, also
/// ODIN's input perturbation: the image moved by a magnitude epsilon along the sign of the
/// gradient of its top class's log-softmax (x - epsilon sign(-grad log S(x; T)), which raises
/// the top score of in-distribution images more than of others), epsilon searched with T.
public struct ODINShift: ShiftDetector {
    /// The name.
    public static let name = "odin"
    /// A few words.
    public static let summary = "temperature-scaled softmax of the ImageNet head"
    /// Reads the head.
    public static let needsHead = true
    /// The temperatures tried (the grid of Liang et al.).
    public static let temperatures: [Float] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]
    /// The perturbation magnitudes tried, in the network's input units ((v - 127) / 128 for a
    /// 0...255 value): 0.0005 ... 0.008 of the 0...1 pixel range, the span of Liang et al.'s
    /// grid (0 ... 0.004 on inputs divided by their standard deviation, about 0.2-0.3).
    public static let magnitudes: [Float] = [0.0005, 0.001, 0.002, 0.004, 0.008].map { $0 * 255 / 128 }
    /// The temperature the perturbation's gradient is taken at: Liang et al.'s 1000, where
    /// the gradient's direction hardly depends on T any more (softmax(z / T) is nearly uniform).
    public static let perturbationTemperature: Float = 1000

    /// The temperature.
    public let temperature: Float
    /// The perturbation magnitude (0: none), one of `magnitudes`.
    public let magnitude: Float

    /// A detector at temperature `temperature`, perturbing by `magnitude` (0: not at all).
    public init(temperature: Float, magnitude: Float = 0) {
        (self.temperature, self.magnitude) = (temperature, magnitude)
    }

    /// The logits of `input` (1, 3, H, W) moved by each of `magnitudes` along the sign of the
    /// gradient of log softmax(z / `perturbationTemperature`) of its top class.
    public static func perturbedLogits(
        backbone: EfficientNetLite0, gradient: Lite0InputGradient, input: Tensor
    ) -> [[Float]] {
        let t = Double(perturbationTemperature)
        let direction = gradient.inputGradient(input) { z in
            // d log S_top / dz = (onehot(top) - softmax(z / T)) / T
            let p = softmax(z, temperature: t)
            let top = p.indices.max { p[$0] < p[$1] } ?? 0
            return p.indices.map { Float(((($0 == top) ? 1 : 0) - p[$0]) / t) }
        }.gradient.storage.map { $0 > 0 ? Float(1) : $0 < 0 ? -1 : 0 }
        return magnitudes.map { epsilon in
            var moved = input
            for i in moved.storage.indices { moved.storage[i] += epsilon * direction[i] }
            return backbone.logits(moved).storage
        }
    }

    /// The grid's best temperature on the validation set, and, when every validation head has
    /// perturbed logits, the best of the magnitudes at `perturbationTemperature` if one beats
    /// it (the first of equals).
    public static func fit(_ data: ShiftFitData, generator: inout SeededGenerator) -> ODINShift? {
        guard !data.validation.isEmpty, !data.shiftedValidation.isEmpty else { return nil }
        var candidates = temperatures.map { ODINShift(temperature: $0) }
        let perturbed = (data.validation + data.shiftedValidation).allSatisfy {
            $0.head?.perturbedLogits.count == magnitudes.count
        }
        if perturbed {
            candidates += magnitudes.map { ODINShift(temperature: perturbationTemperature, magnitude: $0) }
        }
        var best: (auc: Double, detector: ODINShift)?
        for detector in candidates {
            let negatives = data.validation.map { Double(detector.score($0)) }
            let positives = data.shiftedValidation.map { Double(detector.score($0)) }
            guard
                let auc = areaUnderROC(
                    scores: negatives + positives, labels: negatives.map { _ in false } + positives.map { _ in true })
            else { continue }
            if best.map({ auc > $0.auc }) ?? true { best = (auc, detector) }
        }
        return best?.detector
    }

    /// Reads `shift.odin.temperature` and, if present, `shift.odin.magnitude`.
    public static func load(_ tensors: [String: Tensor], dimension d: Int) throws -> ODINShift {
        guard let t = tensors["shift.odin.temperature"], t.count == 1, t.storage[0] > 0 else {
            throw BundleError("shift.odin.temperature is missing or malformed")
        }
        guard let m = tensors["shift.odin.magnitude"] else { return ODINShift(temperature: t.storage[0]) }
        guard m.count == 1, magnitudes.contains(m.storage[0]) else {
            throw BundleError("shift.odin.magnitude is malformed (not one of the magnitudes this build tries)")
        }
        return ODINShift(temperature: t.storage[0], magnitude: m.storage[0])
    }

    /// The temperature, and the magnitude when there is one (older bundles' bytes unchanged).
    public var tensors: [String: Tensor] {
        var t = ["shift.odin.temperature": Tensor(shape: [1], storage: [temperature])]
        if magnitude > 0 { t["shift.odin.magnitude"] = Tensor(shape: [1], storage: [magnitude]) }
        return t
    }

    /// Whether it reads perturbed logits.
    public var readsPerturbedHead: Bool { magnitude > 0 }

    /// -max softmax(z / T), z the logits of the (perturbed) input; NaN without them.
    public func score(_ input: ShiftInput) -> Float {
        guard let head = input.head else { return .nan }
        var logits = head.logits
        if magnitude > 0 {
            guard let k = Self.magnitudes.firstIndex(of: magnitude), head.perturbedLogits.count == Self.magnitudes.count
            else { return .nan }
            logits = head.perturbedLogits[k]
        }
        return Float(-(softmax(logits, temperature: Double(temperature)).max() ?? 0))
    }
}
