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
        let storage = layer.weight.storage
        try layer.weight.add_(grads.weight * -0.1)
        #expect(layer.weight.storage === storage)          // updated in place
        try layer.bias.add_(grads.bias * -0.1)
        #expect(try loss(layer).item() < before.item())

        let (y, pullback) = try vjp(at: x) { x in try x.tanh() }
        let dx = try pullback(try y.onesLike())
        #expect(dx.shape == [8, 3])
        let (graph, _) = try Tape.trace(at: x) { x in try x.tanh().sum() }
        #expect(graph.description.contains("elementwise.tanh(%0) : f64[8,3]"))
    }
}
