import Adjoint
import AdjointTestSupport
import Testing

@Suite("online forward sensitivity")
struct ForwardSensitivityTests {
    @Test("its gradient equals the unrolled reverse-mode gradient", arguments: [1, 5, 30])
    func matchesUnroll(steps: Int) throws {
        var online = try OnlineSensitivity(Fixture.step, state: Fixture.s0, parameters: Fixture.parameters, loss: Fixture.loss)
        for k in 0..<steps { try online.advance(input: Fixture.input(k)) }
        let (loss, gradient) = try online.total()
        let reverse = try Fixture.run(steps, .binomial(snapshots: 4))
        #expect(abs(loss - reverse.loss) <= 1e-13 * max(1, abs(loss)))
        for name in ["A", "b"] {
            #expect(isClose(gradient[name]!.doubles, reverse.parameterGradient[name]!.doubles, tolerance: 1e-11))
        }
        #expect(bitwiseEqual(online.state, reverse.finalState))
        #expect(online.steps == steps && online.sensitivity.count == 12)
    }

    @Test("a per-step-only loss and a final-only loss each match")
    func lossKinds() throws {
        for loss in [Fixture.Step.Loss.perStep(Fixture.loss.perStep!), .final(Fixture.loss.final!)] {
            var online = try OnlineSensitivity(Fixture.step, state: Fixture.s0, parameters: Fixture.parameters, loss: loss)
            for k in 0..<9 { try online.advance(input: Fixture.input(k)) }
            let reverse = try unroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, steps: 9, loss: loss,
                                     schedule: .storeAll, inputs: Fixture.input)
            let (value, gradient) = try online.total()
            #expect(abs(value - reverse.loss) <= 1e-13)
            #expect(isClose(gradient["A"]!.doubles, reverse.parameterGradient["A"]!.doubles, tolerance: 1e-11))
        }
    }

    @Test("before any step: the final-state term alone, or an error when there is nothing to differentiate")
    func noSteps() throws {
        let final = try OnlineSensitivity(Fixture.step, state: Fixture.s0, parameters: Fixture.parameters, loss: .final(Fixture.loss.final!))
        let (value, gradient) = try final.total()
        #expect(value == (try (Fixture.s0 * Fixture.s0).sum().item()))
        #expect(gradient["A"]!.doubles.allSatisfy { $0 == 0 })
        let perStep = try OnlineSensitivity(Fixture.step, state: Fixture.s0, parameters: Fixture.parameters,
                                            loss: .perStep(Fixture.loss.perStep!))
        #expect(throws: UnrollError.invalidSteps(0)) { try perStep.total() }
    }

    @Test("memory does not grow with the number of steps")
    func constantMemory() throws {
        // 512 KiB states, two parameters: keeping every step's state and sensitivities for 200 steps
        // would take 300 MiB.
        typealias Step = TensorStep<Tensor, Void, Tensor, NoOutput>
        let step = Step { s, _, p in (try (s * p.slice([0..<1])).sin() + p.slice([1..<2]), NoOutput()) }
        let s0 = try Tensor.uniform([65_536], key: RandomKey(seed: 3))
        func peakGrowth(steps: Int) throws -> Int {
            StoragePool.shared.resetPeak()
            let before = StoragePool.shared.statistics.peakBytes
            var online = try OnlineSensitivity(step, state: s0, parameters: t([0.9, 0.1]),
                                               loss: .perStep { s, _ in try s.mean() })
            for _ in 0..<steps { try online.advance(input: ()) }
            _ = try online.total()
            return StoragePool.shared.statistics.peakBytes - before
        }
        let short = try peakGrowth(steps: 5), long = try peakGrowth(steps: 200)
        #expect(long <= short + 96 << 20, "peak grew by \(short) bytes over 5 steps but \(long) bytes over 200")
    }
}
