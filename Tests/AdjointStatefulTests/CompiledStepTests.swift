import Adjoint
@testable import AdjointStateful
import AdjointTestSupport
import Testing
import Dispatch
import Synchronization
import Foundation

@Suite("Compiled steps")
struct CompiledStepTests {
    static func compiled() throws -> CompiledStep<Tensor, [String: Tensor], Tensor> {
        try CompiledStep(Fixture.step, loss: Fixture.loss, state: Fixture.s0, input: Fixture.input(0), parameters: Fixture.parameters)
    }

    @Test("a compiled step unrolls to the TensorStep's loss and gradients, bitwise, under any schedule",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 3), .online(snapshots: 4)])
    func matchesTensorStep(_ schedule: CheckpointSchedule) throws {
        let step = try Self.compiled()
        let counts = step.operationCounts
        #expect(counts.forward > 0 && counts.fusedForward >= counts.forward && counts.fusedBackward > 0, "\(counts)")
        let compiled = try unroll(step, from: Fixture.s0, parameters: Fixture.parameters, steps: 40, loss: Fixture.loss,
                                  schedule: schedule, inputs: Fixture.input)
        let reference = try Fixture.run(40, .storeAll)
        #expect(compiled.loss.bitPattern == reference.loss.bitPattern)
        #expect(zip(compiled.parameterGradient.tensors, reference.parameterGradient.tensors).allSatisfy(bitwiseEqual))
        #expect(bitwiseEqual(compiled.initialStateGradient, reference.initialStateGradient) && bitwiseEqual(compiled.finalState, reference.finalState))
        #expect(bitwiseEqual(try step.step(Fixture.s0, input: Fixture.input(3), parameters: Fixture.parameters),
                             try Fixture.step.step(Fixture.s0, input: Fixture.input(3), parameters: Fixture.parameters)))
    }

    /// `unroll` through a generic function: the static type says nothing of the engine.
    static func genericUnroll<S: StepFunction>(_ step: S, from s0: S.State, parameters: S.Parameters, steps: Int, loss: S.Loss,
                                              schedule: CheckpointSchedule, engine: UnrollEngine?,
                                              inputs: @escaping (Int) throws -> S.Input) throws -> UnrollResult<S> {
        try unroll(step, from: s0, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                   options: UnrollOptions(engine: engine), inputs: inputs)
    }

    @Test("the packed engine equals the step-function engine bitwise, report included, under every schedule",
          arguments: [CheckpointSchedule.storeAll, .uniform(every: 7), .binomial(snapshots: 3), .online(snapshots: 4),
                      .multiTier(ram: 2, disk: 2), .truncated(window: 6)])
    func packedMatchesGeneric(_ schedule: CheckpointSchedule) throws {
        let step = try Self.compiled()
        let packed = try unroll(step, from: Fixture.s0, parameters: Fixture.parameters, steps: 40, loss: Fixture.loss,
                                schedule: schedule, options: UnrollOptions(engine: .packed), inputs: Fixture.input)
        let generic = try unroll(step, from: Fixture.s0, parameters: Fixture.parameters, steps: 40, loss: Fixture.loss,
                                 schedule: schedule, options: UnrollOptions(engine: .stepFunction), inputs: Fixture.input)
        #expect(packed.report.engine == .packed && generic.report.engine == .stepFunction)
        var same = packed.report
        same.engine = .stepFunction
        #expect(packed.loss.bitPattern == generic.loss.bitPattern && same == generic.report, "\(packed.report)")
        #expect(zip(packed.parameterGradient.tensors, generic.parameterGradient.tensors).allSatisfy(bitwiseEqual))
        #expect(bitwiseEqual(packed.initialStateGradient, generic.initialStateGradient) && bitwiseEqual(packed.finalState, generic.finalState))
        #expect(schedule == .storeAll || packed.report.recomputations > 0 || schedule == .truncated(window: 6))
    }

    @Test("the engine is chosen by the options and the step's dynamic type, never by the static type it is held as")
    func engineChoice() throws {
        let step = try Self.compiled()
        for engine: UnrollEngine? in [nil, .packed, .stepFunction] {
            let direct = try unroll(step, from: Fixture.s0, parameters: Fixture.parameters, steps: 8, loss: Fixture.loss,
                                    schedule: .storeAll, options: UnrollOptions(engine: engine), inputs: Fixture.input)
            let generic = try Self.genericUnroll(step, from: Fixture.s0, parameters: Fixture.parameters, steps: 8, loss: Fixture.loss,
                                                 schedule: .storeAll, engine: engine, inputs: Fixture.input)
            #expect(direct.report.engine == (engine ?? .packed) && generic.report.engine == direct.report.engine)
        }
        // A step that is not compiled runs through the protocol; asking it for the packed engine is an error.
        let tensorStep = try Self.genericUnroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, steps: 4, loss: Fixture.loss,
                                                schedule: .storeAll, engine: nil, inputs: Fixture.input)
        #expect(tensorStep.report.engine == .stepFunction)
        #expect(throws: UnrollError.engineUnavailable(.packed, step: "\(type(of: Fixture.step))")) {
            try Self.genericUnroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, steps: 4, loss: Fixture.loss,
                                   schedule: .storeAll, engine: .packed, inputs: Fixture.input)
        }
    }

    @Test("a step without an input compiles and unrolls without inputs, bitwise the TensorStep over Void inputs")
    func noInput() throws {
        let loss = TrajectoryLoss<Tensor, NoOutput>.both(perStep: { s, _ in try (s * s).sum() }, final: { s in try s.sum() })
        let s0 = Tensor([0.5, -0.25, 1.0]), theta = Tensor([0.8, 0.1])
        func body(_ s: Tensor, _ p: Tensor) throws -> (state: Tensor, output: NoOutput) {
            (try (s * p[0]).tanh() + p[1], NoOutput())
        }
        let reference = try unroll(TensorStep<Tensor, Void, Tensor, NoOutput> { s, _, p in try body(s, p) },
                                   from: s0, parameters: theta, steps: 25, loss: loss, schedule: .binomial(snapshots: 3))
        for native in [NativeCode.off, .automatic] {
            let step = try CompiledStep(loss: loss, state: s0, parameters: theta, native: native, body)
            #expect(!step.takesInput)
            let result = try unroll(step, from: s0, parameters: theta, steps: 25, loss: loss, schedule: .binomial(snapshots: 3))
            #expect(result.report.engine == .packed)
            #expect(result.loss.bitPattern == reference.loss.bitPattern)
            #expect(bitwiseEqual(result.parameterGradient, reference.parameterGradient) && bitwiseEqual(result.finalState, reference.finalState))
        }
        #expect(throws: UnrollError.inputRequired(step: "\(CompiledStep<Tensor, [String: Tensor], Tensor>.self)")) {
            try unroll(try Self.compiled(), from: Fixture.s0, parameters: Fixture.parameters, steps: 3, loss: Fixture.loss)
        }
    }

    @Test("new parameter values flow through the plan (they are arguments, not captures)")
    func newParameters() throws {
        let step = try Self.compiled()
        var other = Fixture.parameters
        other["b"] = t([0.3, 0.1, -0.2])
        let a = try unroll(step, from: Fixture.s0, parameters: other, steps: 10, loss: Fixture.loss, schedule: .storeAll, inputs: Fixture.input)
        let b = try Fixture.run(10, .storeAll, parameters: other)
        #expect(a.loss.bitPattern == b.loss.bitPattern)
    }

    @Test("one compiled step unrolled again and again — other parameters, schedules, threads — reuses its frames and stays exact")
    func repeatedUnrolls() throws {
        let step = try Self.compiled()
        var other = Fixture.parameters
        other["b"] = t([0.3, 0.1, -0.2])
        let parameterSets = [Fixture.parameters, other]
        let references = try parameterSets.map { try Fixture.run(24, .storeAll, parameters: $0) }
        func check(_ k: Int, _ schedule: CheckpointSchedule) throws -> Bool {
            // Every third unroll with records that keep only their carried bytes (the packed step
            // the last unroll left is then replaced).
            var options = UnrollOptions()
            options.recordsKeepCarriedBytes = k % 3 == 1 ? true : nil
            let result = try unroll(step, from: Fixture.s0, parameters: parameterSets[k % 2], steps: 24, loss: Fixture.loss,
                                    schedule: schedule, options: options, inputs: Fixture.input)
            let reference = references[k % 2]
            return result.loss.bitPattern == reference.loss.bitPattern
                && zip(result.parameterGradient.tensors, reference.parameterGradient.tensors).allSatisfy(bitwiseEqual)
                && bitwiseEqual(result.initialStateGradient, reference.initialStateGradient)
        }
        let schedules: [CheckpointSchedule] = [.storeAll, .binomial(snapshots: 3), .storeAll, .uniform(every: 5), .binomial(snapshots: 30)]
        for (k, schedule) in schedules.enumerated() { #expect(try check(k, schedule), "unroll \(k), \(schedule)") }
        // Equal values in new tensors use the frames prepared for the last ones; any other values
        // are new parameters.
        var nudged = Fixture.parameters
        let b = Fixture.parameters["b"]!.doubles
        nudged["b"] = t([b[0] + 1.0 / 1024] + b.dropFirst())
        let nudgedReference = try Fixture.run(24, .storeAll, parameters: nudged)
        for (parameters, reference) in [(Fixture.parameters, references[0]), (Fixture.parameters, references[0]), (nudged, nudgedReference)] {
            for schedule in [CheckpointSchedule.storeAll, .binomial(snapshots: 3)] {
                let copy = parameters.mapValues { t($0.doubles, $0.shape) }
                let result = try unroll(step, from: Fixture.s0, parameters: copy, steps: 24, loss: Fixture.loss, schedule: schedule, inputs: Fixture.input)
                #expect(result.loss.bitPattern == reference.loss.bitPattern
                        && zip(result.parameterGradient.tensors, reference.parameterGradient.tensors).allSatisfy(bitwiseEqual), "\(schedule)")
            }
        }
        #expect(nudgedReference.loss.bitPattern != references[0].loss.bitPattern)
        let failures = Lock(0)
        let shared = UncheckedSendable(check)   // the point: one compiled step unrolled from several threads at once
        DispatchQueue.concurrentPerform(iterations: 8) { k in
            if (try? shared.value(k, k % 3 == 0 ? .storeAll : .binomial(snapshots: 4))) != true { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
    }

    @Test("a branch written with select compiles; a Swift branch on a traced value is refused")
    func controlFlow() throws {
        typealias Step = TensorStep<Tensor, Tensor, Tensor, NoOutput>
        let loss = Step.Loss.final { s in try (s * s).sum() }
        let s0 = t([1.0, 0.4]), p = t([0.9]), input = { (k: Int) in t([0.05 * Double(k % 7) - 0.2]) }
        let bounce = Step { s, x, p in
            let next = try s + x * p
            return (try Tensor.select(next.less(next.scalarLike(0)), try next.neg() * 0.8, next), NoOutput())
        }
        let compiled = try CompiledStep(bounce, loss: loss, state: s0, input: input(0), parameters: p)
        #expect(compiled.programStatistics.record.fallbacks > 0)   // the comparison and the select
        let a = try unroll(compiled, from: s0, parameters: p, steps: 30, loss: loss, schedule: .binomial(snapshots: 4), inputs: input)
        let b = try unroll(bounce, from: s0, parameters: p, steps: 30, loss: loss, schedule: .storeAll, inputs: input)
        #expect(a.loss.bitPattern == b.loss.bitPattern && bitwiseEqual(a.parameterGradient, b.parameterGradient)
                && bitwiseEqual(a.initialStateGradient, b.initialStateGradient))

        let branchy = Step { s, x, p in
            (try s.sum().item() > 0 ? try s - x * p : try s + x * p, NoOutput())
        }
        #expect { _ = try CompiledStep(branchy, loss: loss, state: s0, input: input(0), parameters: p) } throws: { error in
            guard case let .valueReadWhileTracing(positions)? = error as? UnrollError else { return false }
            return positions == [1] && "\(error)".contains("Tensor.select")
        }
    }

    @Test("states with empty tensors unroll packed, hashed and verified, like the tensor step")
    func emptyTensors() throws {
        typealias Step = TensorStep<[String: Tensor], Tensor, Tensor, NoOutput>
        let loss = Step.Loss.final { s in try (s["x"]! * s["x"]!).sum() }
        let s0: [String: Tensor] = ["x": t([1.0, -0.5]), "e": try Tensor.zeros([0])]
        let p = t([0.9]), input = { (k: Int) in t([0.01 * Double(k)]) }
        let step = Step { s, x, p in (["x": try s["x"]! * p + x, "e": try s["e"]! * 2], NoOutput()) }
        let compiled = try CompiledStep(step, loss: loss, state: s0, input: input(0), parameters: p)
        for schedule in [CheckpointSchedule.binomial(snapshots: 3), .storeAll] {
            // Records with a frame each (the choice for so small a step) and with the carried bytes only.
            for carried in [nil, true] {
                var options = UnrollOptions()
                options.recordsKeepCarriedBytes = carried
                let a = try unroll(compiled, from: s0, parameters: p, steps: 12, loss: loss, schedule: schedule, options: options, inputs: input)
                let b = try unroll(step, from: s0, parameters: p, steps: 12, loss: loss, schedule: .storeAll, inputs: input)
                #expect(a.loss.bitPattern == b.loss.bitPattern && bitwiseEqual(a.parameterGradient, b.parameterGradient))
                #expect(a.finalState["e"]!.shape == [0] && bitwiseEqual(a.initialStateGradient["x"]!, b.initialStateGradient["x"]!))
            }
        }
    }

    /// A heat-equation step on `n` float64 cells with an input, a loop-invariant use of the
    /// parameters and a term whose derivative reads the state: `s ← s + p₀²·Δs + p₁·tanh(s) + s²/64 + x`.
    static func heat(_ n: Int, native: NativeCode) throws -> (step: CompiledStep<Tensor, Tensor, Tensor>, s0: Tensor, p: Tensor,
                                                               loss: CompiledStep<Tensor, Tensor, Tensor>.Loss, input: (Int) -> Tensor) {
        let loss = CompiledStep<Tensor, Tensor, Tensor>.Loss.both(perStep: { s, _ in try s.slice([0..<4]).sum() }, final: { s in try (s * s).mean() })
        let s0 = t((0..<n).map { sin(Double($0) * 0.37) }), p = t([0.45, 0.05])
        let input = { (k: Int) in t((0..<n).map { 1e-3 * Double(($0 + k) % 5) }) }
        let tensorStep = TensorStep<Tensor, Tensor, Tensor, Tensor> { s, x, p in
            let zero = try Tensor.zeros([1])
            let left = try Tensor.concat([zero, s.slice([0..<(n - 1)])]), right = try Tensor.concat([s.slice([1..<n]), zero])
            let alpha = try p.slice([0..<1]) * p.slice([0..<1])
            return (try s + alpha * (left + right - s * 2) + p.slice([1..<2]) * s.tanh() + s * s / 64 + x, s)
        }
        return (try CompiledStep(tensorStep, loss: loss, state: s0, input: input(0), parameters: p, native: native), s0, p, loss, input)
    }

    @Test("records keep a frame or only the bytes their pullback reads: the same results, bitwise, and the choice goes by size",
          arguments: [NativeCode.off, .automatic])
    func recordForms(_ native: NativeCode) throws {
        for n in [7, 20_000] {
            let (step, s0, p, loss, input) = try Self.heat(n, native: native)
            let other = t([0.3, -0.02])
            func run(_ carried: Bool?, _ schedule: CheckpointSchedule, _ parameters: Tensor) throws -> (UnrollResult<CompiledStep<Tensor, Tensor, Tensor>>, Bool) {
                var options = UnrollOptions()
                options.recordsKeepCarriedBytes = carried
                let result = try unroll(step, from: s0, parameters: parameters, steps: 12, loss: loss, schedule: schedule, options: options, inputs: input)
                let kept = try #require(step.packedSteps.take())
                step.packedSteps.keep(kept)
                return (result, kept.recorder.keepsCarriedBytes)
            }
            for schedule in [CheckpointSchedule.storeAll, .binomial(snapshots: 3), .uniform(every: 4)] {
                // Alternating parameters: free records and the work frame are re-prepared.
                for parameters in [p, other, p] {
                    let (frames, a) = try run(false, schedule, parameters), (carried, b) = try run(true, schedule, parameters)
                    let (chosen, c) = try run(nil, schedule, parameters)
                    #expect(!a && b && c == (n > 7), "n \(n)")
                    for result in [carried, chosen] {
                        #expect(result.loss.bitPattern == frames.loss.bitPattern, "n \(n), \(schedule)")
                        #expect(bitwiseEqual(result.parameterGradient, frames.parameterGradient) && bitwiseEqual(result.initialStateGradient, frames.initialStateGradient)
                                && bitwiseEqual(result.finalState, frames.finalState), "n \(n), \(schedule)")
                    }
                }
            }
            let recorder = try #require(step.packedSteps.take()).recorder
            let frameBytes = step.programStatistics.record.frameBytes
            // The state is held, not copied. Small: the input and two values of the step's size
            // are copied out and back. Large: the backward computes the values it reads again from
            // the state (`Graph.rematerializing`), and nothing is copied.
            if n == 7 {
                #expect(recorder.carriedBytes == 3 * 8 * n && recorder.carriedBytes * 2 <= frameBytes, "n \(n): \(recorder.carriedBytes) of \(frameBytes)")
            } else {
                #expect(recorder.carriedBytes == 0, "n \(n): \(recorder.carriedBytes) of \(frameBytes)")
                // And the compiled unroll is bitwise the tensor step's.
                let compiled = try unroll(step, from: s0, parameters: p, steps: 12, loss: loss, schedule: .storeAll, inputs: input)
                let eager = try unroll(step.base, from: s0, parameters: p, steps: 12, loss: loss, schedule: .storeAll, inputs: input)
                #expect(compiled.loss.bitPattern == eager.loss.bitPattern && bitwiseEqual(compiled.parameterGradient, eager.parameterGradient)
                        && bitwiseEqual(compiled.initialStateGradient, eager.initialStateGradient))
            }
            #expect(recorder.pullbackReadsState)
            // With native code over a large state, records keeping their carried bytes hand the
            // program the buffers themselves: the state and the cotangent read, the next state
            // and the state cotangent written (the results above are bitwise those of frames per
            // record, which copy everything).
            if native != .off, n > 7 {
                #expect(recorder.bindsInPlace)
                // (This loss reads each next state after the step, so that one is copied.)
                #expect(recorder.stateSlots.allSatisfy { $0 != nil } && recorder.nextSlots.allSatisfy { $0 == nil }
                        && recorder.cotangentSlots.allSatisfy { $0 != nil } && recorder.stateCotangentSlots.allSatisfy { $0 != nil },
                        "\(recorder.stateSlots) \(recorder.nextSlots) \(recorder.cotangentSlots) \(recorder.stateCotangentSlots)")
                // Where the ordinary kernels run (the float64 debug policy), everything is copied:
                // the same results for this float64 step.
                let (plain, _) = try run(true, .storeAll, p)
                let policy = ExecutionPolicy(determinism: .strict, float64Debug: true)
                let (debug, _) = try ExecutionPolicy.with(policy) { try run(true, .storeAll, p) }
                #expect(bitwiseEqual(debug.parameterGradient, plain.parameterGradient) && bitwiseEqual(debug.initialStateGradient, plain.initialStateGradient))
            }
        }
    }
}
