/// Linear-interpolation quantile (numpy's default) of a non-empty sample.
public func quantile(_ values: [Float], _ q: Double) -> Float {
    precondition(!values.isEmpty)
    let sorted = values.sorted()
    let position = q * Double(sorted.count - 1)
    let lo = Int(position.rounded(.down)), hi = min(sorted.count - 1, lo + 1)
    let t = Float(position - Double(lo))
    return sorted[lo] * (1 - t) + sorted[hi] * t
}
