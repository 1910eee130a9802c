import Adjoint
import AdjointTestSupport
import Testing

/// `Scan`: forward, reverse with checkpoint schedules, JVP and HVP, with an initial state that
/// may depend on the parameters; each against the same loop differentiated step by step.
@Suite("Scan: a fold differentiable in every mode")
struct ScanTests {
    static let steps = 30
    /// θ = (k, a, b): s' = tanh(k·s) + a·x[t], y = b·s'.
    static var scan: Scan<Tensor, Tensor, Tensor, Tensor> {
        Scan(steps: steps, inputs: { t in Tensor([Double(t % 5) * 0.1, -0.05 * Double(t % 3)]) }) { s, x, p in
            let k = try p[0], a = try p[1], b = try p[2]
            let next = try (k * s).tanh() + a * x
            return (next, try b * next)
        }
    }
    static var loss: TrajectoryLoss<Tensor, Tensor> {
        .both(perStep: { _, y in try (y - 0.3).pow(2).sum() }, final: { s in try (s * s).sum() })
    }
    static func dot(_ a: Tensor, _ b: Tensor) -> Double { zip(a.doubles, b.doubles).reduce(0) { $0 + $1.0 * $1.1 } }
    static let theta = Tensor([0.9, 0.7, 1.3]), direction = Tensor([0.2, -1.0, 0.5])
    static let s0 = Tensor([0.4, -0.2])
    /// `s[0] = θ[0..<2] · 0.5`: the initial state depends on the parameters.
    static func initial(_ p: Tensor) throws -> Tensor { try p[..<2] * 0.5 }

    /// The loss of the plain loop: what `gradient`, `jvp` and `hvp` differentiate op by op.
    static func loopLoss(_ s0: Tensor, _ p: Tensor) throws -> Tensor {
        let (final, outputs) = try scan(from: s0, parameters: p)
        var total = try (final * final).sum()
        for y in outputs { total = try total + (y - 0.3).pow(2).sum() }
        return total
    }

    @Test("the forward pass returns the final state and every output")
    func forward() throws {
        let (final, outputs) = try Self.scan(from: Self.s0, parameters: Self.theta)
        #expect(outputs.count == Self.steps && outputs[0].shape == [2] && final.shape == [2])
        var s = Self.s0
        for t in 0..<Self.steps { s = try Self.scan.step.step(s, input: Self.scan.inputs(t), parameters: Self.theta) }
        #expect(s.doubles == final.doubles)
    }

    @Test("reverse mode: the gradient under every schedule equals the loop's", arguments: [
        CheckpointSchedule.storeAll, .binomial(snapshots: 3), .uniform(every: 7),
    ])
    func reverse(schedule: CheckpointSchedule) throws {
        let (value, (gs, gp)) = try valueWithGradient(at: Self.s0, Self.theta, of: Self.loopLoss)
        let result = try Self.scan.valueWithGradient(from: Self.s0, parameters: Self.theta, loss: Self.loss, schedule: schedule)
        #expect(isClose([result.loss], [try value.item()], tolerance: 1e-13))
        #expect(isClose(result.parameterGradient.doubles, gp.doubles, tolerance: 1e-13))
        #expect(isClose(result.initialStateGradient.doubles, gs.doubles, tolerance: 1e-13))
    }

    @Test("forward mode: the JVP is the gradient along the direction, and the final state's tangent is the loop's")
    func forwardMode() throws {
        let (gs, gp) = try gradient(at: Self.s0, Self.theta, of: Self.loopLoss)
        let u = Tensor([1.0, -2.0])
        let result = try Self.scan.jvp(from: Self.s0, parameters: Self.theta, direction: Self.direction, initialDirection: u, loss: Self.loss)
        let expected = Self.dot(gp, Self.direction) + Self.dot(gs, u)
        #expect(isClose([result.derivative], [expected], tolerance: 1e-12))
        let (_, finalTangent) = try jvp(at: Self.theta, direction: Self.direction) { p in try Self.scan(from: Self.s0, parameters: p).final }
        let mine = try Self.scan.jvp(from: Self.s0, parameters: Self.theta, direction: Self.direction, loss: Self.loss)
        #expect(isClose(mine.finalTangent.doubles, finalTangent.doubles, tolerance: 1e-14))
    }

    @Test("second order: the HVP through the checkpointed reverse pass equals the loop's, for every schedule", arguments: [
        CheckpointSchedule.storeAll, .binomial(snapshots: 3), .binomial(snapshots: 1),
    ])
    func secondOrder(schedule: CheckpointSchedule) throws {
        let expected = try hvp(at: Self.theta, direction: Self.direction) { p in try Self.loopLoss(Self.s0, p) }
        let result = try Self.scan.hvp(from: Self.s0, parameters: Self.theta, direction: Self.direction, loss: Self.loss, schedule: schedule)
        #expect(isClose(result.hvp.doubles, expected.doubles, tolerance: 1e-12))
        let g = try gradient(at: Self.theta) { p in try Self.loopLoss(Self.s0, p) }
        #expect(isClose(result.gradient.doubles, g.doubles, tolerance: 1e-13))
    }

    @Test("an initial state that is a function of θ is chained into the gradient, the JVP, the HVP and online sensitivity")
    func initialStateOfTheta() throws {
        let loop: (Tensor) throws -> Tensor = { p in try Self.loopLoss(Self.initial(p), p) }
        let g = try gradient(at: Self.theta, of: loop)
        let reverse = try Self.scan.valueWithGradient(from: Self.initial, parameters: Self.theta, loss: Self.loss, schedule: .binomial(snapshots: 4))
        #expect(isClose(reverse.parameterGradient.doubles, g.doubles, tolerance: 1e-13))
        // The same through `unroll` directly: the initial-state term is what differs from θ alone.
        let plain = try unroll(Self.scan.step, from: Self.initial(Self.theta), parameters: Self.theta, steps: Self.steps,
                               loss: Self.loss, inputs: Self.scan.inputs)
        #expect(!isClose(plain.parameterGradient.doubles, g.doubles, tolerance: 1e-6))
        let chained = try unroll(Self.scan.step, initialState: Self.initial, parameters: Self.theta, steps: Self.steps,
                                 loss: Self.loss, inputs: Self.scan.inputs)
        #expect(chained.parameterGradient.doubles == reverse.parameterGradient.doubles)
        let jvpResult = try Self.scan.jvp(from: Self.initial, parameters: Self.theta, direction: Self.direction, loss: Self.loss)
        #expect(isClose([jvpResult.derivative], [Self.dot(g, Self.direction)], tolerance: 1e-12))
        let h = try hvp(at: Self.theta, direction: Self.direction, of: loop)
        let second = try Self.scan.hvp(from: Self.initial, parameters: Self.theta, direction: Self.direction, loss: Self.loss, schedule: .binomial(snapshots: 3))
        #expect(isClose(second.hvp.doubles, h.doubles, tolerance: 1e-12))
        var online = try OnlineSensitivity(Self.scan.step, initialState: Self.initial, parameters: Self.theta, loss: Self.loss)
        for t in 0..<Self.steps { try online.advance(input: Self.scan.inputs(t)) }
        #expect(isClose(try online.total().gradient.doubles, g.doubles, tolerance: 1e-12))
    }
}
