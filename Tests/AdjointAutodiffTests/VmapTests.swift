import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("vmap: batching rules and batched derivatives")
struct VmapTests {
    static let batch = 3

    /// Example `k` of a case's inputs: floating-point inputs scaled by 1 + k/8 (same sign, so
    /// every domain is kept); indices and masks shifted or flipped per example where that keeps
    /// them valid, so batched indices differ between examples.
    static func example(_ k: Int, of inputs: [Tensor], spec: OpSpec) throws -> [Tensor] {
        try zip(inputs, spec.inputs).map { x, input in
            switch input.domain {
            case .uniform, .awayFromZero: return try x * (1 + Double(k) / 8)
            case let .indices(bound):
                let shifted = try x.cast(to: .float64).doubles.map { ($0 + Double(k)).truncatingRemainder(dividingBy: Double(bound)) }
                return try Tensor(shifted, shape: x.shape).cast(to: .int64)
            case .mask: return k % 2 == 0 ? x : try x.equal(Tensor(false))
            }
        }
    }

    /// The results of `spec` for each example, stacked, against `vmap` of it over the examples;
    /// `batched[i]` says whether input `i` is batched (otherwise example 0's is shared).
    static func compare(_ spec: OpSpec, batched: [Bool]) throws {
        let inputs = try spec.makeInputs()
        let examples = try (0..<batch).map { try example($0, of: inputs, spec: spec) }
        let perExample = try (0..<batch).map { k in
            try spec.function(zip(examples[k], examples[0]).enumerated().map { i, pair in batched[i] ? pair.0 : pair.1 })
        }
        let expected = try Tensor.stack(perExample, axis: 0)
        let arguments = try inputs.indices.map { i in batched[i] ? try Tensor.stack(examples.map { $0[i] }, axis: 0) : examples[0][i] }
        let got = try vmap(at: arguments, axes: batched.map { $0 ? 0 : nil }) { xs in [try spec.function(xs)] }[0]
        #expect(got.shape == expected.shape, "\(spec): \(got.shape) vs \(expected.shape)")
        #expect(got.dtype == expected.dtype, "\(spec)")
        if got.dtype.isFloatingPoint {
            // Out-of-domain examples give NaN in both.
            let (g, e) = (got.doubles, expected.doubles)
            #expect(g.map(\.isNaN) == e.map(\.isNaN), "\(spec) batched \(batched)")
            #expect(isClose(g.filter { !$0.isNaN }, e.filter { !$0.isNaN }, tolerance: 1e-13), "\(spec) batched \(batched)")
        } else {
            #expect(try got.cast(to: .float64).doubles == expected.cast(to: .float64).doubles, "\(spec) batched \(batched)")
        }
    }

    @Test("every op-spec case: vmap equals the per-example results stacked (all inputs batched)", arguments: OpSpec.table)
    func allBatched(_ spec: OpSpec) throws {
        try Self.compare(spec, batched: spec.inputs.map { _ in true })
    }

    @Test("every op-spec case with one input batched and the others shared", arguments: OpSpec.table)
    func oneBatched(_ spec: OpSpec) throws {
        for i in spec.inputs.indices {
            try Self.compare(spec, batched: spec.inputs.indices.map { $0 == i })
        }
    }

    @Test("axes: a batch along any axis, results along any axis, shared arguments broadcast")
    func axes() throws {
        let x = t([1, 2, 3, 4, 5, 6], [2, 3])  // batch of 3 along axis 1
        let y = try vmap({ try $0 * 2 }, over: x, axis: 1)
        #expect(y.shape == [3, 2] && y.doubles == [2, 8, 4, 10, 6, 12])
        let z = try vmap({ try $0 * 2 }, over: x, axis: 1, outAxis: 1)
        #expect(z.shape == [2, 3] && z.doubles == [2, 4, 6, 8, 10, 12])
        let w = t([10, 20])
        let sums = try vmap(at: [x, w], axes: [0, nil]) { v in [try (v[0].sum() + v[1].sum()), try Tensor.ones([2])] }
        #expect(sums[0].doubles == [36, 45] && sums[1].shape == [2, 2])
    }

    @Test("reductions of rank-0 examples reduce nothing, not the batch")
    func scalarReductions() throws {
        let xs = t([0.5, -1, 2])
        for reduce in [{ (x: Tensor) in try x.sum() }, { try $0.mean() }, { try $0.max() }, { try $0.logsumexp() },
                       { try $0.meanSquaredError(Tensor(0.25)) }] {
            let got = try vmap(reduce, over: xs)
            let expected = try Tensor.stack((0..<3).map { k in try reduce(xs.slice(starts: [k], ends: [k + 1]).reshaped([])) }, axis: 0)
            #expect(got.shape == [3] && bitwiseEqual(got, expected))
        }
    }

    @Test("bad axes, differing batch sizes, empty batches and value reads are typed errors")
    func refusals() throws {
        let x = t([1, 2, 3, 4, 5, 6], [2, 3])
        #expect(throws: AutodiffError.self) { try vmap({ $0 }, over: x, axis: 2) }
        #expect(throws: AutodiffError.self) { try vmap(at: [x, t([1, 2, 3])], axes: [0, 0]) { $0 } }
        #expect(throws: AutodiffError.self) { try vmap(at: [x], axes: [nil]) { $0 } }
        #expect(throws: AutodiffError.self) { try vmap(at: [x], axes: [0, 0]) { $0 } }
        #expect(throws: AutodiffError.self) { try vmap({ $0 }, over: x, outAxis: 3) }
        #expect(throws: AutodiffError.vmapInvalidAxes(detail: "the batch axis is empty; vmap needs at least one example")) {
            try vmap({ $0 }, over: Tensor.zeros([0, 2]))
        }
        #expect(throws: AutodiffError.vmapValueRead(shape: [])) {
            try vmap({ row in try row.sum().doubles[0] > 0 ? row : row.neg() }, over: x)
        }
        // The first example read deliberately is allowed.
        let first = try vmap({ row in try row * row.untracked.sum().doubles[0] }, over: x)
        #expect(first.doubles == [6, 12, 18, 24, 30, 36])
    }

    @Test("per-example gradients: vmap of gradient equals one gradient per example")
    func perExampleGradients() throws {
        let w = t([0.5, -1, 2, 0.25, 1.5, -0.75], [3, 2])
        let xs = t([0.1, 0.2, -0.3, 0.4, 1, -1, 0.3, 0.3], [4, 2])
        func loss(_ w: Tensor, _ x: Tensor) throws -> Tensor { try (w.matmul(x.reshaped([2, 1])).tanh() * 1.5).sum() }
        let batched = try vmap({ x in try gradient(at: w) { try loss($0, x) } }, over: xs)
        #expect(batched.shape == [4, 3, 2])
        for k in 0..<4 {
            let x = try xs.slice(starts: [k, 0], ends: [k + 1, 2]).reshaped([2])
            let g = try gradient(at: w) { try loss($0, x) }
            #expect(isClose(try batched.slice(starts: [k, 0, 0], ends: [k + 1, 3, 2]).doubles, g.doubles, tolerance: 1e-14))
        }
    }

    @Test("gradient of vmap, nested vmap, and jvp of vmap")
    func composition() throws {
        let xs = t([0.1, 0.2, -0.3, 0.4, 1, -1], [3, 2])
        // d/dxs Σ_β sin(x_β)·x_β = cos(x)·x + sin(x).
        let g = try gradient(at: xs) { xs in try vmap({ x in try (x.sin() * x).sum() }, over: xs).sum() }
        let expected = xs.doubles.map { Foundation.cos($0) * $0 + Foundation.sin($0) }
        #expect(isClose(g.doubles, expected, tolerance: 1e-14))
        // Outer products by nested vmaps.
        let a = t([1, 2, 3]), b = t([10, 20])
        let outer = try vmap({ ai in try vmap({ bj in try ai * bj }, over: b) }, over: a)
        #expect(outer.shape == [3, 2] && outer.doubles == [10, 20, 20, 40, 30, 60])
        let (_, tangent) = try jvp(at: xs, direction: try xs.onesLike()) { xs in try vmap({ x in try (x * x).sum() }, over: xs) }
        #expect(isClose(tangent.doubles, [0.6, 0.2, 0], tolerance: 1e-14))
    }

    @Test("batched matrix products: a shared matrix times a batch is one product, either side and transposed")
    func matmul() throws {
        let a = try Tensor.uniform([4, 3], key: RandomKey(seed: 1))
        let xs = try Tensor.uniform([5, 3, 2], key: RandomKey(seed: 2))
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let shared = ta ? try a.transposed() : a
            let got = try vmap({ x in try dispatchMatmul(shared, tb ? try x.transposed() : x, ta, tb) }, over: xs)
            let expected = try Tensor.stack((0..<5).map { k in
                try a.matmul(xs.slice(starts: [k, 0, 0], ends: [k + 1, 3, 2]).reshaped([3, 2]))
            }, axis: 0)
            #expect(isClose(got.doubles, expected.doubles, tolerance: 1e-14), "transposeA \(ta) transposeB \(tb)")
        }
    }

    /// `a · b` with the operands given already transposed where `ta`/`tb` say so.
    private func dispatchMatmul(_ a: Tensor, _ b: Tensor, _ ta: Bool, _ tb: Bool) throws -> Tensor {
        try a.matmul(b, transposeSelf: ta, transposeOther: tb)
    }
}
