import _Differentiation
import Adjoint
import AdjointSwiftAD
import AdjointTestSupport
import Testing

/// A layer and a loss written as a `@differentiable(reverse)` Swift function over Adjoint tensors.
@differentiable(reverse, wrt: (w, b))
func swiftNetwork(_ w: Tensor, _ b: Tensor, x: Tensor, target: Tensor) -> Tensor {
    var h = (x.trapping.matmul(w.trapping) + b.trapping).tanh()
    for _ in 0..<withoutDerivative(at: 3) { h = (h * 0.9 + 0.1).sigmoid() * h }   // a Swift loop
    let misfit = (h - target.trapping).pow(2).mean()
    return (misfit + (h.exp() / 2).sum() * 0.01 - (1 - h).log1p().mean()).tensor
}

/// The same computation with Adjoint's throwing operators, for Adjoint's own `gradient`.
func adjointNetwork(_ w: Tensor, _ b: Tensor, x: Tensor, target: Tensor) throws -> Tensor {
    var h = try (x.matmul(w) + b).tanh()
    for _ in 0..<3 { h = try (h * 0.9 + 0.1).sigmoid() * h }
    let misfit = try (h - target).pow(2).mean()
    return try misfit + (h.exp() / 2).sum() * 0.01 - (1 - h).log1p().mean()
}

@Suite("Tensor under the toolchain's _Differentiation")
struct TensorDifferentiableTests {
    @Test("the compiler's gradient of a @differentiable Swift function over Adjoint operators is Adjoint's gradient")
    func compilerGradientMatchesAdjoint() throws {
        let key = RandomKey(seed: 5)
        let x = try Tensor.normal([6, 4], key: key), target = try Tensor.uniform([6, 3], key: key.fold(in: 1))
        let w = try Tensor.normal([4, 3], key: key.fold(in: 2), std: 0.5), b = try Tensor([0.1, -0.2, 0.05])
        // `_Differentiation`'s `gradient` wants a floating-point result; a one-element tensor's
        // gradient is the pullback of a cotangent of one.
        let (value, pullback) = valueWithPullback(at: w, b) { w, b in swiftNetwork(w, b, x: x, target: target) }
        let (gw, gb) = pullback(TensorTangent(try value.onesLike()))
        let (expected, (ew, eb)) = try AdjointAutodiff.valueWithGradient(at: w, b) { w, b in try adjointNetwork(w, b, x: x, target: target) }
        #expect(value.doubles == expected.doubles)
        let (dw, db) = (try #require(gw.tensor), try #require(gb.tensor))
        #expect(dw.shape == [4, 3] && db.shape == [3])
        #expect(isClose(dw.doubles, ew.doubles, tolerance: 1e-14) && isClose(db.doubles, eb.doubles, tolerance: 1e-14))
    }

    @Test("tangent arithmetic: nil is zero, sums broadcast like tensors, move(by:) updates the tensor")
    func tangents() throws {
        #expect(Self.cases.count == 30)   // every case is an argument of everyDerivative
        let t = TensorTangent(Tensor([1.0, 2]))
        #expect((t + .zero) == t && (TensorTangent.zero + t) == t && (TensorTangent.zero - t).tensor?.doubles == [-1, -2])
        #expect(TensorTangent(Tensor([0.0, 0])) == .zero && TensorTangent(Tensor([0.0, 1])) != .zero)
        var x = Tensor([1.0, 1])
        x.move(by: t)
        #expect(x.doubles == [2, 3])
        var y = x.trapping
        y.move(by: .zero)
        #expect(y.doubles == [2, 3])
    }

    @Test("every operator with a registered derivative: the compiler's pullback is Adjoint's gradient", arguments: 0..<30)
    func everyDerivative(_ index: Int) throws {
        let (name, swift, adjoint) = Self.cases[index]
        let x = try Tensor.uniform([2, 3], key: RandomKey(seed: 17), low: 0.2, high: 1.5)
        let (value, pullback) = valueWithPullback(at: x) { x in swift(x) }
        let byCompiler = try #require(pullback(TensorTangent(try value.onesLike())).tensor, "\(name)")
        let byAdjoint = try gradient(at: x) { x in try adjoint(x).sum() }
        #expect(isClose(byCompiler.doubles, byAdjoint.doubles, tolerance: 1e-14), "\(name)")
    }

    typealias Case = (name: String, swift: @differentiable(reverse) (Tensor) -> Tensor, adjoint: (Tensor) throws -> Tensor)

    /// Each case: a differentiable Swift function through one operator (summed) and the same with
    /// the throwing operator. (Appended one by one: as one literal the type checker gives up.)
    static var cases: [Case] {
        var cases: [Case] = []
        cases.append(("neg", { (x: Tensor) -> Tensor in x.trapping.neg().sum().tensor }, { x in try x.neg() }))
        cases.append(("abs", { (x: Tensor) -> Tensor in x.trapping.abs().sum().tensor }, { x in try x.abs() }))
        cases.append(("exp", { (x: Tensor) -> Tensor in x.trapping.exp().sum().tensor }, { x in try x.exp() }))
        cases.append(("expm1", { (x: Tensor) -> Tensor in x.trapping.expm1().sum().tensor }, { x in try x.expm1() }))
        cases.append(("log", { (x: Tensor) -> Tensor in x.trapping.log().sum().tensor }, { x in try x.log() }))
        cases.append(("log1p", { (x: Tensor) -> Tensor in x.trapping.log1p().sum().tensor }, { x in try x.log1p() }))
        cases.append(("sqrt", { (x: Tensor) -> Tensor in x.trapping.sqrt().sum().tensor }, { x in try x.sqrt() }))
        cases.append(("rsqrt", { (x: Tensor) -> Tensor in x.trapping.rsqrt().sum().tensor }, { x in try x.rsqrt() }))
        cases.append(("sin", { (x: Tensor) -> Tensor in x.trapping.sin().sum().tensor }, { x in try x.sin() }))
        cases.append(("cos", { (x: Tensor) -> Tensor in x.trapping.cos().sum().tensor }, { x in try x.cos() }))
        cases.append(("tanh", { (x: Tensor) -> Tensor in x.trapping.tanh().sum().tensor }, { x in try x.tanh() }))
        cases.append(("sigmoid", { (x: Tensor) -> Tensor in x.trapping.sigmoid().sum().tensor }, { x in try x.sigmoid() }))
        cases.append(("relu", { (x: Tensor) -> Tensor in x.trapping.relu().sum().tensor }, { x in try x.relu() }))
        cases.append(("softplus", { (x: Tensor) -> Tensor in x.trapping.softplus().sum().tensor }, { x in try x.softplus() }))
        cases.append(("pow", { (x: Tensor) -> Tensor in x.trapping.pow(3).sum().tensor }, { x in try x.pow(3) }))
        cases.append(("negate", { (x: Tensor) -> Tensor in (-x.trapping).sum().tensor }, { x in try -x }))
        cases.append(("x + x", { (x: Tensor) -> Tensor in (x.trapping + x.trapping).sum().tensor }, { x in try x + x }))
        cases.append(("x - 2x", { (x: Tensor) -> Tensor in (x.trapping - x.trapping * 2).sum().tensor }, { x in try x - x * 2 }))
        cases.append(("x * x", { (x: Tensor) -> Tensor in (x.trapping * x.trapping).sum().tensor }, { x in try x * x }))
        cases.append(("x / (x + 1)", { (x: Tensor) -> Tensor in (x.trapping / (x.trapping + 1)).sum().tensor }, { x in try x / (x + 1) }))
        cases.append(("scalar +", { (x: Tensor) -> Tensor in ((2 + x.trapping) + (x.trapping + 3.0)).sum().tensor }, { x in try (2 + x) + (x + 3.0) }))
        cases.append(("scalar -", { (x: Tensor) -> Tensor in ((6 - x.trapping) * (x.trapping - 1.0)).sum().tensor }, { x in try (6 - x) * (x - 1.0) }))
        cases.append(("scalar *", { (x: Tensor) -> Tensor in ((4 * x.trapping) * (x.trapping * 3.0)).sum().tensor }, { x in try (4 * x) * (x * 3.0) }))
        cases.append(("scalar /", { (x: Tensor) -> Tensor in ((1 / x.trapping) * (x.trapping / 5.0)).sum().tensor }, { x in try (1 / x) * (x / 5.0) }))
        cases.append(("mean", { (x: Tensor) -> Tensor in x.trapping.mean(axes: [1], keepDims: true).sum().tensor }, { x in try x.mean(axes: [1], keepDims: true) }))
        cases.append(("logsumexp", { (x: Tensor) -> Tensor in x.trapping.logsumexp(axes: [0]).sum().tensor }, { x in try x.logsumexp(axes: [0]) }))
        cases.append(("softmax", { (x: Tensor) -> Tensor in (x.trapping.softmax() * x.trapping).sum().tensor }, { x in try x.softmax() * x }))
        cases.append(("matmul", { (x: Tensor) -> Tensor in x.trapping.matmul(x.trapping, transposeOther: true).sum().tensor }, { x in try x.matmul(x, transposeOther: true) }))
        cases.append(("reshaped", { (x: Tensor) -> Tensor in (x.trapping.reshaped([3, 2]) * x.trapping.transposed()).sum().tensor }, { x in try x.reshaped([3, 2]) * x.transposed() }))
        cases.append(("round trip", { (x: Tensor) -> Tensor in TrappingTensor(x.trapping.tensor.trapping.exp().tensor).sum().tensor }, { x in try x.exp() }))
        return cases
    }
}
