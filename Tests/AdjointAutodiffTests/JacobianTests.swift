import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Jacobians, Hessians and Hessian-vector products")
struct JacobianTests {
    /// y = tanh(W x + b) with W 3×2: J = diag(1 − y²)·W.
    static let w = t([1, -2, 0.5, 3, -1, 0.25], [3, 2])
    static func layer(_ x: Tensor) throws -> Tensor { try (w.matmul(x.reshaped([2, 1])).reshaped([3]) + 0.1).tanh() }

    @Test("forward, reverse and automatic Jacobians equal the closed form", arguments: JacobianMode.allCases)
    func closedForm(_ mode: JacobianMode) throws {
        let x = t([0.3, -0.8])
        let y = try Self.layer(x).doubles
        let wv = Self.w.doubles
        var expected: [Double] = []
        for i in 0..<3 {
            let scale: Double = 1 - y[i] * y[i]
            for j in 0..<2 { expected.append(scale * wv[i * 2 + j]) }
        }
        let j = try jacobian(of: Self.layer, at: x, mode: mode)
        #expect(j.shape == [3, 2])
        #expect(isClose(j.doubles, expected, tolerance: 1e-14))
    }

    @Test("a basis too large for one batched replay is taken in blocks, with the same Jacobian", arguments: [JacobianMode.forward, .reverse])
    func blocks(_ mode: JacobianMode) throws {
        let x = try Tensor.uniform([7], key: RandomKey(seed: 3), low: -1, high: 1)
        let f = { (x: Tensor) throws -> Tensor in try (Self.w.matmul(x.slice(starts: [0], ends: [2]).reshaped([2, 1])).reshaped([3]).tanh() * x.sum()).exp() }
        let whole = try jacobian(of: f, at: x, mode: mode)
        for budget in [1, 40, 100] {
            let blocked = try jacobian(of: f, at: x, mode: mode, batchElements: budget)
            #expect(blocked.shape == [3, 7])
            #expect(isClose(blocked.doubles, whole.doubles, tolerance: 1e-15), "budget \(budget)")
        }
    }

    @Test("the automatic mode picks forward for wide outputs and reverse for wide inputs")
    func automaticChoice() throws {
        #expect(JacobianMode.automatic.resolved(inputCount: 2, outputCount: 100) == .forward)
        #expect(JacobianMode.automatic.resolved(inputCount: 100, outputCount: 2) == .reverse)
        #expect(JacobianMode.automatic.resolved(inputCount: 5, outputCount: 5) == .forward)
        #expect(JacobianMode.reverse.resolved(inputCount: 2, outputCount: 100) == .reverse)
    }

    @Test("Jacobian shape is output shape + input shape; unrelated outputs give zeros")
    func shapes() throws {
        let x = t([1, 2, 3, 4, 5, 6], [2, 3])
        let j = try jacobian(of: { try $0.sum(axes: [1]) * 2 }, at: x)
        #expect(j.shape == [2, 2, 3])
        #expect(j.doubles == [2, 2, 2, 0, 0, 0, 0, 0, 0, 2, 2, 2])
        let zero = try jacobian(of: { _ in try Tensor.ones([2]) }, at: t([1, 2, 3]))
        #expect(zero.shape == [2, 3] && zero.doubles.allSatisfy { $0 == 0 })
        #expect(throws: AutodiffError.nonFloatingPointOutput(dtype: .int64)) { try jacobian(of: { try $0.argmax(axis: 0) }, at: t([1, 2])) }
    }

    @Test("Hessian of a quadratic form and of a non-quadratic function")
    func hessians() throws {
        // f = xᵀAx: H = A + Aᵀ.
        let a = t([2, 1, 0, -1, 3, 0.5, 4, 0, 1], [3, 3])
        let x = t([0.2, -0.4, 1.5])
        let h = try hessian(of: { x in try (x.reshaped([1, 3]).matmul(a).reshaped([3]) * x).sum() }, at: x)
        let av = a.doubles
        #expect(h.shape == [3, 3])
        let symmetric: [Double] = (0..<9).map { (k: Int) -> Double in av[k] + av[(k % 3) * 3 + k / 3] }
        #expect(isClose(h.doubles, symmetric))
        // f = Σ exp(x_i) x_{i+1} (a chain): H is tridiagonal.
        func chain(_ x: Tensor) throws -> Tensor { try (x.slice(starts: [0], ends: [3]).exp() * x.slice(starts: [1], ends: [4])).sum() }
        let y = t([0.1, 0.2, -0.3, 0.4])
        let hc = try hessian(of: chain, at: y).doubles
        let yv = y.doubles
        for i in 0..<4 {
            for j in 0..<4 {
                var e = 0.0
                if i == j, i < 3 { e = Foundation.exp(yv[i]) * yv[i + 1] }
                if j == i + 1 { e = Foundation.exp(yv[i]) }
                if i == j + 1 { e = Foundation.exp(yv[j]) }
                #expect(isClose([hc[i * 4 + j]], [e], tolerance: 1e-14), "H[\(i),\(j)]")
            }
        }
    }

    @Test("hvp equals the Hessian times the direction, for tensors and parameter collections")
    func hvpMatchesHessian() throws {
        func rosenbrock(_ x: Tensor) throws -> Tensor {
            let head = try x.slice(starts: [0], ends: [x.shape[0] - 1]), tail = try x.slice(starts: [1], ends: [x.shape[0]])
            let a = try tail - head * head, b = try 1 - head
            return try (a * a * 100 + b * b).sum()
        }
        let x = try Tensor.uniform([6], key: RandomKey(seed: 3), low: -1, high: 1)
        let v = try Tensor.uniform([6], key: RandomKey(seed: 4), low: -1, high: 1)
        let h = try hessian(of: rosenbrock, at: x)
        let expected = try h.matmul(v.reshaped([6, 1])).reshaped([6])
        let (g, hv) = try gradientAndHVP(at: x, direction: v, of: rosenbrock)
        #expect(isClose(hv.doubles, expected.doubles, tolerance: 1e-12))
        #expect(isClose(g.doubles, try gradient(at: x, of: rosenbrock).doubles, tolerance: 1e-14))
        #expect(isClose(try hvp(at: x, direction: v, of: rosenbrock).doubles, hv.doubles, tolerance: 0))
        // Reverse over reverse gives the same product.
        let ror = try gradient(at: x) { x in try (gradient(at: x, of: rosenbrock) * v).sum() }
        #expect(isClose(ror.doubles, expected.doubles, tolerance: 1e-12))

        // A collection: f(a, b) = Σ a²·b.
        let p = ["a": t([1, 2]), "b": t([3, -1])]
        let d = ["a": t([1, 0]), "b": t([0, 1])]
        let hp = try hvp(at: p, direction: d) { p in try (p["a"]! * p["a"]! * p["b"]!).sum() }
        // ∂²/∂a² = 2b, ∂²/∂a∂b = 2a: H·d = (2b·da + 2a·db, 2a·da).
        let expectedA: [Double] = [6, 4], expectedB: [Double] = [2, 0]
        #expect(hp["a"]!.doubles == expectedA)
        #expect(hp["b"]!.doubles == expectedB)
    }

    @Test("second-order transforms of a vector-valued function say so, naming the transform and the shape")
    func nonScalarSecondOrder() throws {
        let x = Tensor([1.0, 2])
        #expect(throws: AutodiffError.nonScalarFunction(transform: "hessian", shape: [2])) { try hessian(of: { try $0 * 2 }, at: x) }
        #expect(throws: AutodiffError.nonScalarFunction(transform: "hvp", shape: [2])) { try hvp(at: x, direction: x) { try $0.sin() } }
        #expect(throws: AutodiffError.nonScalarFunction(transform: "hvp", shape: [2])) { try gradientAndHVP(at: x, direction: x) { try $0.sin() } }
        #expect("\(AutodiffError.nonScalarFunction(transform: "hessian", shape: [2]))".hasPrefix("hessian needs a scalar-valued function, but it returned shape [2]"))
    }
}
