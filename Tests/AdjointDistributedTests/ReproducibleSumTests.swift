@testable import AdjointDistributed
import AdjointTensor
import AdjointTestSupport
import Testing

/// The reproducible sum's arithmetic, in one process: exactness, independence of order and of the
/// split among ranks (simulated by combining partial bounds and totals as the all-reduce does),
/// rounding, non-finite values and refusals.
@Suite struct ReproducibleSumTests {
    /// `count` contributions of `length` elements with magnitudes spread over `2^±spread`.
    func contributions(_ count: Int, length: Int = 64, spread: Double, dtype: DType, seed: UInt64 = 3) throws -> [Tensor] {
        try (0..<count).map { index in
            let key = RandomKey(seed: seed).fold(in: UInt64(index))
            let exponent = try Tensor.uniform([length], key: key.fold(in: 1), low: -spread, high: spread)
            return try (Tensor.normal([length], key: key.fold(in: 2)) * Tensor(2.0).pow(exponent)).cast(to: dtype)
        }
    }

    /// What the all-reduce computes when the contributions are split into `parts` ranks.
    func splitSum(_ all: [Tensor], parts: Int) throws -> Tensor {
        let n = all.count, count = all[0].elementCount
        let shards = (0..<parts).map { Array(all[($0 * n / parts)..<(($0 + 1) * n / parts)]) }
        let bounds = shards.map { ReproducibleSum.bounds(of: $0, count: count) }
            .reduce([Int16](repeating: .min, count: count)) { zip($0, $1).map(ReproducibleSum.combineBounds) }
        var totals = [Int128](repeating: 0, count: count)
        for shard in shards.reversed() {
            var partial = [Int128](repeating: 0, count: count)
            ReproducibleSum.accumulate(shard, bounds: bounds, into: &partial)
            totals = zip(totals, partial).map { $0 &+ $1 }
        }
        return try ReproducibleSum.round(totals, bounds: bounds, dtype: all[0].dtype, shape: all[0].shape)
    }

    @Test("float32: the exact sum rounded once (float64 sums these exactly)")
    func float32Exact() throws {
        // 64 float32 values within 2^±10 need at most 24 + 20 + 6 bits: a float64 sum is exact.
        let all = try contributions(64, spread: 10, dtype: .float32)
        let got = try ReproducibleSum.sum(all).scalars(as: Float.self)
        let exact = (0..<64).map { i in all.reduce(0.0) { $0 + Double($1.scalars(as: Float.self)[i]) } }
        #expect(got == exact.map { Float($0) })
        // Plain float32 addition in order is not the same here (it rounds 63 times).
        let naive = (0..<64).map { i in all.reduce(Float(0)) { $0 + $1.scalars(as: Float.self)[i] } }
        #expect(got != naive)
    }

    @Test("float64: cancellation that ordinary addition gets wrong")
    func float64Cancellation() throws {
        let values: [[Double]] = [[1e16, 2.0], [1.0, -1.0], [-1e16, 0.5], [3.5, 1e-300]]
        let got = try ReproducibleSum.sum(values.map { Tensor($0) }).doubles
        #expect(got == [4.5, 1.5])
        #expect(((1e16 + 1.0) - 1e16) + 3.5 != 4.5)
    }

    @Test("independent of order and of the split among ranks", arguments: [DType.float32, .float64])
    func orderAndSplit(dtype: DType) throws {
        let all = try contributions(41, length: 257, spread: 60, dtype: dtype)
        let reference = try ReproducibleSum.sum(all)
        var generator = SplitMix(seed: 9)
        for _ in 0..<3 {
            #expect(bitwiseEqual(try ReproducibleSum.sum(all.shuffled(using: &generator)), reference))
        }
        for parts in [1, 2, 3, 4, 7, 41] {
            #expect(bitwiseEqual(try splitSum(all, parts: parts), reference), "split into \(parts)")
        }
    }

    @Test("rounds to nearest, ties to even, subnormals and overflow included")
    func rounding() throws {
        func sum32(_ values: [Float]) throws -> Float { try ReproducibleSum.sum(values.map { Tensor([$0]) }).scalars(as: Float.self)[0] }
        let halfUlp = Float(1).ulp / 2
        #expect(try sum32([1, halfUlp]) == 1)  // tie: even stays
        #expect(try sum32([1 + Float(1).ulp, halfUlp]) == 1 + 2 * Float(1).ulp)  // tie: odd rounds up
        #expect(try sum32([1, halfUlp, halfUlp / 1024]) == 1 + Float(1).ulp)  // just above the tie
        #expect(try sum32([.leastNonzeroMagnitude, .leastNonzeroMagnitude, -.leastNonzeroMagnitude]) == .leastNonzeroMagnitude)
        #expect(try sum32([.leastNormalMagnitude, -.leastNonzeroMagnitude]) == Float.leastNormalMagnitude.nextDown)
        #expect(try sum32([.greatestFiniteMagnitude, .greatestFiniteMagnitude]) == .infinity)
        #expect(try sum32([-.greatestFiniteMagnitude, -.greatestFiniteMagnitude, .greatestFiniteMagnitude]) == -.greatestFiniteMagnitude)
        #expect(try sum32([0, -0.0]) == 0)
        let d = try ReproducibleSum.sum([Tensor([Double.leastNonzeroMagnitude]), Tensor([Double.leastNonzeroMagnitude])]).doubles[0]
        #expect(d == 2 * .leastNonzeroMagnitude)
    }

    @Test("a contribution far below the element's largest is rounded to the grid, not lost in order")
    func belowTheWindow() throws {
        // 2^-60 is 2^-61 of the largest (2^1 bound): within the window, exact.
        #expect(try ReproducibleSum.sum([Tensor([1.0]), Tensor([0x1p-60]), Tensor([-1.0])]).doubles == [0x1p-60])
        // 2^-101 of the bound is below half a grid unit: dropped, whatever the order.
        let tiny = [Tensor([1.0]), Tensor([0x1p-102]), Tensor([-1.0])]
        #expect(try ReproducibleSum.sum(tiny).doubles == [0])
        #expect(try ReproducibleSum.sum(tiny.reversed()).doubles == [0])
    }

    @Test("NaN and infinities propagate as IEEE addition would")
    func nonFinite() throws {
        func sum(_ values: [Double]) throws -> Double { try ReproducibleSum.sum(values.map { Tensor([$0]) }).doubles[0] }
        #expect(try sum([1, .infinity]) == .infinity)
        #expect(try sum([-.infinity, 5, -.infinity]) == -.infinity)
        #expect(try sum([.infinity, -.infinity]).isNaN)
        #expect(try sum([.nan, 1]).isNaN)
        #expect(ReproducibleSum.combineBounds(ReproducibleSum.bound(of: Double.infinity), ReproducibleSum.bound(of: -Double.infinity))
            == ReproducibleSum.combineBounds(ReproducibleSum.bound(of: -Double.infinity), ReproducibleSum.bound(of: Double.infinity)))
    }

    @Test("a communicator's timeout must be positive and finite; refused before MPI starts")
    func badTimeouts() throws {
        for bad in [0.0, -1, .nan, .infinity] {
            #expect(throws: DistributedError.invalidArgument(field: "timeout", value: "\(bad)", limit: "must be positive and finite (seconds)")) {
                try Communicator.world(timeout: bad)
            }
        }
    }

    @Test("refuses what it cannot sum, naming it")
    func refusals() throws {
        #expect(throws: DistributedError.invalidContributions(detail: "no contributions to sum")) { try ReproducibleSum.sum([]) }
        #expect(throws: DistributedError.invalidContributions(detail: "the reproducible sum takes float32 or float64 tensors, got i64")) {
            try ReproducibleSum.sum([Tensor([Int64(1)])])
        }
        #expect(throws: DistributedError.invalidContributions(detail: "contribution 1 is f64[3], expected f64[2]")) {
            try ReproducibleSum.sum([Tensor([1.0, 2.0]), Tensor([1.0, 2.0, 3.0])])
        }
        #expect(throws: DistributedError.invalidContributions(detail: "contribution 1 is f32[2], expected f64[2]")) {
            try ReproducibleSum.sum([Tensor([1.0, 2.0]), Tensor([Float(1), 2])])
        }
    }
}

/// A seeded generator for shuffles.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
