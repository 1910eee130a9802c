import Adjoint
import AdjointTestSupport
import Testing

/// The non-throwing face gives the throwing operators' results bitwise, differentiates the same,
/// and stops the process with the typed error's message on a mismatch.
@Suite("TrappingTensor: the non-throwing layer")
struct TrappingTensorTests {
    static let key = RandomKey(seed: 11)

    @Test("a small network reads like math and equals the throwing operators bitwise, value and gradient")
    func sameResults() throws {
        let x = try Tensor.normal([5, 3], key: Self.key), target = try Tensor.normal([5, 2], key: Self.key.fold(in: 1))
        let w = try Tensor.normal([3, 2], key: Self.key.fold(in: 2)), b = try Tensor([0.1, -0.2])
        func throwing(_ w: Tensor, _ b: Tensor) throws -> Tensor {
            let h = try (x.matmul(w) + b).tanh()
            return try ((h - target).pow(2).mean() + Tensor.select(h.greater(0), h, 0.0).sum() * 0.01)
        }
        func trapping(_ w: Tensor, _ b: Tensor) -> Tensor {
            let (w, b) = (w.trapping, b.trapping)
            let h = (x.trapping.matmul(w) + b).tanh()
            return ((h - target.trapping).pow(2).mean() + TrappingTensor.select(h.greater(0), h, 0.0).sum() * 0.01).tensor
        }
        #expect(try throwing(w, b).doubles == trapping(w, b).doubles)
        let (gw1, gb1) = try gradient(at: w, b, of: throwing)
        let (gw2, gb2) = try gradient(at: w, b) { w, b in trapping(w, b) }
        #expect(gw1.doubles == gw2.doubles && gb1.doubles == gb2.doubles)
        let v = x.trapping
        #expect((1 - v * 2).doubles == (try (1 - x * 2).doubles))
        #expect(v[1..., .slice(step: 2)].shape == [4, 2] && v.sum(axes: [0]).shape == [3])
        #expect(TrappingTensor.concat([v, v]).shape == [10, 3] && v.matmul(w.trapping).softmax().shape == [5, 2])
    }

    @Test("every operation of the face is its throwing operator's result, bitwise")
    func everyOperation() throws {
        let x = try Tensor.uniform([3, 4], key: Self.key, low: 0.1, high: 2), y = try Tensor.uniform([3, 4], key: Self.key.fold(in: 9), low: -1, high: 1)
        let (a, b) = (x.trapping, y.trapping)
        let idx = Tensor([Int64(2), 0]), pts = try Tensor([Int64(0), 1, 2, 3], shape: [2, 2])
        let column = try Tensor([Int64(1), 0, 3], shape: [3, 1])
        let pairs: [(String, TrappingTensor, Tensor)] = [
            ("neg", a.neg(), try x.neg()), ("abs", b.abs(), try y.abs()), ("sign", b.sign(), try y.sign()), ("exp", a.exp(), try x.exp()),
            ("expm1", a.expm1(), try x.expm1()), ("log", a.log(), try x.log()), ("log1p", a.log1p(), try x.log1p()),
            ("sqrt", a.sqrt(), try x.sqrt()), ("rsqrt", a.rsqrt(), try x.rsqrt()), ("sin", a.sin(), try x.sin()), ("cos", a.cos(), try x.cos()),
            ("tanh", a.tanh(), try x.tanh()), ("sigmoid", a.sigmoid(), try x.sigmoid()), ("relu", b.relu(), try y.relu()),
            ("softplus", b.softplus(), try y.softplus()), ("pow", a.pow(b), try x.pow(y)), ("pow s", a.pow(3), try x.pow(3)),
            ("maximum", a.maximum(b), try x.maximum(y)), ("maximum s", a.maximum(1), try x.maximum(1)),
            ("minimum", a.minimum(b), try x.minimum(y)), ("minimum s", a.minimum(1), try x.minimum(1)),
            ("clamped", b.clamped(to: -0.5 ... 0.5), try y.clamped(to: -0.5 ... 0.5)), ("negate", -a, try -x),
            ("+", a + b, try x + y), ("-", a - b, try x - y), ("*", a * b, try x * y), ("/", a / b, try x / y),
            ("+s", a + 2, try x + 2), ("-s", a - 2, try x - 2), ("*s", a * 2, try x * 2), ("/s", a / 2, try x / 2),
            ("s+", 2 + a, try 2 + x), ("s-", 2 - a, try 2 - x), ("s*", 2 * a, try 2 * x), ("s/", 2 / a, try 2 / x),
            ("equal", a.equal(b), try x.equal(y)), ("notEqual s", a.notEqual(1), try x.notEqual(1)),
            ("less", a.less(b), try x.less(y)), ("lessEqual s", a.lessEqual(1), try x.lessEqual(1)),
            ("greater", a.greater(b), try x.greater(y)), ("greaterEqual s", a.greaterEqual(1), try x.greaterEqual(1)),
            ("select", .select(a.greater(1), a, b), try .select(x.greater(1), x, y)),
            ("select s", .select(a.greater(1), a, 0.0), try .select(x.greater(1), x, 0.0)),
            ("select s2", .select(a.greater(1), 0.0, b), try .select(x.greater(1), 0.0, y)),
            ("cast", a.cast(to: .float32), try x.cast(to: .float32)),
            ("sum", a.sum(axes: [1]), try x.sum(axes: [1])), ("mean", a.mean(), try x.mean()), ("max", a.max(axes: [0], keepDims: true), try x.max(axes: [0], keepDims: true)),
            ("min", a.min(), try x.min()), ("logsumexp", a.logsumexp(axes: [1]), try x.logsumexp(axes: [1])),
            ("softmax", a.softmax(), try x.softmax()), ("logSoftmax", a.logSoftmax(axis: 0), try x.logSoftmax(axis: 0)),
            ("crossEntropy", a[..<2].crossEntropy(labels: idx.trapping), try x[..<2].crossEntropy(labels: idx)),
            ("meanSquaredError", a.meanSquaredError(b), try x.meanSquaredError(y)),
            ("matmul", a.matmul(b, transposeOther: true), try x.matmul(y, transposeOther: true)),
            ("reshaped", a.reshaped([4, 3]), try x.reshaped([4, 3])), ("transposed", a.transposed(), try x.transposed()),
            ("transposed p", a.transposed([1, 0]), try x.transposed([1, 0])), ("broadcast", a.broadcast(to: [2, 3, 4]), try x.broadcast(to: [2, 3, 4])),
            ("unsqueezed", a.unsqueezed(axis: 1), try x.unsqueezed(axis: 1)), ("squeezed", a.unsqueezed(axis: 0).squeezed(axis: 0), x),
            ("takeAlong", a.takeAlong(column.trapping, axis: 1), try x.takeAlong(column, axis: 1)),
            ("gather", a.gather(idx.trapping), try x.gather(idx)), ("gatherND", a.gatherND(pts.trapping), try x.gatherND(pts)),
            ("scatterAdd", a.scatterAdd(idx.trapping, b.slice(starts: [0, 0], ends: [2, 4])), try x.scatterAdd(idx, y.slice(starts: [0, 0], ends: [2, 4]))),
            ("slice", a.slice(starts: [1, 1], ends: [3, 2]), try x.slice(starts: [1, 1], ends: [3, 2])),
            ("padded", a.padded(low: [1, 0], high: [0, 2], value: 7), try x.padded(low: [1, 0], high: [0, 2], value: 7)),
            ("oneHot", idx.trapping.oneHot(depth: 3), try idx.oneHot(depth: 3)), ("argmax", a.argmax(axis: 1), try x.argmax(axis: 1)),
            ("subscript", a[1..., .slice(step: -2)], try x[1..., .slice(step: -2)]),
            ("concat", .concat([a, b], axis: 1), try .concat([x, y], axis: 1)), ("stack", .stack([a, b]), try .stack([x, y])),
        ]
        for (name, mine, theirs) in pairs {
            #expect(mine.shape == theirs.shape && mine.dtype == theirs.dtype, "\(name)")
            #expect(mine.doubles.map(\.bitPattern) == theirs.doubles.map(\.bitPattern), "\(name)")
        }
        #expect(a.rank == 2 && a.description == x.description)
        #expect(x.trapping.sum().item() == (try x.sum().item()))
    }

    @Test("a mismatch stops the process (with the message the throwing operator would throw)")
    func traps() async throws {
        await #expect(processExitsWith: .failure) {
            let a = try! Tensor.zeros([2, 3]).trapping, b = try! Tensor.zeros([4]).trapping
            _ = a + b
        }
        await #expect(processExitsWith: .failure) {
            _ = try! Tensor.zeros([2, 3]).trapping[5]
        }
    }
}
