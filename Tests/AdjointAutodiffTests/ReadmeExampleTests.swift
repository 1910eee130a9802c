import Adjoint
import Testing

/// The README's example, verbatim in substance: if this stops compiling or running, the README is wrong.
@Suite("README example")
struct ReadmeExampleTests {
    struct Dense: ParameterCollection {
        var weight: Tensor, bias: Tensor
        mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("weight", &weight)
            try visit("bias", &bias)
        }
    }

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
        let rosenbrock = { (x: Tensor) in try (x.slice(starts: [1], ends: [3]) - x.slice(starts: [0], ends: [2]).pow(2)).pow(2).sum() }
        let p = Tensor([0.5, -0.3, 1.2])
        let j = try jacobian(of: { try $0.tanh() * 2 }, at: p)
        let h = try hessian(of: rosenbrock, at: p)
        let hv = try hvp(at: p, direction: Tensor([1.0, 0, 0]), of: rosenbrock)
        #expect(j.shape == [3, 3] && h.shape == [3, 3])
        #expect(hv.doubles == [h.doubles[0], h.doubles[3], h.doubles[6]])
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
