import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Forward mode")
struct ForwardModeTests {
    @Test("jvp gives f(x) and J·v")
    func jvpBasics() throws {
        let x = t([0.5, -1, 2]), v = t([1, 2, -1])
        let (y, dy) = try jvp(at: x, direction: v) { x in try x.sin() * x }
        #expect(isClose(y.doubles, x.doubles.map { Foundation.sin($0) * $0 }))
        let expected = zip(x.doubles, v.doubles).map { x, v in (Foundation.cos(x) * x + Foundation.sin(x)) * v }
        #expect(isClose(dy.doubles, expected))
        #expect(y.traceTags.isEmpty && dy.traceTags.isEmpty)
    }

    @Test("jvp over collections: several arguments and results; constant results get zero tangents")
    func collections() throws {
        let x = ["a": t([1, 2]), "b": t([3])]
        let v = ["a": t([1, 0]), "b": t([2])]
        let (y, dy) = try jvp(at: x, direction: v) { p in
            [try (p["a"]! * p["b"]!).sum(), try Tensor.ones([2]), try p["a"]!.exp()]
        }
        #expect(y.count == 3)
        // d/ds Σ a·b along (1,0),(2) = b·1 + (a₁+a₂)·2 = 3 + 6.
        #expect(dy[0].doubles == [9])
        #expect(dy[1].doubles == [0, 0])
        #expect(isClose(dy[2].doubles, [Foundation.exp(1), 0]))
    }

    @Test("a direction that does not fit the argument is a typed error")
    func directionErrors() throws {
        #expect(throws: AutodiffError.tangentMismatch(index: 0, expected: [2], expectedDType: .float64, got: [3], gotDType: .float64)) {
            try jvp(at: t([1, 2]), direction: t([1, 2, 3])) { $0 }
        }
        #expect(throws: AutodiffError.tangentMismatch(index: 0, expected: [2], expectedDType: .float64, got: [2], gotDType: .float32)) {
            try jvp(at: t([1, 2]), direction: t([1, 2]).cast(to: .float32)) { $0 }
        }
        #expect(throws: AutodiffError.tangentCountMismatch(expected: 2, got: 1)) {
            try jvp(at: [t([1]), t([2])], direction: [t([1])]) { $0 }
        }
    }

    @Test("linearize: a reusable linear map equal to jvp, without running f again")
    func linearizeMap() throws {
        let x = t([0.3, -0.7, 1.1, 2.0], [2, 2])
        let w = t([1, 2, -1, 0.5], [2, 2])
        func f(_ x: Tensor) throws -> Tensor { try (x.matmul(w).tanh() * x).logsumexp(axes: [1]) }
        var calls = 0
        let (y, differential) = try linearize(at: x) { x in calls += 1; return try f(x) }
        #expect(calls == 1)
        #expect(bitwiseEqual(y, try f(x)))
        for k in 0..<3 {
            let v = try Tensor.uniform([2, 2], key: RandomKey(seed: UInt64(k)), low: -1, high: 1)
            let expected = try jvp(at: x, direction: v, of: f).tangent
            #expect(isClose(try differential(v).doubles, expected.doubles, tolerance: 1e-14))
        }
        // Linear: D(2u + v) = 2·D(u) + D(v).
        let u = t([1, 0, 0, 1], [2, 2]), v = t([0, 1, 1, 0], [2, 2])
        #expect(isClose(try differential(u * 2 + v).doubles, try (differential(u) * 2 + differential(v)).doubles))
        #expect(calls == 1)
        #expect(throws: AutodiffError.tangentMismatch(index: 0, expected: [2, 2], expectedDType: .float64, got: [4], gotDType: .float64)) {
            try differential(t([1, 2, 3, 4]))
        }
        #expect(differential.graph.description.contains("linalg.matmul"))
        differential.release()
        #expect(throws: AutodiffError.tapeReleased) { try differential(u) }
    }

    @Test("the differential reads the values it saved, whatever is written in place afterwards")
    func linearizeAfterInPlaceWrite() throws {
        var saved = t([1, 2, 3])
        let (_, differential) = try linearize(at: t([0.5, 0.5, 0.5])) { x in try (x * saved).sum() }
        try saved.mul_(t([2]))   // the tape holds the storage too: this writes a copy
        #expect(saved.doubles == [2, 4, 6])
        #expect(try differential(t([1, 1, 1])).doubles == [6])
    }

    @Test("tangents live with their values: memory does not grow with the length of a forward-mode loop")
    func constantMemory() throws {
        // 512 KiB per value, three values per step: keeping every intermediate tangent of 200 steps
        // would need 300 MiB.
        let x = try Tensor.uniform([65_536], key: RandomKey(seed: 1))
        func peakGrowth(steps: Int) throws -> Int {
            StoragePool.shared.resetPeak()
            let before = StoragePool.shared.statistics.peakBytes
            _ = try jvp(at: x, direction: x) { x in
                var s = x
                for _ in 0..<steps { s = try (s * 0.5).sin() + x }
                return s
            }
            return StoragePool.shared.statistics.peakBytes - before
        }
        let short = try peakGrowth(steps: 5), long = try peakGrowth(steps: 200)
        // Other tests allocate concurrently (the pool is shared), so allow 96 MiB of noise; a design
        // that kept tangents for the whole computation would be off by 300 MiB.
        #expect(long <= short + 96 << 20, "peak grew by \(short) bytes over 5 steps but \(long) bytes over 200")
    }

    @Test("a tangent nobody reads is never computed; long pending chains are evaluated without deep recursion")
    func lazyTangents() throws {
        /// Counts the multiplications dispatched beneath it.
        final class MulCounter: InterpreterLevel {
            let levelID = InterpreterStack.makeLevelID()
            var count = 0
            func process(_ call: inout OpCall) throws { if call.op == .mul { count += 1 } }
        }
        let counter = MulCounter()
        let x = t([0.5, 1.5])
        let (_, dy) = try InterpreterStack.current.withLevel(counter) {
            try jvp(at: x, direction: t([1, 1])) { x in
                _ = try x.exp() * 3    // its tangent would be one more multiplication
                return try x.sin()
            }
        }
        #expect(isClose(dy.doubles, x.doubles.map(Foundation.cos)))
        // The primal `* 3` and the sine's JVP (t · cos x); not the unused product's tangent.
        #expect(counter.count == 2)

        // 100,000 chained operations: pending chains are cut every few operations.
        let (_, long) = try jvp(at: t([0.1]), direction: t([1])) { x in
            var s = x
            for _ in 0..<100_000 { s = try s * 0.999_99 }
            return s
        }
        #expect(isClose(long.doubles, [Foundation.pow(0.999_99, 100_000)], tolerance: 1e-9))
    }

    @Test("no perturbation confusion: d/dx [x · d/dy (x + y)] = 1 at several x, in every nesting of modes")
    func perturbationConfusion() throws {
        for value in [-2.0, 0.5, 3] {
            let x = t([value]), one = t([1])
            // forward over forward
            let ff = try jvp(at: x, direction: one) { x in try x * jvp(at: one, direction: one) { y in try x + y }.tangent }.tangent
            // forward over reverse
            let fr = try jvp(at: x, direction: one) { x in try x * gradient(at: one) { y in try (x + y).sum() } }.tangent
            // reverse over forward
            let rf = try gradient(at: x) { x in try (x * jvp(at: one, direction: one) { y in try x + y }.tangent).sum() }
            #expect(ff.doubles == [1] && fr.doubles == [1] && rf.doubles == [1], "at \(value): \(ff) \(fr) \(rf)")
        }
    }

    @Test("derivatives of functions that themselves call gradient or jvp")
    func nestedCalls() throws {
        let x = t([0.7, -0.4])
        // g(x) = Σ ∂/∂x Σ sin(x)·x² computed inside; outer gradient of that.
        func inner(_ x: Tensor) throws -> Tensor { try (x.sin() * x * x).sum() }
        let outer = try gradient(at: x) { x in try gradient(at: x, of: inner).sum() }
        // d/dx (cos x · x² + 2x sin x) = −sin x·x² + 4x cos x + 2 sin x
        let expected = x.doubles.map { -Foundation.sin($0) * $0 * $0 + 4 * $0 * Foundation.cos($0) + 2 * Foundation.sin($0) }
        #expect(isClose(outer.doubles, expected))
        // The same through a function that calls jvp with direction 1 in each coordinate.
        let viaJVP = try gradient(at: x) { x in try jvp(at: x, direction: t([1, 1]), of: { try $0.sin() * $0 * $0 }).tangent.sum() }
        #expect(isClose(viaJVP.doubles, expected))
    }

    @Test("third derivatives of scalar functions against closed forms, in every order of modes")
    func thirdDerivatives() throws {
        let cases: [(String, (Tensor) throws -> Tensor, (Double) -> Double)] = [
            ("sin", { try $0.sin() }, { -Foundation.cos($0) }),
            ("exp(2x)", { try ($0 * 2).exp() }, { 8 * Foundation.exp(2 * $0) }),
            ("x⁴", { try $0 * $0 * $0 * $0 }, { 24 * $0 }),
            ("log", { try $0.log() }, { 2 / ($0 * $0 * $0) }),
            ("tanh", { try $0.tanh() }, { x in let t = Foundation.tanh(x); return -2 * (1 - t * t) * (1 - 3 * t * t) }),
            ("sigmoid", { try $0.sigmoid() }, { x in let s = 1 / (1 + Foundation.exp(-x)); return s * (1 - s) * (1 - 6 * s + 6 * s * s) }),
        ]
        func r(_ f: @escaping (Tensor) throws -> Tensor) -> (Tensor) throws -> Tensor { { x in try gradient(at: x) { try f($0).sum() } } }
        func fw(_ f: @escaping (Tensor) throws -> Tensor) -> (Tensor) throws -> Tensor { { x in try jvp(at: x, direction: x.onesLike(), of: f).tangent } }
        for (name, f, third) in cases {
            for x0 in [0.3, 1.2] {
                let x = t([x0])
                let expected = third(x0)
                let orders: [(String, (Tensor) throws -> Tensor)] = [
                    ("rrr", r(r(r(f)))), ("fff", fw(fw(fw(f)))), ("frr", fw(r(r(f)))), ("rfr", r(fw(r(f)))), ("rrf", r(r(fw(f)))), ("ffr", fw(fw(r(f)))),
                ]
                for (order, d3) in orders {
                    let got = try d3(x).item()
                    #expect(isClose([got], [expected], tolerance: 1e-12), "\(name)''' at \(x0) via \(order): \(got) vs \(expected)")
                }
            }
        }
    }
}
