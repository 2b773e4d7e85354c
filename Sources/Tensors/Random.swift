/// SplitMix64 (Steele, Lea & Flood 2014): a small, fast, seedable generator. Every random
/// choice in anomap takes one of these, so the same seed gives the same model bytes.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator from a seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Where item number `seen` (counting from 0) of a stream goes in a uniform random sample
    /// of at most `capacity` items (Vitter's Algorithm R): its own slot while there is room,
    /// then a random slot to replace, or nil to drop it. Draws only once the sample is full.
    public mutating func reservoirSlot(seen: Int, capacity: Int) -> Int? {
        guard seen >= capacity else { return seen }
        let j = Int(next() % UInt64(seen + 1))
        return j < capacity ? j : nil
    }

    /// A standard normal sample (Box-Muller), used for random projections.
    public mutating func nextGaussian() -> Float {
        let u1 = max(Double(next() >> 11) / Double(1 << 53), 1e-300), u2 = Double(next() >> 11) / Double(1 << 53)
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

#if canImport(Glibc)
    import Glibc
    @inline(__always) private func _log(_ x: Double) -> Double { log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { cos(x) }
#endif
