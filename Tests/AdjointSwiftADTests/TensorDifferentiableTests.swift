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
}
