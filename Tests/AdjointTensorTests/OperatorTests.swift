import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Operators: values and broadcasting")
struct OperatorTests {
    @Test("unary operators match the scalar functions")
    func unary() throws {
        let xs: [Double] = [-2.5, -0.3, 0.4, 1.7]
        let x = t(xs)
        func same(_ y: Tensor, _ f: (Double) -> Double) { #expect(isClose(y.doubles, xs.map(f), tolerance: 1e-15)) }
        same(try x.neg()) { -$0 }
        same(try x.abs()) { Swift.abs($0) }
        same(try x.sign()) { $0 > 0 ? 1 : -1 }
        same(try x.exp()) { Foundation.exp($0) }
        same(try x.expm1()) { Foundation.expm1($0) }
        same(try x.sin()) { Foundation.sin($0) }
        same(try x.cos()) { Foundation.cos($0) }
        same(try x.tanh()) { Foundation.tanh($0) }
        same(try x.sigmoid()) { 1 / (1 + Foundation.exp(-$0)) }
        same(try x.relu()) { Swift.max($0, 0) }
        same(try x.softplus()) { Foundation.log1p(Foundation.exp($0)) }
        let p = t([0.25, 1, 4])
        #expect(try p.log().doubles == [0.25, 1, 4].map { Foundation.log($0) })
        #expect(try p.log1p().doubles == [0.25, 1, 4].map { Foundation.log1p($0) })
        #expect(try p.sqrt().doubles == [0.5, 1, 2])
        #expect(try p.rsqrt().doubles == [2, 1, 0.5])
    }

    @Test("binary operators broadcast like NumPy")
    func broadcasting() throws {
        let a = t([1, 2, 3, 4, 5, 6], [2, 3])
        #expect(try (a + t([10, 20, 30])).doubles == [11, 22, 33, 14, 25, 36])
        #expect(try (a * t([2, 3], [2, 1])).doubles == [2, 4, 6, 12, 15, 18])
        #expect(try (a - 1).doubles == [0, 1, 2, 3, 4, 5])
        #expect(try (1 / t([2, 4])).doubles == [0.5, 0.25])
        let outer = try t([1, 2], [2, 1]) * t([1, 10, 100], [1, 3])
        #expect(outer.shape == [2, 3] && outer.doubles == [1, 10, 100, 2, 20, 200])
        let r3 = try t([1, 2], [2, 1, 1]) + t([0, 10, 20], [3, 1])
        #expect(r3.shape == [2, 3, 1] && r3.doubles == [1, 11, 21, 2, 12, 22])
        #expect(try t([-8, 2]).pow(t([3])).doubles == [-512, 8])
        #expect(try t([1, 5]).maximum(t([3, 2])).doubles == [3, 5])
        #expect(try t([1, 5]).minimum(t([3, 2])).doubles == [1, 2])
        #expect(try t([Double.nan, 1]).maximum(t([0, Double.nan])).doubles.allSatisfy(\.isNaN))
    }

    @Test("two scalars (their own kernel path) give the element-wise result, in both dtypes and with errors",
          arguments: [DType.float64, .float32])
    func scalarOperands(_ dtype: DType) throws {
        let pairs: [(Double, Double)] = [(1.5, -0.25), (-3, 7), (0.1, 0.3), (2, 0.5), (.nan, 1)]
        let ops: [(Tensor, Tensor) throws -> Tensor] = [{ try $0 + $1 }, { try $0 - $1 }, { try $0 * $1 }, { try $0 / $1 },
                                                        { try $0.pow($1) }, { try $0.maximum($1) }, { try $0.minimum($1) }]
        for (x, y) in pairs {
            let a = try Tensor(x, dtype: dtype), b = try Tensor(y, dtype: dtype)
            let va = try Tensor.full([1], x, dtype: dtype), vb = try Tensor.full([1], y, dtype: dtype)
            for op in ops {
                let scalar = try op(a, b), vector = try op(va, vb)
                #expect(scalar.shape == [] && scalar.dtype == dtype)
                let (s, v) = (scalar.doubles[0], vector.doubles[0])
                #expect(s.bitPattern == v.bitPattern || (s.isNaN && v.isNaN), "\(x), \(y): \(s) vs \(v)")
            }
        }
        #expect(try (Tensor(3.0) * Tensor(0.5)).item() == 1.5)
        #expect(throws: TensorError.self) { _ = try Tensor(1.0) + Tensor(Float(1)) }
        #expect(throws: TensorError.self) { _ = try Tensor(1.0) + Tensor(Int64(1)) }
    }

    @Test("comparisons give bool tensors; where selects")
    func comparisons() throws {
        let a = t([1, 2, 3]), b = t([3, 2, 1])
        #expect(try a.less(b).scalars(as: Bool.self) == [true, false, false])
        #expect(try a.lessEqual(b).scalars(as: Bool.self) == [true, true, false])
        #expect(try a.greater(b).scalars(as: Bool.self) == [false, false, true])
        #expect(try a.greaterEqual(b).scalars(as: Bool.self) == [false, true, true])
        #expect(try a.equal(b).scalars(as: Bool.self) == [false, true, false])
        #expect(try a.notEqual(b).scalars(as: Bool.self) == [true, false, true])
        #expect(try Tensor.select(a.less(b), a, b).doubles == [1, 2, 1])
        #expect(try Tensor([Int64(1), 5]).less(Tensor([Int64(2), 2])).scalars(as: Bool.self) == [true, false])
    }

    @Test("reductions over any axes, with and without keepDims")
    func reductions() throws {
        let x = try Tensor.arange(0, 24).reshaped([2, 3, 4])
        #expect(try x.sum().doubles == [276])
        #expect(try x.sum(axes: [0]).shape == [3, 4])
        #expect(try x.sum(axes: [1], keepDims: true).shape == [2, 1, 4])
        #expect(try x.sum(axes: [1]).doubles == [12, 15, 18, 21, 48, 51, 54, 57])
        #expect(try x.sum(axes: [0, 2]).doubles == [60, 92, 124])
        #expect(try x.sum(axes: [-1]).doubles == [6, 22, 38, 54, 70, 86])
        #expect(try x.mean(axes: [2]).doubles == [1.5, 5.5, 9.5, 13.5, 17.5, 21.5])
        #expect(try x.max(axes: [0, 1]).doubles == [20, 21, 22, 23])
        #expect(try x.min(axes: [2], keepDims: true).shape == [2, 3, 1])
        #expect(try x.argmax(axis: 1).scalars(as: Int64.self) == [2, 2, 2, 2, 2, 2, 2, 2])
        let l = try t([1, 2, 3]).logsumexp().item()
        #expect(Swift.abs(l - Foundation.log(Foundation.exp(1) + Foundation.exp(2) + Foundation.exp(3))) < 1e-14)
        #expect(try t([-Double.infinity, -Double.infinity]).logsumexp().item() == -Double.infinity)
    }

    @Test("long sums are accurate (pairwise) and match a compensated reference")
    func accurateSum() throws {
        let n = 1_000_003
        let x = try Tensor.uniform([n], key: RandomKey(seed: 3), low: 0, high: 1)
        var sum = 0.0, c = 0.0
        for v in x.doubles { let y = v - c; let s = sum + y; c = (s - sum) - y; sum = s }
        #expect(Swift.abs(try x.sum().item() - sum) < 1e-9)
        let f = try x.cast(to: .float32)
        #expect(Swift.abs(try f.sum().item() - sum) / sum < 1e-6)
    }

    @Test("matmul: plain, batched, broadcast batch, transposed, against a reference loop")
    func matmul() throws {
        func reference(_ a: [Double], _ b: [Double], _ m: Int, _ k: Int, _ n: Int) -> [Double] {
            (0..<(m * n)).map { idx in (0..<k).reduce(0) { $0 + a[(idx / n) * k + $1] * b[$1 * n + idx % n] } }
        }
        let a = try Tensor.uniform([3, 4], key: RandomKey(seed: 1)), b = try Tensor.uniform([4, 5], key: RandomKey(seed: 2))
        #expect(isClose(try a.matmul(b).doubles, reference(a.doubles, b.doubles, 3, 4, 5)))
        #expect(isClose(try a.transposed().matmul(b, transposeSelf: true).doubles, reference(a.doubles, b.doubles, 3, 4, 5)))
        #expect(isClose(try a.matmul(b.transposed(), transposeOther: true).doubles, reference(a.doubles, b.doubles, 3, 4, 5)))
        let batch = try Tensor.uniform([2, 3, 4], key: RandomKey(seed: 3))
        let c = try batch.matmul(b)
        #expect(c.shape == [2, 3, 5])
        #expect(isClose(Array(c.doubles[15...]), reference(Array(batch.doubles[12...]), b.doubles, 3, 4, 5)))
        let bb = try Tensor.uniform([3, 4, 2], key: RandomKey(seed: 4))
        #expect(try Tensor.uniform([2, 1, 3, 4], key: RandomKey(seed: 5)).matmul(bb).shape == [2, 3, 3, 2])
        #expect(try a.cast(to: .float32).matmul(b.cast(to: .float32)).dtype == .float32)
        // Large enough to be split into row blocks: transposed operands must give the same product.
        let p = try Tensor.uniform([300, 200], key: RandomKey(seed: 6)), q = try Tensor.uniform([300, 500], key: RandomKey(seed: 7))
        let direct = try p.transposed().matmul(q)
        #expect(isClose(try p.matmul(q, transposeSelf: true).doubles, direct.doubles))
        #expect(isClose(try p.transposed().matmul(q.transposed(), transposeOther: true).doubles, direct.doubles))
        #expect(isClose(try p.matmul(q.transposed(), transposeSelf: true, transposeOther: true).doubles, direct.doubles))
    }

    @Test("layout operators")
    func layout() throws {
        let x = try Tensor.arange(0, 6).reshaped([2, 3])
        #expect(try x.transposed().doubles == [0, 3, 1, 4, 2, 5])
        #expect(try x.reshaped([3, -1]).shape == [3, 2])
        #expect(try t([1, 2]).reshaped([2, 1]).broadcast(to: [2, 3]).doubles == [1, 1, 1, 2, 2, 2])
        #expect(try x.slice(starts: [0, 1], ends: [2, 3]).doubles == [1, 2, 4, 5])
        #expect(try x[1..<2].doubles == [3, 4, 5])
        #expect(try Tensor.concat([x, x], axis: 1).doubles == [0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5])
        let s = try Tensor.stack([t([1, 2]), t([3, 4])], axis: 1)
        #expect(s.shape == [2, 2] && s.doubles == [1, 3, 2, 4])
        #expect(try t([1, 2]).padded(low: [1], high: [2], value: -1).doubles == [-1, 1, 2, -1, -1])
        let y = try Tensor.arange(0, 24).reshaped([2, 3, 4]).transposed([2, 0, 1])
        #expect(y.shape == [4, 2, 3] && y.doubles.prefix(6) == [0, 4, 8, 12, 16, 20])
    }

    @Test("gather, scatter-add and one-hot")
    func indexing() throws {
        let x = try Tensor.arange(0, 6).reshaped([3, 2])
        let idx = Tensor([Int64(2), 0, 2])
        #expect(try x.gather(idx, axis: 0).doubles == [4, 5, 0, 1, 4, 5])
        #expect(try x.gather(Tensor([Int32(1)]), axis: 1).doubles == [1, 3, 5])
        let s = try Tensor.zeros([3, 2]).scatterAdd(idx, try Tensor.ones([3, 2]), axis: 0)
        #expect(s.doubles == [1, 1, 0, 0, 2, 2])
        let h = try Tensor([Int64(0), 2]).oneHot(depth: 3, dtype: .float32)
        #expect(h.shape == [2, 3] && h.doubles == [1, 0, 0, 0, 0, 1])
    }

    @Test("softmax, log-softmax, cross-entropy and MSE values")
    func nn() throws {
        let logits = t([1, 2, 3, 1, 1, 1], [2, 3])
        let p = try logits.softmax().doubles
        let e = [1.0, 2, 3].map { Foundation.exp($0) }
        #expect(isClose(Array(p[0..<3]), e.map { $0 / e.reduce(0, +) }, tolerance: 1e-15))
        let third = 1.0 / 3
        #expect(isClose(Array(p[3...]), [third, third, third], tolerance: 1e-15))
        #expect(isClose(try logits.logSoftmax().exp().doubles, p, tolerance: 1e-15))
        let ce = try logits.crossEntropy(labels: Tensor([Int64(2), 0])).doubles
        #expect(isClose(ce, [-Foundation.log(p[2]), Foundation.log(3)], tolerance: 1e-14))
        #expect(try t([1, 2]).meanSquaredError(t([0, 4])).item() == 2.5)
    }

    @Test("stable forms: values and gradients stay finite and correct at ±1e3")
    func stableForms() throws {
        let big = t([-1000, -999, 1000, 999])
        #expect(try big.sigmoid().doubles == [0, 0, 1, 1])
        #expect(try big.softplus().doubles == [0, 0, 1000, 999])
        let lse = try t([1000, 999]).logsumexp().item()
        #expect(Swift.abs(lse - (1000 + Foundation.log(1 + Foundation.exp(-1)))) < 1e-12)
        #expect(try t([-1000, -1001]).logsumexp().item().isFinite)
        let rows = t([1000, 999, -1000, -1000, -999, -1001], [2, 3])
        #expect(try rows.softmax().doubles.allSatisfy(\.isFinite))
        #expect(try rows.logSoftmax().doubles.allSatisfy(\.isFinite))
        let ce = try rows.crossEntropy(labels: Tensor([Int64(1), Int64(1)])).doubles
        #expect(Swift.abs(ce[0] - 1.3132616875182228) < 1e-12 && Swift.abs(ce[1] - 0.40760596444438) < 1e-12)
        for f in [{ (x: Tensor) in try x.sigmoid().sum() }, { try $0.softplus().sum() }, { try $0.logsumexp() },
                  { try $0.reshaped([2, 2]).softmax().sum(axes: [1]).sum() }, { try $0.reshaped([2, 2]).logSoftmax().sum() }] {
            let g = try gradient(at: big, of: f).doubles
            let finite = g.allSatisfy { $0.isFinite }
            #expect(finite, "gradient not finite: \(g)")
        }
        #expect(try gradient(at: big) { try $0.softplus().sum() }.doubles == [0, 0, 1, 1])
        let gce = try gradient(at: rows) { try $0.crossEntropy(labels: Tensor([Int64(1), Int64(1)])).sum() }.doubles
        #expect(gce.allSatisfy(\.isFinite) && Swift.abs(gce[0] - 0.7310585786300049) < 1e-12)
    }
}

@Suite("Operator errors name the operator and the problem")
struct OperatorErrorTests {
    @Test("shape, dtype, axis and index errors")
    func errors() throws {
        let a = t([1, 2, 3]), m = t([1, 2, 3, 4], [2, 2])
        #expect(throws: TensorError.shapeMismatch(op: "binary.add", detail: "shapes [3] and [2,2] do not broadcast (axis -1: 3 vs 2)")) { try a + m }
        #expect(throws: TensorError.self) { try a + a.cast(to: .float32) }
        #expect(throws: TensorError.invalidAxis(op: "reduction.sum", axis: 3, rank: 2)) { try m.sum(axes: [3]) }
        #expect(throws: TensorError.self) { try m.matmul(t([1, 2, 3], [3, 1])) }
        #expect(throws: TensorError.self) { try m.reshaped([3]) }
        #expect(throws: TensorError.self) { try m.transposed([0, 0]) }
        #expect(throws: TensorError.self) { try m.slice(starts: [0, 1], ends: [3, 2]) }
        #expect(throws: TensorError.indexOutOfRange(op: "indexing.gather", index: 5, bound: 2, position: "indices element 1 (axis 0)")) {
            try m.gather(Tensor([Int64(0), 5]), axis: 0)
        }
        #expect(throws: TensorError.self) { try m.gather(t([0]), axis: 0) }
        #expect(throws: TensorError.self) { try m.crossEntropy(labels: Tensor([Int64(0), Int64(2)])) }
        #expect(throws: TensorError.self) { try Tensor([Int32(1)]).exp() }
        #expect(throws: TensorError.self) { try a.cast(to: .float16).exp() }
        #expect(throws: TensorError.self) { try Tensor.select(a, a, a) }
        #expect(throws: TensorError.self) { try Tensor.concat([a, m]) }
        #expect(throws: TensorError.self) { try dispatch(.add, .none, [a]) }
        var v = m
        #expect(throws: TensorError.self) { try v.add_(t([1, 2, 3])) }
        #expect(throws: TensorError.self) { try v.assign(t([1, 2, 3]), at: [0..<1]) }
        #expect(throws: TensorError.self) { try v.assign(t([1, 2]), at: [0..<3]) }
        #expect { try v.multiplyAdd_(t([1, 2, 3]), t([1])) } throws: { "\($0)".contains("inplace.multiplyAdd: shape mismatch") }
        #expect { try v.multiplyAdd_(t(Array(repeating: 1, count: 12), [3, 2, 2]), t([1])) } throws: {
            "\($0)".contains("do not broadcast to the target's shape [2,2]")
        }
        #expect(throws: TensorError.self) { try v.multiplyAdd_(t([1]).cast(to: .float32), t([1])) }
        #expect(throws: TensorError.self) { try dispatchInPlace(.multiplyAddInPlace, .none, target: &v, operands: [t([1])]) }
        #expect(v.doubles == [1, 2, 3, 4])   // failed writes leave the target untouched
        let message = String(describing: TensorError.invalidAxis(op: "reduction.sum", axis: 3, rank: 2))
        #expect(message.contains("reduction.sum") && message.contains("axis 3") && message.contains("rank 2"))
    }
}
