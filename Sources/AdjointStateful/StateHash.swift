/// A 64-bit hash of a state's exact bits, printed as 16 hex digits.
///
/// Not cryptographic: it tells a faithful recomputation from a diverging one, where any changed bit
/// changes the hash with overwhelming probability.
public struct StateHash: Hashable, Sendable, CustomStringConvertible {
    public var value: UInt64

    public init(_ value: UInt64) { self.value = value }

    public var description: String {
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// Incremental hashing of raw bytes, eight at a time (a multiply–rotate mix in the style of
/// wyhash/xxhash; fast enough to hash every state of a long run).
public struct StateHasher {
    @usableFromInline var state: UInt64 = 0x9E37_79B9_7F4A_7C15

    public init() {}

    /// Mixes in one 64-bit word.
    @inlinable @inline(__always)
    public mutating func combine(_ word: UInt64) {
        state = mix(state ^ word)
    }

    /// Mixes in `count` bytes at `bytes`, then the count itself.
    public mutating func combine(bytes: UnsafeRawPointer, count: Int) {
        var i = 0
        var h = state
        while i + 8 <= count {
            h = Self.mix(h ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < count {
            tail |= UInt64(bytes.load(fromByteOffset: i, as: UInt8.self)) << shift
            shift += 8
            i += 1
        }
        h = Self.mix(h ^ tail)
        state = Self.mix(h ^ UInt64(count))
    }

    /// The hash of everything combined so far.
    public func finalize() -> StateHash {
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return StateHash(z ^ (z >> 31))
    }

    @usableFromInline @inline(__always)
    func mix(_ x: UInt64) -> UInt64 { Self.mix(x) }

    @usableFromInline @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        let m = x.multipliedFullWidth(by: 0xA076_1D64_78BD_642F)
        return m.high ^ m.low ^ ((x << 23) | (x >> 41))
    }
}
