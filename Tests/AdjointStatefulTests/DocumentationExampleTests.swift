import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("documentation examples")
struct DocumentationExampleTests {
    @Test("the unroll example of Documentation/Checkpointing.md runs and agrees with storeAll")
    func checkpointingGuide() throws {
        typealias Step = TensorStep<Tensor, Tensor, Tensor, NoOutput>
        let step = Step { s, x, k in (try (s * k).tanh() + x, NoOutput()) }   // s' = tanh(k·s) + x
        let loss = Step.Loss.both(perStep: { s, _ in try s.pow(2).mean() }, final: { s in try s.sum() })
        let inputs: (Int) throws -> Tensor = { t in try Tensor.full([4], sin(Double(t) * 0.01)) }
        let result = try unroll(step, from: try .zeros([4]), parameters: Tensor([0.9]), steps: 2_000,
                                loss: loss, schedule: .binomial(snapshots: 32), inputs: inputs)
        #expect(result.report.forwardSteps == Revolve.forwardSteps(steps: 2_000, snapshots: 32))
        let reference = try unroll(step, from: try .zeros([4]), parameters: Tensor([0.9]), steps: 2_000,
                                   loss: loss, schedule: .storeAll, inputs: inputs)
        #expect(bitwiseEqual(result.parameterGradient, reference.parameterGradient))
        #expect(result.report.description.contains("forward steps"))

        var sensitivity = try OnlineSensitivity(step, state: try .zeros([4]), parameters: Tensor([0.9]), loss: loss)
        for t in 0..<2_000 { try sensitivity.advance(input: try inputs(t)) }
        let (L, dLdθ) = try sensitivity.total()
        #expect(abs(L - result.loss) <= 1e-9 * abs(L))
        #expect(isClose(dLdθ.doubles, result.parameterGradient.doubles, tolerance: 1e-9))
    }
}
