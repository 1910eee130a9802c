/// SplitMix64 (Steele, Lea, Flood 2014): a seeded generator of one 64-bit word of state for the
/// policies' sampling (reproducible runs), and its output function as a hash (``mix(_:)``).
struct SplitMix64 {
    static let gamma: UInt64 = 0x9e37_79b9_7f4a_7c15
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// The output function: a bijective mix of all 64 bits.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
