import Adjoint
import AdjointTestSupport
import Testing

@ParameterCollection
struct ReadmeDense { var weight: Tensor, bias: Tensor }

/// The README's example, verbatim in substance: if this stops compiling or running, the README is wrong.
@Suite("README example")
struct ReadmeExampleTests {
    typealias Dense = ReadmeDense

    @Test("runs and trains")
    func example() throws {
        let key = RandomKey(seed: 42)
        var layer = Dense(weight: try .normal([3, 2], key: key, std: 0.1), bias: try .zeros([2]))
        let x = try Tensor.uniform([8, 3], key: key.fold(in: 1))
        let labels = Tensor([Int64](repeating: 1, count: 8))

        func loss(_ layer: Dense) throws -> Tensor {
            try (x.matmul(layer.weight) + layer.bias).crossEntropy(labels: labels).mean()
        }
        let (before, grads) = try valueWithGradient(at: layer, of: loss)
        let elements = layer.weight.rawPointer
        try layer.weight.add_(grads.weight * -0.1)
        #expect(layer.weight.rawPointer == elements)          // updated in place
        try layer.bias.add_(grads.bias * -0.1)
        #expect(try loss(layer).item() < before.item())

        #expect(layer.namedTensors.map(\.name) == ["weight", "bias"])
        let logits = try x.matmul(layer.weight)
        let picked = try logits[Tensor.arange(0, 8, dtype: .int64), labels]
        let hinge = try Tensor.select(picked.less(1), 1 - picked, 0.0).mean()
        #expect(picked.shape == [8] && picked.doubles == (0..<8).map { logits.doubles[2 * $0 + 1] })
        let hingeValue = try hinge.item()
        #expect(hinge.shape == [] && hingeValue > 0)
        let t = x.trapping
        let roughness = (t[.all, 1...] - t[.all, ..<(-1)]).pow(2).mean()
        #expect(roughness.shape == [] && roughness.item() > 0)

        let (y, pullback) = try vjp(at: x) { x in try x.tanh() }
        let dx = try pullback(try y.onesLike())
        #expect(dx.shape == [8, 3])
        let (graph, _) = try Tape.trace(at: x) { x in try x.tanh().sum() }
        #expect(graph.description.contains("elementwise.tanh(%0) : f64[8,3]"))

        let v = try Tensor.ones([8, 3])
        let (_, jv) = try jvp(at: x, direction: v) { x in try x.sin() * x }
        let (_, differential) = try linearize(at: x) { x in try x.sin() * x }
        let jv2 = try differential(v)
        #expect(jv.shape == [8, 3] && jv2.shape == [8, 3])
        let rosenbrock = { (x: Tensor) in try (x[1...] - x[..<(-1)].pow(2)).pow(2).sum() }
        let p = Tensor([0.5, -0.3, 1.2])
        let j = try jacobian(of: { try $0.tanh() * 2 }, at: p)
        let h = try hessian(of: rosenbrock, at: p)
        let hv = try hvp(at: p, direction: Tensor([1.0, 0, 0]), of: rosenbrock)
        #expect(j.shape == [3, 3] && h.shape == [3, 3])
        #expect(hv.doubles == [h.doubles[0], h.doubles[3], h.doubles[6]])
        let perExample = try vmap({ row in try gradient(at: p) { p in try (p * row).sin().sum() } }, over: x)
        #expect(perExample.shape == [8, 3])
        let row2 = try x.slice(starts: [2, 0], ends: [3, 3]).reshaped([3])
        #expect(isClose(try perExample.slice(starts: [2, 0], ends: [3, 3]).doubles, try (row2 * (p * row2).cos()).doubles, tolerance: 1e-14))
        // ∂²/∂x0² of (x1 − x0²)² = 12·x0² − 4·x1.
        #expect(isClose([h.doubles[0]], [12 * 0.25 - 4 * -0.3]))

        let relax = Scan<Tensor, Tensor, Tensor, Tensor>(steps: 1_000, inputs: { k in Tensor([0.01 * Double(k % 7)]) }) { s, u, k in
            let next = try (s * k).tanh() + u
            return (next, next)
        }
        let misfit = TrajectoryLoss<Tensor, Tensor>.final { s in try (s - 0.5).pow(2).sum() }
        let fit = try relax.valueWithGradient(from: Tensor([1.0]), parameters: Tensor([0.9]), loss: misfit,
                                              schedule: .binomial(snapshots: 8))
        let curvature = try relax.hvp(from: Tensor([1.0]), parameters: Tensor([0.9]), direction: Tensor([1.0]), loss: misfit,
                                      schedule: .binomial(snapshots: 8)).hvp
        #expect(fit.report.peakSnapshots <= 8 && fit.parameterGradient.shape == [1] && curvature.shape == [1])
        let (g, hk) = try (gradient(at: Tensor([0.9])) { k in try misfit.final!(relax(from: Tensor([1.0]), parameters: k).final) },
                           hvp(at: Tensor([0.9]), direction: Tensor([1.0])) { k in try misfit.final!(relax(from: Tensor([1.0]), parameters: k).final) })
        #expect(isClose(fit.parameterGradient.doubles, g.doubles, tolerance: 1e-12) && isClose(curvature.doubles, hk.doubles, tolerance: 1e-10))
    }
}

/// The example of Documentation/Derivatives.md.
@Suite("Derivatives guide example")
struct DerivativesGuideTests {
    @Test("runs and agrees with itself")
    func example() throws {
        func f(_ x: Tensor) throws -> Tensor { try (x.sin() * x).sum() }
        let x = Tensor([0.5, -1.0, 2.0]), v = Tensor([1.0, 0, 0])

        let g = try gradient(at: x, of: f)
        let (_, dfv) = try jvp(at: x, direction: v, of: f)
        let (_, d) = try linearize(at: x, of: f)
        let j = try jacobian(of: { try $0.sin() * $0 }, at: x)
        let h = try hessian(of: f, at: x)
        let hv = try hvp(at: x, direction: v, of: f)
        let third = try gradient(at: x) { x in try gradient(at: x) { x in try gradient(at: x, of: f).sum() }.sum() }
        let dv = try d(v)
        #expect(dfv.doubles == [g.doubles[0]])
        #expect(dv.doubles == dfv.doubles)
        #expect(j.shape == [3, 3] && h.shape == [3, 3] && third.shape == [3])
        #expect(hv.doubles == [h.doubles[0], h.doubles[3], h.doubles[6]])
    }
}
