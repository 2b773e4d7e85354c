import Metrics
import Tensors

/// `odin`: the maximum softmax probability at temperature T (Liang, Li & Srikant 2018), T
/// chosen by grid search as the method prescribes: the T whose scores best separate held-out
/// good images from shifted copies of them (ROC-AUC). ODIN's second part, a small input
/// perturbation along the gradient of the softmax score, needs the gradient through the
/// whole backbone, which anomap does not compute: it is left out.
public struct ODINShift: ShiftDetector {
    /// The name.
    public static let name = "odin"
    /// A few words.
    public static let summary = "temperature-scaled softmax of the ImageNet head"
    /// Reads the head.
    public static let needsHead = true
    /// The temperatures tried (the grid of Liang et al.).
    public static let temperatures: [Float] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]

    /// The temperature.
    public let temperature: Float

    /// A detector at temperature `temperature`.
    public init(temperature: Float) { self.temperature = temperature }

    /// The grid's best temperature on the validation set (the first of equals).
    public static func fit(_ data: ShiftFitData, generator: inout SeededGenerator) -> ODINShift? {
        guard !data.validation.isEmpty, !data.shiftedValidation.isEmpty else { return nil }
        var best: (auc: Double, temperature: Float)?
        for t in temperatures {
            let detector = ODINShift(temperature: t)
            let negatives = data.validation.map { Double(detector.score($0)) }
            let positives = data.shiftedValidation.map { Double(detector.score($0)) }
            guard
                let auc = areaUnderROC(
                    scores: negatives + positives, labels: negatives.map { _ in false } + positives.map { _ in true })
            else { continue }
            if best.map({ auc > $0.auc }) ?? true { best = (auc, t) }
        }
        return best.map { ODINShift(temperature: $0.temperature) }
    }

    /// Reads `shift.odin.temperature`.
    public static func load(_ tensors: [String: Tensor], dimension d: Int) throws -> ODINShift {
        guard let t = tensors["shift.odin.temperature"], t.count == 1, t.storage[0] > 0 else {
            throw BundleError("shift.odin.temperature is missing or malformed")
        }
        return ODINShift(temperature: t.storage[0])
    }

    /// The temperature.
    public var tensors: [String: Tensor] { ["shift.odin.temperature": Tensor(shape: [1], storage: [temperature])] }

    /// -max softmax(z / T).
    public func score(_ input: ShiftInput) -> Float {
        guard let logits = input.head?.logits else { return .nan }
        return Float(-(softmax(logits, temperature: Double(temperature)).max() ?? 0))
    }
}
