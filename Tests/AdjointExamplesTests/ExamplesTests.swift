import Adjoint
import AdjointExamples
import AdjointTestSupport
import Foundation
import Testing

/// Central difference of `loss` along parameter `i`.
func centralDifference(_ parameters: Tensor, _ i: Int, h: Double, _ loss: (Tensor) throws -> Double) throws -> Double {
    var plus = parameters.doubles, minus = parameters.doubles
    plus[i] += h
    minus[i] -= h
    return (try loss(try Tensor(plus, shape: parameters.shape)) - (try loss(try Tensor(minus, shape: parameters.shape)))) / (2 * h)
}

@Suite("examples")
struct ExamplesTests {
    @Test("thermal: the gradient over all 21 parameters matches central differences")
    func thermalGradient() throws {
        let model = ThermalModel()
        let u = try Tensor((0..<21).map { 0.01 * Double($0 % 5) - 0.02 }, shape: [21])
        let result = try model.gradient(parameters: u, steps: 20, schedule: .binomial(snapshots: 4))
        let g = result.parameterGradient.doubles
        for i in 0..<21 {
            let fd = try centralDifference(u, i, h: 1e-5) { try model.gradient(parameters: $0, steps: 20, schedule: .storeAll).loss }
            #expect(abs(fd - g[i]) <= 1e-6 * max(1e-3, abs(fd)), "\(ThermalModel.names[i]): \(g[i]) vs \(fd)")
        }
    }

    @Test("thermal: the heated slab warms, and fitting the design parameters lowers the tracking loss")
    func thermalFit() throws {
        let model = ThermalModel()
        let day = try model.gradient(parameters: model.nominalParameters, steps: 1440, schedule: .binomial(snapshots: 16))
        #expect(day.finalState.slab.doubles.allSatisfy { $0 > 19.5 && $0 < 60 })
        let fit = try model.fit(target: 22, steps: 240, iterations: 10)
        #expect(fit.losses.last! < 0.05 * fit.losses.first!, "losses \(fit.losses)")
        let environment = Set(0..<21).subtracting(ThermalModel.design)
        #expect(environment.allSatisfy { fit.parameters.doubles[$0] == 0 })
    }

    @Test("bouncing ball: bounces, and between impact switches the gradient matches central differences")
    func ball() throws {
        let ball = BouncingBall()
        let p = ball.nominalParameters
        let result = try ball.gradient(parameters: p, steps: 500, schedule: .binomial(snapshots: 8))
        // Dropped from 2 m with e = 0.8 over 2.5 s the ball has bounced at least twice.
        var bounces = 0
        var s = ball.initialState()
        for _ in 0..<500 {
            let before = try s.velocity.item()
            s = try ball.step.step(s, input: (), parameters: p)
            if before < 0, try s.velocity.item() > 0 { bounces += 1 }
            #expect(try s.height.item() >= 0)
        }
        #expect(bounces >= 2)
        let g = result.parameterGradient.doubles
        for i in 0..<3 {
            let fd = try centralDifference(p, i, h: 1e-7) { try ball.gradient(parameters: $0, steps: 500, schedule: .storeAll).loss }
            #expect(abs(fd - g[i]) <= 1e-5 * max(1, abs(fd)), "\(BouncingBall.names[i]): \(g[i]) vs \(fd)")
        }
        // Across a switch (an impact moving to another step) the loss jumps: a difference quotient
        // over a wide interval is far from the gradient.
        let wide = try centralDifference(p, 0, h: 0.5) { try ball.gradient(parameters: $0, steps: 500, schedule: .storeAll).loss }
        #expect(abs(wide - g[0]) > 0.1 * abs(g[0]))
    }

    @Test("spring chain: 1,000 states; binomial equals storeAll bitwise and matches central differences")
    func chain() throws {
        let chain = SpringChain()
        let p = chain.nominalParameters
        let all = try chain.gradient(parameters: p, steps: 300, schedule: .storeAll)
        let revolve = try chain.gradient(parameters: p, steps: 300, schedule: .binomial(snapshots: 10))
        #expect(all.finalState.tensors.reduce(0) { $0 + $1.elementCount } == 1000)
        #expect(all.loss.bitPattern == revolve.loss.bitPattern)
        #expect(bitwiseEqual(all.parameterGradient, revolve.parameterGradient))
        #expect(revolve.report.forwardSteps == Revolve.forwardSteps(steps: 300, snapshots: 10))
        for i in 0..<3 {
            let fd = try centralDifference(p, i, h: 1e-6) { try chain.gradient(parameters: $0, steps: 300, schedule: .storeAll).loss }
            #expect(abs(fd - all.parameterGradient.doubles[i]) <= 1e-6 * max(1, abs(fd)))
        }
    }
}

@Suite("Thermal model, compiled")
struct ThermalCompiledTests {
    @Test("the compiled thermal step gives the tensor step's gradient bitwise, interpreted and as native code",
          arguments: [NativeCode.off, .required])
    func compiled(_ native: NativeCode) throws {
        let m = ThermalModel()
        let step = try CompiledStep(m.step, loss: m.loss(target: 23), state: m.initialState, input: m.forcing(0), parameters: m.nominalParameters,
                                    native: native)
        let statistics = step.programStatistics
        #expect((statistics.forward.nativeInstructions > 0 && statistics.record.nativeInstructions > 0) == (native == .required))
        // Read only the parameters, hoisted out of the per-step part: `nominal * u.exp()`, its 21
        // slices and the flow `q(6) * q(7)`.
        #expect(step.loopInvariantOperations == 24, "\(step.loopInvariantOperations)")
        let a = try unroll(step, from: m.initialState, parameters: m.nominalParameters, steps: 60, loss: m.loss(target: 23),
                           schedule: .binomial(snapshots: 4), inputs: m.forcing)
        let b = try m.gradient(parameters: m.nominalParameters, steps: 60, schedule: .storeAll)
        #expect(a.loss.bitPattern == b.loss.bitPattern && bitwiseEqual(a.parameterGradient, b.parameterGradient))
        #expect(bitwiseEqual(a.initialStateGradient.slab, b.initialStateGradient.slab) && bitwiseEqual(a.finalState.room, b.finalState.room))
    }

    @Test("inputs refilled in one tensor give the same gradients as fresh input tensors, for every schedule and the tensor step",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 4), .online(snapshots: 3)])
    func refilledInputs(_ schedule: CheckpointSchedule) throws {
        let m = ThermalModel()
        let step = try CompiledStep(m.step, loss: m.loss(target: 23), state: m.initialState, input: m.forcing(0), parameters: m.nominalParameters)
        let fresh = try unroll(step, from: m.initialState, parameters: m.nominalParameters, steps: 40, loss: m.loss(target: 23),
                               schedule: schedule, inputs: m.forcing)
        let refilled = try unroll(step, from: m.initialState, parameters: m.nominalParameters, steps: 40, loss: m.loss(target: 23),
                                  schedule: schedule, inputs: m.forcingInputs())
        #expect(fresh.loss.bitPattern == refilled.loss.bitPattern && bitwiseEqual(fresh.parameterGradient, refilled.parameterGradient))
        // The tensor step's tape holds the inputs it read: each refill then writes a copy.
        let tape = try unroll(m.step, from: m.initialState, parameters: m.nominalParameters, steps: 40, loss: m.loss(target: 23),
                              schedule: schedule, inputs: m.forcingInputs())
        #expect(tape.loss.bitPattern == fresh.loss.bitPattern && bitwiseEqual(tape.parameterGradient, fresh.parameterGradient))
    }

    @Test("heat equation: the compiled step (native and interpreted) equals the tensor step bitwise under storeAll and binomial, and its gradient matches a float64 reference")
    func heatEquation() throws {
        let heat = HeatEquation(cells: 256)
        let tensorStep = TensorStep<Tensor, Void, Tensor, NoOutput> { s, _, p in (try HeatEquation.step(s, p), NoOutput()) }
        let reference = try unroll(tensorStep, from: heat.initialState, parameters: heat.nominalParameters, steps: 40,
                                   loss: .final { s in try (s * s).mean() }, schedule: .storeAll)
        for native in [NativeCode.off, .automatic] {
            let step = try heat.compiledStep(native: native)
            for schedule in [CheckpointSchedule.storeAll, .binomial(snapshots: 4)] {
                let r = try heat.gradient(steps: 40, schedule: schedule, step: step)
                #expect(bitwiseEqual(r.parameterGradient, reference.parameterGradient) && r.loss == reference.loss)
                #expect(bitwiseEqual(r.finalState, reference.finalState))
            }
        }
        // The same recurrence in float64 by hand: loss and ∂L/∂(α, β) by central differences.
        func loss(_ alpha: Double, _ beta: Double) -> Double {
            var s = heat.initialState.doubles
            for _ in 0..<40 {
                let n = s.count
                s = (0..<n).map { i in
                    let lap = (i > 0 ? s[i - 1] : 0) + (i + 1 < n ? s[i + 1] : 0) - 2 * s[i]
                    return s[i] + alpha * lap + beta * Foundation.tanh(s[i])
                }
            }
            return s.reduce(0) { $0 + $1 * $1 } / Double(s.count)
        }
        let (alpha, beta, h) = (Double(HeatEquation.nominal[0]), Double(HeatEquation.nominal[1]), 1e-6)
        let g = reference.parameterGradient.doubles
        let fd = [(loss(alpha + h, beta) - loss(alpha - h, beta)) / (2 * h), (loss(alpha, beta + h) - loss(alpha, beta - h)) / (2 * h)]
        #expect(abs(reference.loss - loss(alpha, beta)) < 1e-5 * loss(alpha, beta))
        #expect(zip(g, fd).allSatisfy { abs($0 - $1) <= 1e-3 * abs($1) }, "\(g) vs \(fd)")
        #expect(fd.allSatisfy { abs($0) > 1e-4 })
    }
}
