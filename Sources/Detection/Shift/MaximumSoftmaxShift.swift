import Foundation
import Tensors

/// `msp`: the maximum softmax probability of the backbone's ImageNet head (Hendrycks &
/// Gimpel 2017); score = -max_c softmax(z)_c, so an image the classifier is unsure about scores
/// higher. Nothing to fit.
public struct MaximumSoftmaxShift: StatelessShiftDetector {
    /// The name.
    public static let name = "msp"
    /// A few words.
    public static let summary = "maximum softmax probability of the ImageNet head"
    /// Reads the head.
    public static let needsHead = true

    /// The detector.
    public init() {}

    /// -max softmax.
    public func score(_ input: ShiftInput) -> Float {
        guard let logits = input.head?.logits else { return .nan }
        return Float(-(softmax(logits, temperature: 1).max() ?? 0))
    }
}

/// softmax(z / T), in Double.
func softmax(_ z: [Float], temperature t: Double) -> [Double] {
    let scaled = z.map { Double($0) / t }
    let top = scaled.max() ?? 0
    let e = scaled.map { Foundation.exp($0 - top) }
    let total = e.reduce(0, +)
    return e.map { $0 / total }
}
