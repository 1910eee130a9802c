import AdjointTensor
import Foundation

/// Seeded synthetic workloads: Zipf popularity that drifts, scans, loops, and mixtures of them.
///
/// Request `i` is a pure function of (key, i) — Philox block `i` supplies its random bits — so a
/// workload is reproducible from its key and can be regenerated from any position.
public struct SyntheticWorkload: RequestSource {
    public indirect enum Pattern: Sendable, CustomStringConvertible {
        /// Popularity ∝ 1/rank^alpha over `objects` ids; every `driftEvery` requests (0: never) the
        /// ranks shift by `driftStep`, so yesterday's popular objects cool down.
        case zipf(objects: Int, alpha: Double, driftEvery: Int = 0, driftStep: Int = 0)
        /// Ids never seen before, one after another (one-hit wonders).
        case scan
        /// A loop over `objects` ids, again and again (the position follows the request index, so
        /// inside a mixture each id still recurs every `objects` requests).
        case loop(objects: Int)
        /// Each request from one component, chosen with the given weights.
        case mixture([(Pattern, Double)])

        public var description: String {
            switch self {
            case let .zipf(n, a, every, step): return "zipf(\(n), α=\(a)\(every > 0 ? ", drift \(step) every \(every)" : ""))"
            case .scan: return "scan"
            case let .loop(n): return "loop(\(n))"
            case let .mixture(parts): return "mixture(" + parts.map { "\($0.0) ×\($0.1)" }.joined(separator: ", ") + ")"
            }
        }
    }

    /// Object sizes: all 1, or fixed per object, drawn from [min, max] by a hash of its id.
    public enum Sizes: Sendable { case unit, perObject(min: Int64, max: Int64) }

    public let pattern: Pattern
    public let requests: Int
    public let key: RandomKey
    public let sizes: Sizes
    public var name: String { "synthetic \(pattern) × \(requests)" }
    private var index = 0
    private let sampler: Sampler

    /// - Throws: `TensorError.invalidArgument` for empty or negative sizes, non-positive weights.
    public init(_ pattern: Pattern, requests: Int, key: RandomKey, sizes: Sizes = .unit) throws {
        guard requests >= 0 else { throw TensorError.invalidArgument(op: "SyntheticWorkload", detail: "requests \(requests) < 0") }
        if case let .perObject(lo, hi) = sizes, !(1 <= lo && lo <= hi) {
            throw TensorError.invalidArgument(op: "SyntheticWorkload", detail: "sizes [\(lo), \(hi)] must satisfy 1 ≤ min ≤ max")
        }
        self.pattern = pattern
        self.requests = requests
        self.key = key
        self.sizes = sizes
        var space: UInt64 = 0
        sampler = try Sampler(pattern, space: &space)
    }

    /// The built-in workload of `adjoint cache compare`: drifting Zipf over 20,000 objects mixed
    /// with scans and a loop — recency, frequency and scan resistance all matter.
    public static func standard(requests: Int = 400_000, key: RandomKey = RandomKey(seed: 2026)) throws -> SyntheticWorkload {
        try SyntheticWorkload(.mixture([(.zipf(objects: 20_000, alpha: 0.9, driftEvery: 20_000, driftStep: 500), 0.75),
                                        (.scan, 0.15), (.loop(objects: 3_000), 0.10)]),
                              requests: requests, key: key)
    }

    public mutating func next() throws -> CacheRequest? {
        guard index < requests else { return nil }
        let bits = key.bits(block: UInt64(index))
        let id = sampler.draw(index: index, bits: (bits.0, bits.1, bits.2, bits.3))
        let size: Int64
        switch sizes {
        case .unit: size = 1
        case let .perObject(lo, hi):
            var h = id &* 0x9E37_79B9_7F4A_7C15
            h ^= h >> 31
            size = lo + Int64(h % UInt64(hi - lo + 1))
        }
        defer { index += 1 }
        return CacheRequest(time: Int64(index), id: id, size: size)
    }

    /// Draws ids for a pattern; components get disjoint id spaces (the top 8 bits).
    // @unchecked Sendable: both properties are constants set at construction.
    final class Sampler: @unchecked Sendable {
        enum Kind { case zipf(cdf: [Double], every: Int, step: Int), scan, loop(Int), mixture([(Sampler, Double)]) }
        let kind: Kind
        let base: UInt64

        init(_ pattern: Pattern, space: inout UInt64) throws {
            base = space << 56
            space += 1
            switch pattern {
            case let .zipf(n, alpha, every, step):
                guard n >= 1, alpha >= 0, alpha.isFinite, every >= 0 else {
                    throw TensorError.invalidArgument(op: "SyntheticWorkload", detail: "zipf needs objects ≥ 1, α ≥ 0, driftEvery ≥ 0")
                }
                var cdf = [Double](repeating: 0, count: n)
                var total = 0.0
                for r in 0..<n { total += 1 / Foundation.pow(Double(r + 1), alpha); cdf[r] = total }
                for r in 0..<n { cdf[r] /= total }
                kind = .zipf(cdf: cdf, every: every, step: step)
            case .scan: kind = .scan
            case let .loop(n):
                guard n >= 1 else { throw TensorError.invalidArgument(op: "SyntheticWorkload", detail: "loop needs objects ≥ 1") }
                kind = .loop(n)
            case let .mixture(parts):
                guard !parts.isEmpty, parts.allSatisfy({ $0.1 > 0 && $0.1.isFinite }) else {
                    throw TensorError.invalidArgument(op: "SyntheticWorkload", detail: "a mixture needs components with positive weights")
                }
                let total = parts.reduce(0) { $0 + $1.1 }
                var cumulative = 0.0
                kind = .mixture(try parts.map { part in
                    cumulative += part.1 / total
                    return (try Sampler(part.0, space: &space), cumulative)
                })
            }
        }

        /// The id of request `index` (scans number their own requests so ids never repeat).
        func draw(index: Int, bits: (UInt32, UInt32, UInt32, UInt32)) -> UInt64 {
            let u = Double(UInt64(bits.0) << 21 | UInt64(bits.1 >> 11)) * 0x1p-53
            switch kind {
            case let .zipf(cdf, every, step):
                var lo = 0, hi = cdf.count - 1
                while lo < hi { let mid = (lo + hi) / 2; if cdf[mid] < u { lo = mid + 1 } else { hi = mid } }
                let shift = every > 0 ? (index / every) * step : 0
                return base | UInt64((lo + shift) % cdf.count)
            case .scan:
                return base | UInt64(index)
            case let .loop(n):
                return base | UInt64(index % n)
            case let .mixture(parts):
                let v = Double(bits.2) * 0x1p-32
                let part = parts.first { v < $0.1 }?.0 ?? parts[parts.count - 1].0
                return part.draw(index: index, bits: (bits.3, bits.2 ^ bits.0, bits.1, bits.0))
            }
        }
    }
}

