import Adjoint
import AdjointTestSupport
import Testing

@ParameterCollection
struct MacroEncoder {
    var weight: Tensor
    var bias: Tensor
}

@ParameterCollection
struct MacroModel {
    var encoder: MacroEncoder
    var heads: [Tensor]
    var scale: Tensor?
    let depth: Int
    @ParameterIgnored var label = "model"
}

/// `@ParameterCollection` derives `visitTensors`: names, order, gradients and what it leaves out.
@Suite("@ParameterCollection")
struct ParameterCollectionMacroTests {
    static func model() throws -> MacroModel {
        MacroModel(encoder: MacroEncoder(weight: try Tensor([1.0, 2, 3, 4], shape: [2, 2]), bias: Tensor([0.5, -0.5])),
                   heads: [Tensor([2.0]), Tensor([3.0])], scale: Tensor(1.5), depth: 2)
    }

    @Test("every stored var is visited in declaration order with a dotted name; lets and ignored properties are not")
    func names() throws {
        let m = try Self.model()
        #expect(m.namedTensors.map(\.name) == ["encoder.weight", "encoder.bias", "heads.0", "heads.1", "scale"])
        var without = m
        without.scale = nil
        #expect(without.tensors.count == 4)
    }

    @Test("a derived collection differentiates like a hand-written one")
    func gradients() throws {
        let x = try Tensor([1.0, -1])
        let g = try gradient(at: try Self.model()) { m in
            let h = try (x.matmul(m.encoder.weight) + m.encoder.bias).tanh()
            return try (h * m.heads[0] + h * m.heads[1]).sum() * m.scale!
        }
        #expect(g.depth == 2 && g.label == "model")
        let h = try (x.matmul(try Self.model().encoder.weight) + Tensor([0.5, -0.5])).tanh()
        let (sum, scaled) = (try h.sum().item(), try (h * 5).sum().item())
        #expect(isClose(g.heads[0].doubles, [sum * 1.5]) && isClose(g.scale!.doubles, [scaled]))
        #expect(g.encoder.weight.shape == [2, 2] && g.encoder.bias.shape == [2])
    }
}
