import Tensors

extension Array where Element == Float {
    /// Reproducible random test input.
    static func random(_ count: Int, in range: ClosedRange<Float> = -1...1, using g: inout SeededGenerator) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &g) }
    }
}
