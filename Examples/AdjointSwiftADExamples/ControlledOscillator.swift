import _Differentiation
import AdjointStateful
import AdjointSwiftAD
import Foundation

/// A small-step simulation in the style of published `_Differentiation` code: a mass on a damped
/// spring (position, velocity) driven by a controller with twenty weights, tracking a reference
/// signal; the state is a struct of three `Float`s (the third accumulates the squared tracking
/// error, so the loss is the final state's) and the parameters are twenty `Float`s. Each step
/// costs well under a microsecond, so this is where an adapter's per-step overhead shows.
///
/// The control is `u = Σ w[i]·φ[i](s, r)` over twenty features of the error `e = r − x`, the
/// velocity and the position (products, cubes, `tanh`, `sin`); the plant is
/// `x'' = u − c·x' − k·x` with a semi-implicit Euler step.
public struct ControlledOscillator {
    @SwiftADState
    public struct State: Differentiable, Codable, Equatable {
        public var position: Float
        public var velocity: Float
        /// `Σ e²·dt` so far.
        public var cost: Float

        public init(position: Float, velocity: Float, cost: Float) {
            (self.position, self.velocity, self.cost) = (position, velocity, cost)
        }
    }

    public typealias Step = SwiftADStep<State, Float, [Float]>
    public static let parameterCount = 20
    public let dt: Float

    public init(dt: Float = 0.01) { self.dt = dt }

    public var initialState: State { State(position: 0, velocity: 0, cost: 0) }

    /// Small gains: a proportional-derivative start, the rest zero plus a little spread so every
    /// feature's gradient is nonzero.
    public var nominalParameters: [Float] {
        (0..<Self.parameterCount).map { i in i == 0 ? 4 : i == 1 ? -1 : 0.01 * Float(i % 5) }
    }

    /// The reference: a square wave of period 2 s smoothed by a sine.
    public func reference(_ k: Int) -> Float {
        let t = Float(k) * dt
        return (sin(Float.pi * t) >= 0 ? 1 : -1) * 0.5 + 0.2 * sin(3 * t)
    }

    public var step: Step { step(recording: .deferred) }

    public func step(recording: Step.Recording) -> Step {
        let dt = dt
        return Step(recording: recording) { s, r, w in oscillatorStep(s, r, w, dt: dt) }
    }

    /// The accumulated squared error.
    public var loss: Step.Loss { .final { s in Double(s.cost) } }

    /// Loss and gradient through ``SwiftADStep`` and `unroll`.
    public func gradient(parameters: [Float], steps: Int, schedule: CheckpointSchedule, recording: Step.Recording = .deferred,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        let references = (0..<steps).map(reference)
        return try unroll(step(recording: recording), from: initialState, parameters: parameters, inputs: references, loss: loss,
                          schedule: schedule, options: options)
    }

    /// Loss and gradient the plain `_Differentiation` way: one pullback through the whole loop.
    public func plainGradient(parameters: [Float], steps: Int) -> (loss: Double, gradient: [Float]) {
        let s0 = initialState, dt = dt, references = (0..<steps).map(reference)
        let (value, g) = valueWithGradient(at: parameters) { w -> Double in
            var s = s0
            for k in 0..<withoutDerivative(at: steps) { s = oscillatorStep(s, references[k], w, dt: dt) }
            return Double(s.cost)
        }
        return (value, g.base)
    }
}

extension ControlledOscillator {
    /// The twenty weights as a struct of `Float`s (no array: `_Differentiation` then keeps no
    /// per-read array tangents, and a step costs a fraction of a microsecond).
    public struct Gains: Differentiable, Equatable {
        public var w0: Float = 4, w1: Float = -1, w2: Float = 0.02, w3: Float = 0.03, w4: Float = 0.04
        public var w5: Float = 0, w6: Float = 0.01, w7: Float = 0.02, w8: Float = 0.03, w9: Float = 0.04
        public var w10: Float = 0, w11: Float = 0.01, w12: Float = 0.02, w13: Float = 0.03, w14: Float = 0.04
        public var w15: Float = 0, w16: Float = 0.01, w17: Float = 0.02, w18: Float = 0.03, w19: Float = 0.04
        public init() {}
    }

    public typealias GainsStep = SwiftADStep<State, Float, Gains>

    /// The step as a type: `@SwiftADStepBody` differentiates it in this module, and
    /// `SwiftADBodyStep` calls that derivative directly (under `storeAll`, on the `loop` engine).
    @SwiftADStepBody
    public struct GainsBody {
        public var dt: Float
        public init(dt: Float) { self.dt = dt }

        @differentiable(reverse, wrt: (state, parameters))
        public func callAsFunction(_ state: State, _ input: Float, _ parameters: Gains) -> State {
            oscillatorStep(state, input, parameters, dt: dt)
        }
    }

    public typealias GainsBodyStep = SwiftADBodyStep<GainsBody>

    public func gainsStep(recording: GainsStep.Recording = .deferred) -> GainsBodyStep {
        GainsBodyStep(GainsBody(dt: dt), recording: recording)
    }

    /// The same step made from a closure (step by step under every schedule).
    public func gainsClosureStep(recording: GainsStep.Recording = .deferred) -> GainsStep {
        let dt = dt
        return GainsStep(recording: recording) { s, r, g in oscillatorStep(s, r, g, dt: dt) }
    }

    /// Loss and gradient through the closure step (``gainsClosureStep(recording:)``) and `unroll`.
    public func gradient(gains: Gains, steps: Int, schedule: CheckpointSchedule, recording: GainsStep.Recording = .deferred,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<GainsStep> {
        try unroll(gainsClosureStep(recording: recording), from: initialState, parameters: gains, inputs: (0..<steps).map(reference),
                   loss: .final { s in Double(s.cost) }, schedule: schedule, options: options)
    }

    /// Loss and gradient through the body step (``gainsStep(recording:)``) and `unroll`.
    public func bodyGradient(gains: Gains, steps: Int, schedule: CheckpointSchedule, recording: GainsStep.Recording = .deferred,
                             options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<GainsBodyStep> {
        try unroll(gainsStep(recording: recording), from: initialState, parameters: gains, inputs: (0..<steps).map(reference),
                   loss: .final { s in Double(s.cost) }, schedule: schedule, options: options)
    }

    public func plainGradient(gains: Gains, steps: Int) -> (loss: Double, gradient: Gains.TangentVector) {
        let s0 = initialState, dt = dt, references = (0..<steps).map(reference)
        let (value, gradient) = valueWithGradient(at: gains) { g -> Double in
            var s = s0
            for k in 0..<withoutDerivative(at: steps) { s = oscillatorStep(s, references[k], g, dt: dt) }
            return Double(s.cost)
        }
        return (value, gradient)
    }
}

@differentiable(reverse, wrt: (s, g))
func oscillatorStep(_ s: ControlledOscillator.State, _ r: Float, _ g: ControlledOscillator.Gains, dt: Float) -> ControlledOscillator.State {
    let e = r - s.position, v = s.velocity, x = s.position
    var u = g.w0 * e + g.w1 * v + g.w2 * x + g.w3 * e * v
    u = u + g.w4 * e * e + g.w5 * v * v + g.w6 * x * x + g.w7 * e * x
    u = u + g.w8 * v * x + g.w9 * e * e * e + g.w10 * v * v * v + g.w11 * tanh(e)
    u = u + g.w12 * tanh(v) + g.w13 * sin(x) + g.w14 * (cos(x) - 1) + g.w15 * e * v * x
    u = u + g.w16 * tanh(2 * e) + g.w17 * r + g.w18 * r * e + g.w19
    let acceleration = u - 0.4 * v - 2 * x
    let velocity = v + dt * acceleration
    let position = x + dt * velocity
    return ControlledOscillator.State(position: position, velocity: velocity, cost: s.cost + e * e * dt)
}

@differentiable(reverse, wrt: (s, w))
func oscillatorStep(_ s: ControlledOscillator.State, _ r: Float, _ w: [Float], dt: Float) -> ControlledOscillator.State {
    let e = r - s.position, v = s.velocity, x = s.position
    var u = w[0] * e + w[1] * v + w[2] * x + w[3] * e * v
    u = u + w[4] * e * e + w[5] * v * v + w[6] * x * x + w[7] * e * x
    u = u + w[8] * v * x + w[9] * e * e * e + w[10] * v * v * v + w[11] * tanh(e)
    u = u + w[12] * tanh(v) + w[13] * sin(x) + w[14] * (cos(x) - 1) + w[15] * e * v * x
    u = u + w[16] * tanh(2 * e) + w[17] * r + w[18] * r * e + w[19]
    let acceleration = u - 0.4 * v - 2 * x
    let velocity = v + dt * acceleration
    let position = x + dt * velocity
    return ControlledOscillator.State(position: position, velocity: velocity, cost: s.cost + e * e * dt)
}
