import Adjoint
@testable import AdjointAutodiff
import AdjointTestSupport
import Foundation
import Testing

/// A level that records nothing. Visible during a backward pass, it makes the tape run the
/// tensor rules instead of the rank-0 numbers (``InterpreterStack/runsUnobserved`` is false).
private final class PassiveLevel: InterpreterLevel {
    let levelID = InterpreterStack.makeLevelID()
    var calls = 0
    func process(_ call: inout OpCall) throws { calls += 1 }
}

/// Gradients of `f` at `inputs`, once as the tape runs them alone and once with a passive level
/// watching (tensor rules); also returns how many operations the level saw during the backward
/// pass in the first run (none: nothing was dispatched).
private func bothWays(_ inputs: [Tensor], _ f: @escaping ([Tensor]) throws -> Tensor) throws -> (fast: [Tensor], tensorRules: [Tensor]) {
    let fast = try gradient(at: inputs) { try f($0) }
    let level = PassiveLevel()
    let slow = try InterpreterStack.current.withLevel(level) { try gradient(at: inputs) { try f($0) } }
    #expect(level.calls > 0)
    return (fast, slow)
}

/// Bit patterns of a float64 or float32 tensor's elements.
private func bits(_ t: Tensor) -> [UInt64] {
    t.dtype == .float32 ? t.scalars(as: Float.self).map { UInt64($0.bitPattern) } : t.scalars(as: Double.self).map(\.bitPattern)
}

@Suite("Rank-0 backward")
struct ScalarBackwardTests {
    /// Operators with a rank-0 rule, fan-out, `x · x`, constants, a chain long enough to
    /// round differently if any step did.
    static func scalarProgram(_ v: [Tensor]) throws -> Tensor {
        let (x, y) = (v[0], v[1])
        var z = try x * y + x / y - y.neg() - (y - 0.25)
        z = try z * x.exp() + (x * 0.1).expm1() + y.abs().log() + (x * x).log1p()
        z = try z + (y * y + 1).sqrt() * x.tanh() + y.sigmoid() / (x * x + 1)
        for _ in 0..<50 { z = try z * 0.97 + x * 0.01 - y / 7 }
        return try z * z
    }

    @Test("the rank-0 numbers give the tensor rules' gradients bit for bit", arguments: [DType.float64, .float32])
    func matchesTensorRules(_ dtype: DType) throws {
        let inputs = [try Tensor(0.7, dtype: dtype), try Tensor(-1.3, dtype: dtype)]
        let (fast, slow) = try bothWays(inputs, Self.scalarProgram)
        #expect(fast.map(\.dtype) == [dtype, dtype] && fast.allSatisfy { $0.shape == [] })
        #expect(fast.map(bits) == slow.map(bits))
    }

    @Test("each rank-0 rule gives its tensor rule's result bit for bit over random values",
          arguments: [DType.float64, .float32])
    func eachRuleMatches(_ dtype: DType) throws {
        typealias Program = ([Tensor]) throws -> Tensor
        let programs: [(String, Program)] = [
            ("add", { v in try v[0] + v[1] }), ("sub", { v in try v[0] - v[1] }), ("mul", { v in try v[0] * v[1] }),
            ("div", { v in try v[0] / v[1] }), ("x·x", { v in try v[0] * v[0] }), ("neg", { v in try v[0].neg() }),
            ("exp", { v in try v[0].exp() }), ("expm1", { v in try v[0].expm1() }), ("log", { v in try v[0].abs().log() }),
            ("log1p", { v in try v[0].abs().log1p() }), ("sqrt", { v in try v[0].abs().sqrt() }),
            ("tanh", { v in try v[0].tanh() }), ("sigmoid", { v in try v[0].sigmoid() }),
            ("abs", { v in try v[1].abs() }), ("rsqrt", { v in try v[0].rsqrt() }), ("sin", { v in try v[0].sin() }),
            ("cos", { v in try v[1].cos() }), ("relu", { v in try (v[0] - 1.5).relu() }), ("softplus", { v in try v[1].softplus() }),
            ("pow", { v in try v[0].pow(v[1]) }), ("pow of 0", { v in try (v[0] * 0).pow(v[0]) }),
            ("maximum", { v in try v[0].maximum(v[1].neg()) }), ("minimum", { v in try v[0].minimum(v[1].neg()) }),
            ("tie", { v in try v[0].maximum(v[0] * 1) }),
        ]
        let draws = try Tensor.uniform([3, 64], key: RandomKey(seed: 11), low: 0.1, high: 3).doubles
        for (name, program) in programs {
            for i in 0..<64 {
                let inputs = [try Tensor(draws[i], dtype: dtype), try Tensor(-draws[64 + i], dtype: dtype)]
                let scale = try Tensor(draws[128 + i], dtype: dtype)   // a cotangent other than 1
                let (fast, slow) = try bothWays(inputs) { v in try program(v) * scale }
                #expect(fast.map(bits) == slow.map(bits), "\(name) at \(draws[i]), \(-draws[64 + i])")
            }
        }
    }

    @Test("numbers and tensors meet: reductions into scalars, scalars broadcast into tensors")
    func mixedWithTensors() throws {
        let v = t([0.5, -1, 2]), x = Tensor(1.5)
        let (fast, slow) = try bothWays([v, x]) { a in
            let s = try a[0].sum() * a[1]                 // tensor rule → number → tensor rule
            let w = try (a[0] * s).exp().mean()           // the scalar s broadcast into a vector
            return try w * a[1] + s * s
        }
        #expect(fast.map(bits) == slow.map(bits))
        // And the values are right (central differences).
        let check = try gradcheck({ a in
            let s = try a[0].sum() * a[1]
            return try (a[0] * s).exp().mean() * a[1] + s * s
        }, at: [v, x])
        #expect(check.passed, "\(check)")
    }

    @Test("a second-order derivative of a scalar program sees every operation of the inner backward")
    func higherOrder() throws {
        // d/dx x³ = 3x², d²/dx² = 6x: the inner backward runs under the outer tape, so it must take
        // the tensor rules, which the outer tape records (numbers would leave it a zero).
        let x = Tensor(1.25)
        #expect(try gradient(at: x) { x in try gradient(at: x) { x in try x * x * x } }.item() == 6 * 1.25)
        let hessianVector = try hvp(at: Tensor(0.5), direction: Tensor(1.0)) { x in try (x * x).exp() }
        // d²/dx² exp(x²) = (2 + 4x²) exp(x²) = 3 e^0.25 at x = 0.5
        #expect(abs(try hessianVector.item() - 3 * Foundation.exp(0.25)) < 1e-12)
    }

    @Test("a rank-0 backward makes no tensors but the gradients")
    func noIntermediateTensors() throws {
        let inputs = [Tensor(0.5), Tensor(0.999)]
        let f: ([Tensor]) throws -> Tensor = { v in
            var z = v[0]
            for _ in 0..<200 { z = try z * v[1] + v[0] }
            return z
        }
        func peakBytes(_ body: () throws -> Void) throws -> Int {
            let account = MemoryAccount()
            try account.track(body)
            return account.peakBytes
        }
        let oneScalar = try peakBytes { _ = Tensor(1.0) }
        let (_, pullback) = try vjp(at: inputs) { try f($0) }
        let seed = Tensor(1.0)
        let numbers = try peakBytes { _ = try pullback(seed) }
        let (_, observed) = try vjp(at: inputs) { try f($0) }
        let tensorRules = try peakBytes {
            try InterpreterStack.current.withLevel(PassiveLevel()) { _ = try observed(seed) }
        }
        #expect(numbers == 2 * oneScalar, "only the two gradients are tensors")
        #expect(tensorRules > numbers)
    }

    @Test("writing a saved scalar in place goes to a copy: the rank-0 rule reads the saved value")
    func inPlaceOnSavedScalar() throws {
        var a = Tensor(2.0)
        let (_, pullback) = try vjp(at: Tensor(3.0)) { x in try x * a }
        try a.add_(Tensor(1.0))
        #expect(try pullback(Tensor(1.0)).doubles == [2])
        #expect(a.doubles == [3])
    }

    @Test("a finished tape leaves its lists to the next tape on the thread")
    func tapeMemoryReuse() throws {
        let f: ([Tensor]) throws -> Tensor = { v in
            var z = v[0]
            for _ in 0..<1_000 { z = try z * v[1] + v[0] }
            return z
        }
        let inputs = [Tensor(0.5), Tensor(0.999)]
        let first = try gradient(at: inputs, of: f)
        let memory = TapeMemory.current
        #expect(memory.nodes.isEmpty && memory.nodes.capacity >= 2_000 && memory.inputs.capacity >= 4_000)
        #expect(memory.cotangents != nil)
        let kept = memory.nodes.capacity
        let second = try gradient(at: inputs, of: f)
        #expect(first.map(bits) == second.map(bits))
        #expect(memory.nodes.capacity == kept)
        // A released tape is still released, whatever became of its lists.
        let (_, pullback) = try vjp(at: Tensor(1.0)) { x in try x * x }
        pullback.release()
        #expect(throws: AutodiffError.tapeReleased) { _ = try pullback(Tensor(1.0)) }
    }
}
