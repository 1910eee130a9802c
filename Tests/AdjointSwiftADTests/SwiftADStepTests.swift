import _Differentiation
import Foundation
import Adjoint
import AdjointExamples
import AdjointSwiftAD
import AdjointSwiftADExamples
import AdjointTestSupport
import Testing

@Suite("_Differentiation adapter")
struct SwiftADStepTests {
    @Test("the thermal model in plain Swift matches the tensor model and its gradient")
    func thermalMatchesTensorModel() throws {
        let plain = ThermalSwiftAD(), tensor = ThermalModel()
        let u = (0..<21).map { 0.01 * Double($0 % 5) - 0.02 }
        let a = try plain.gradient(parameters: u, steps: 40, schedule: .binomial(snapshots: 5))
        let b = try tensor.gradient(parameters: try Tensor(u, shape: [21]), steps: 40, schedule: .storeAll)
        #expect(abs(a.loss - b.loss) <= 1e-12 * max(1, abs(b.loss)))
        #expect(isClose(a.parameterGradient.base, b.parameterGradient.doubles, tolerance: 1e-9))
        #expect(isClose(a.finalState.slab, b.finalState.slab.doubles, tolerance: 1e-12))
        let direct = plain.plainGradient(parameters: u, steps: 40)
        #expect(abs(direct.loss - a.loss) <= 1e-13 * max(1, abs(a.loss)))
        #expect(isClose(direct.gradient, a.parameterGradient.base, tolerance: 1e-11))
    }

    @Test("every schedule gives storeAll's gradient bitwise", arguments: [
        CheckpointSchedule.uniform(every: 4), .binomial(snapshots: 3), .online(snapshots: 4), .multiTier(ram: 1, disk: 2),
    ])
    func schedules(_ schedule: CheckpointSchedule) throws {
        let plain = ThermalSwiftAD()
        let u = plain.nominalParameters
        let reference = try plain.gradient(parameters: u, steps: 33, schedule: .storeAll)
        let result = try plain.gradient(parameters: u, steps: 33, schedule: schedule)
        #expect(result.loss.bitPattern == reference.loss.bitPattern)
        #expect(result.parameterGradient.base.map(\.bitPattern) == reference.parameterGradient.base.map(\.bitPattern))
        #expect(result.report.replayChecks > 0)
    }

    @Test("a scalar step with per-step and final losses matches its closed form")
    func scalarDecay() throws {
        // s[t+1] = k·s[t] + x, ℓ = s², final s²: derivative by hand.
        let step = SwiftADStep<Double, Double, Double> { s, x, k in s * k + x }
        let loss = SwiftADLoss<Double>.both(perStep: { s in s * s }, final: { s in s * s })
        let k = 0.9, x = 0.1, T = 25
        let result = try unroll(step, from: 1.0, parameters: k, steps: T, loss: loss, schedule: .binomial(snapshots: 3)) { _ in x }
        var s = 1.0, ds = 0.0, L = 0.0, dL = 0.0
        for _ in 0..<T {
            ds = s + k * ds
            s = k * s + x
            L += s * s
            dL += 2 * s * ds
        }
        L += s * s
        dL += 2 * s * ds
        #expect(abs(result.loss - L) < 1e-12)
        #expect(abs(result.parameterGradient - dL) < 1e-10)
    }

    @Test("the struct-of-scalars example: deferred and eager recording agree bitwise, with each other and with plain _Differentiation, under every schedule",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 3), .multiTier(ram: 1, disk: 2)])
    func oscillator(schedule: CheckpointSchedule) throws {
        let m = ControlledOscillator(), w = m.nominalParameters
        let deferred = try m.gradient(parameters: w, steps: 60, schedule: schedule, recording: .deferred)
        let eager = try m.gradient(parameters: w, steps: 60, schedule: schedule, recording: .eager)
        let plain = m.plainGradient(parameters: w, steps: 60)
        #expect(deferred.loss.bitPattern == eager.loss.bitPattern && deferred.loss.bitPattern == plain.loss.bitPattern)
        #expect(deferred.parameterGradient.base == eager.parameterGradient.base)
        #expect(deferred.parameterGradient.base == plain.gradient)
        #expect(deferred.finalState == eager.finalState)
        #expect(deferred.parameterGradient.base.contains { $0 != 0 } && deferred.report.recordedSteps == 60)
    }

    @Test("per-step losses are seeded the same way by both recordings")
    func perStepLossBothRecordings() throws {
        @differentiable(reverse) func decay(_ s: Double, _ x: Double, _ k: Double) -> Double { s * k + x }
        let loss = SwiftADLoss<Double>.both(perStep: { s in s * s }, final: { s in 3 * s })
        let results = try [SwiftADStep<Double, Double, Double>.Recording.deferred, .eager].map { recording in
            try unroll(SwiftADStep<Double, Double, Double>(recording: recording, decay), from: 1.0, parameters: 0.9, steps: 25,
                       loss: loss, schedule: .binomial(snapshots: 2)) { t in 0.01 * Double(t % 3) }
        }
        #expect(results[0].loss == results[1].loss && results[0].parameterGradient == results[1].parameterGradient)
        #expect(results[0].initialStateGradient == results[1].initialStateGradient)
    }

    @Test("the struct-of-scalars example with struct parameters: closure and body steps, both recordings, every engine, equal plain _Differentiation bitwise",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 4)])
    func oscillatorGains(schedule: CheckpointSchedule) throws {
        let m = ControlledOscillator()
        let plain = m.plainGradient(gains: .init(), steps: 50)
        for recording in [ControlledOscillator.GainsStep.Recording.deferred, .eager] {
            let r = try m.gradient(gains: .init(), steps: 50, schedule: schedule, recording: recording)
            #expect(r.loss.bitPattern == plain.loss.bitPattern && r.parameterGradient == plain.gradient)
            for engine: UnrollEngine? in [nil, .stepFunction] {
                let b = try m.bodyGradient(gains: .init(), steps: 50, schedule: schedule, recording: recording, options: UnrollOptions(engine: engine))
                #expect(b.loss.bitPattern == plain.loss.bitPattern && b.parameterGradient == plain.gradient)
                #expect(b.finalState == r.finalState && b.initialStateGradient == r.initialStateGradient)
                #expect(b.report.engine == (schedule == .storeAll && engine == nil ? .loop : .stepFunction))
            }
        }
        #expect(plain.gradient.w0 != 0 && plain.gradient.w19 != 0)
    }

    @Test("a @SwiftADStepBody step with an array in its state and per-step and final losses equals the closure step bitwise, under every engine and schedule",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 3), .uniform(every: 4)])
    func bodyStepMatchesClosureStep(schedule: CheckpointSchedule) throws {
        let mixer = Mixer(rate: 0.3)
        let closure = SwiftADStep<Mixed, Double, [Double]> { s, x, p in Mixer(rate: 0.3)(s, x, p) }
        // The losses read part of the state only: the cotangents the step sees must be densified.
        let loss = SwiftADLoss<Mixed>.both(perStep: { s in s.x * s.x + s.ys[1] }, final: { s in s.ys[0] })
        let initial = Mixed(x: 0.5, ys: [0.2, -0.1]), theta = [0.9, 0.7]
        let input: (Int) -> Double = { 0.01 * Double($0 % 5) }
        let reference = try unroll(closure, from: initial, parameters: theta, steps: 30, loss: loss, schedule: .storeAll, inputs: input)
        for recording in [SwiftADBodyStep<Mixer>.Recording.deferred, .eager] {
            for engine: UnrollEngine? in [nil, .stepFunction] {
                let r = try unroll(SwiftADBodyStep(mixer, recording: recording), from: initial, parameters: theta, steps: 30, loss: loss,
                                   schedule: schedule, options: UnrollOptions(engine: engine), inputs: input)
                #expect(r.loss.bitPattern == reference.loss.bitPattern)
                #expect(r.parameterGradient.base.map(\.bitPattern) == reference.parameterGradient.base.map(\.bitPattern))
                #expect(r.initialStateGradient.x.bitPattern == reference.initialStateGradient.x.bitPattern)
                #expect(r.initialStateGradient.ys.base.map(\.bitPattern) == reference.initialStateGradient.ys.base.map(\.bitPattern))
                #expect(r.finalState == reference.finalState)
                let loop = schedule == .storeAll && engine == nil
                #expect(r.report.engine == (loop ? .loop : .stepFunction))
                #expect(r.report.recordedSteps == 30 && r.report.steps == 30 && r.report.schedule == schedule.description)
            }
        }
        #expect(reference.parameterGradient.base.allSatisfy { $0 != 0 } && reference.initialStateGradient.ys.base.count == 2)
    }

    @Test("the loop engine: progress per step, its report, and the engines a step and schedule do not have are typed errors")
    func loopEngine() throws {
        let step = SwiftADBodyStep(Mixer(rate: 0.3))
        let initial = Mixed(x: 0.5, ys: [0.2, -0.1])
        var seen: [Int] = []
        let options = UnrollOptions(progress: { done, total in seen.append(done); #expect(total == 12) })
        let r = try unroll(step, from: initial, parameters: [0.9, 0.7], steps: 12, loss: .final { s in s.x }, schedule: .storeAll,
                           options: options) { _ in 0.1 }
        #expect(seen == Array(1...12))
        var report = UnrollReport()
        (report.steps, report.engine, report.schedule, report.recordedSteps, report.peakRecordedSteps, report.inputReads)
            = (12, .loop, "storeAll", 12, 12, 12)
        #expect(r.report == report)
        #expect(throws: UnrollError.engineUnavailable(.loop, step: "\(SwiftADBodyStep<Mixer>.self)")) {
            try unroll(step, from: initial, parameters: [0.9, 0.7], steps: 12, loss: .final { s in s.x }, schedule: .binomial(snapshots: 2),
                       options: UnrollOptions(engine: .loop)) { _ in 0.1 }
        }
        #expect(throws: UnrollError.engineUnavailable(.packed, step: "\(SwiftADBodyStep<Mixer>.self)")) {
            try unroll(step, from: initial, parameters: [0.9, 0.7], steps: 12, loss: .final { s in s.x }, schedule: .storeAll,
                       options: UnrollOptions(engine: .packed)) { _ in 0.1 }
        }
        let closure = SwiftADStep<Mixed, Double, [Double]> { s, x, p in Mixer(rate: 0.3)(s, x, p) }
        #expect(throws: UnrollError.engineUnavailable(.loop, step: "\(SwiftADStep<Mixed, Double, [Double]>.self)")) {
            try unroll(closure, from: initial, parameters: [0.9, 0.7], steps: 12, loss: .final { s in s.x }, schedule: .storeAll,
                       options: UnrollOptions(engine: .loop)) { _ in 0.1 }
        }
        #expect(throws: UnrollError.invalidSteps(0)) {
            try unroll(step, from: initial, parameters: [0.9, 0.7], steps: 0, loss: .final { s in s.x }, schedule: .storeAll) { _ in 0.1 }
        }
        struct Unreadable: Error, Equatable {}
        #expect(throws: Unreadable()) {
            try unroll(step, from: initial, parameters: [0.9, 0.7], steps: 12, loss: .final { s in s.x }, schedule: .storeAll) { k in
                if k == 7 { throw Unreadable() }
                return 0.1
            }
        }
    }
}

/// A state with an array in it, for the body-step tests.
@SwiftADState
struct Mixed: Differentiable, Codable, Equatable {
    var x: Double
    var ys: [Double]
}

@SwiftADStepBody
struct Mixer {
    var rate: Double

    @differentiable(reverse, wrt: (state, parameters))
    func callAsFunction(_ state: Mixed, _ input: Double, _ parameters: [Double]) -> Mixed {
        let y0 = state.ys[0] * parameters[1] + state.x
        let y1 = tanh(state.ys[1]) + parameters[0] * input
        return Mixed(x: state.x * parameters[0] + sin(state.ys[0]) * rate + input, ys: [y0, y1])
    }
}
