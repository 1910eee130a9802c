/// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
/// counter-based generator. The output is a pure function of a 128-bit counter and a 64-bit key, so
/// any element of a random tensor can be computed independently — the same numbers whatever the
/// thread count or evaluation order.
public enum Philox4x32 {
    public typealias Counter = (UInt32, UInt32, UInt32, UInt32)
    public typealias Key = (UInt32, UInt32)

    @usableFromInline static let m0: UInt32 = 0xD251_1F53
    @usableFromInline static let m1: UInt32 = 0xCD9E_8D57
    @usableFromInline static let w0: UInt32 = 0x9E37_79B9
    @usableFromInline static let w1: UInt32 = 0xBB67_AE85

    /// Ten rounds of Philox4x32 on `counter` under `key`.
    @inlinable
    public static func block(_ counter: Counter, _ key: Key) -> Counter {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 { k0 &+= w0; k1 &+= w1 }
            let p0 = UInt64(m0) * UInt64(c0)
            let p1 = UInt64(m1) * UInt64(c2)
            let hi0 = UInt32(truncatingIfNeeded: p0 >> 32), lo0 = UInt32(truncatingIfNeeded: p0)
            let hi1 = UInt32(truncatingIfNeeded: p1 >> 32), lo1 = UInt32(truncatingIfNeeded: p1)
            (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
        }
        return (c0, c1, c2, c3)
    }
}

/// An explicit random key: (seed, stream). Random tensors are drawn from a key and a counter
/// offset, never from hidden global state, so a replay draws the same numbers.
public struct RandomKey: Hashable, Codable, Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var stream: UInt64

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
    }

    /// A key for an independent sub-stream (JAX's `fold_in`): mixes `data` into the stream.
    public func fold(in data: UInt64) -> RandomKey {
        let r = Philox4x32.block((UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32),
                                  UInt32(truncatingIfNeeded: data), UInt32(truncatingIfNeeded: data >> 32)),
                                 (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
        return RandomKey(seed: seed, stream: UInt64(r.0) | UInt64(r.1) << 32)
    }

    /// `count` independent keys.
    public func split(_ count: Int) -> [RandomKey] { (0..<count).map { fold(in: UInt64($0)) } }

    /// The 128 random bits of block `index` (counter = index, stream).
    @inlinable
    public func bits(block index: UInt64) -> Philox4x32.Counter {
        Philox4x32.block((UInt32(truncatingIfNeeded: index), UInt32(truncatingIfNeeded: index >> 32),
                          UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
                         (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
    }

    public var description: String { "RandomKey(seed: \(seed), stream: \(stream))" }
}
