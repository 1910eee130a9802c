import AdjointAutodiff
import AdjointTensor

/// A fold over steps with outputs, `(s[t+1], y[t]) = body(s[t], x[t], θ)` for `t = 0..<steps`
/// (JAX's `lax.scan`), differentiable in every mode:
///
/// | you want | call | memory |
/// |---|---|---|
/// | `s[T]` and every `y[t]` | `callAsFunction(from:parameters:)` | the outputs |
/// | `L` and `∂L/∂θ`, `∂L/∂s[0]` | `valueWithGradient(from:parameters:loss:schedule:options:)` | the schedule's (Revolve, multi-tier, …) |
/// | `dL/dθ·v` (JVP) | `jvp(from:parameters:direction:initialDirection:loss:)` | one state and its tangent |
/// | `∇²L·v` (HVP) | `hvp(from:parameters:direction:loss:schedule:options:)` | the schedule's, twice |
///
/// `L = Σ_t ℓ(s[t+1], y[t]) + ℓ_T(s[T])` (a ``TrajectoryLoss``). The initial state may be a
/// function of `θ` (`from: { θ in … }`); its derivative is chained into `∂L/∂θ`, the JVP and the HVP.
///
/// The reverse pass is ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`` with the
/// given checkpoint schedule; the HVP runs that same checkpointed reverse pass under forward mode
/// (forward-over-reverse), so recomputed steps carry their tangents and the HVP needs the
/// schedule's memory, not the horizon's. The JVP carries one tangent forward and keeps nothing.
/// Called inside `gradient`/`jvp`/`hvp` like any function, `callAsFunction(from:parameters:)`
/// is a plain loop that every transform sees step by step (store-all memory under `gradient`).
public struct Scan<State: ParameterCollection, Input, Parameters: ParameterCollection, Output: ParameterCollection> {
    public typealias Step = TensorStep<State, Input, Parameters, Output>
    public typealias Loss = TrajectoryLoss<State, Output>

    /// The step.
    public let step: Step
    /// `T`.
    public let steps: Int
    /// `x[t]`; read again when a step is recomputed, so it must return the same input each time.
    public let inputs: (Int) throws -> Input

    public init(steps: Int, inputs: @escaping (Int) throws -> Input,
                _ body: @escaping (_ state: State, _ input: Input, _ parameters: Parameters) throws -> (state: State, output: Output)) {
        self.step = TensorStep(body)
        self.steps = steps
        self.inputs = inputs
    }

    /// `s[T]` and `y[0..<T]`.
    public func callAsFunction(from initial: State, parameters: Parameters) throws -> (final: State, outputs: [Output]) {
        var state = initial
        var outputs: [Output] = []
        outputs.reserveCapacity(steps)
        for t in 0..<steps {
            let (next, output) = try step.body(state, try inputs(t), parameters)
            state = next
            outputs.append(output)
        }
        return (state, outputs)
    }

    /// `s[T]` and `y[0..<T]` from `s[0] = initial(θ)`.
    public func callAsFunction(from initial: (Parameters) throws -> State, parameters: Parameters) throws -> (final: State, outputs: [Output]) {
        try self(from: initial(parameters), parameters: parameters)
    }

    /// `L`, `∂L/∂θ`, `∂L/∂s[0]` and `s[T]` in the memory of `schedule`.
    public func valueWithGradient(from initial: State, parameters: Parameters, loss: Loss,
                                  schedule: CheckpointSchedule = .binomial(snapshots: 32),
                                  options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, from: initial, parameters: parameters, steps: steps, loss: loss, schedule: schedule, options: options, inputs: inputs)
    }

    /// `valueWithGradient(from:parameters:loss:schedule:options:)` with `s[0] = initial(θ)`: the
    /// gradient includes `∂L/∂s[0] · ∂s[0]/∂θ`.
    public func valueWithGradient(from initial: @escaping (Parameters) throws -> State, parameters: Parameters, loss: Loss,
                                  schedule: CheckpointSchedule = .binomial(snapshots: 32),
                                  options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, initialState: initial, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                   options: options, inputs: inputs)
    }

    /// `L`, its directional derivative `dL/dθ·v + ∂L/∂s[0]·u` (`v = direction`, `u =
    /// initialDirection`, zero when `nil`), `s[T]` and its tangent: forward mode, one pass, memory
    /// independent of `T`.
    public func jvp(from initial: State, parameters: Parameters, direction: Parameters, initialDirection: State? = nil,
                    loss: Loss) throws -> (loss: Double, derivative: Double, final: State, finalTangent: State) {
        let start = StepArguments(state: initial, parameters: parameters)
        let along = StepArguments(state: try initialDirection ?? initial.mapTensors { try $0.zerosLike() }, parameters: direction)
        let (value, tangent) = try AdjointAutodiff.jvp(at: start, direction: along) { arguments in
            try forwardLoss(from: arguments.state, parameters: arguments.parameters, loss: loss)
        }
        return (try value.loss.item(), try tangent.loss.item(), value.state, tangent.state)
    }

    /// `jvp(from:parameters:direction:initialDirection:loss:)` with `s[0] = initial(θ)`: the
    /// derivative includes `∂L/∂s[0] · ∂s[0]/∂θ · v`.
    public func jvp(from initial: (Parameters) throws -> State, parameters: Parameters, direction: Parameters,
                    loss: Loss) throws -> (loss: Double, derivative: Double, final: State, finalTangent: State) {
        let (value, tangent) = try AdjointAutodiff.jvp(at: parameters, direction: direction) { θ in
            try forwardLoss(from: initial(θ), parameters: θ, loss: loss)
        }
        return (try value.loss.item(), try tangent.loss.item(), value.state, tangent.state)
    }

    /// `L`, `∂L/∂θ` and `∇²L·v` (the Hessian with respect to `θ` times `direction`): the
    /// checkpointed reverse pass of `valueWithGradient(from:parameters:loss:schedule:options:)`
    /// run under forward mode.
    public func hvp(from initial: State, parameters: Parameters, direction: Parameters, loss: Loss,
                    schedule: CheckpointSchedule = .binomial(snapshots: 32),
                    options: UnrollOptions = UnrollOptions()) throws -> (loss: Double, gradient: Parameters, hvp: Parameters) {
        try hvp(from: { _ in initial }, parameters: parameters, direction: direction, loss: loss, schedule: schedule, options: options)
    }

    /// `hvp(from:parameters:direction:loss:schedule:options:)` with `s[0] = initial(θ)`.
    public func hvp(from initial: @escaping (Parameters) throws -> State, parameters: Parameters, direction: Parameters, loss: Loss,
                    schedule: CheckpointSchedule = .binomial(snapshots: 32),
                    options: UnrollOptions = UnrollOptions()) throws -> (loss: Double, gradient: Parameters, hvp: Parameters) {
        var value = 0.0
        let (gradient, hvp) = try AdjointAutodiff.jvp(at: parameters, direction: direction) { θ in
            let result = try valueWithGradient(from: initial, parameters: θ, loss: loss, schedule: schedule, options: options)
            value = result.loss
            return result.parameterGradient
        }
        return (value, gradient, hvp)
    }

    /// `s[T]` and `L` as tensors, stepping without recording (what forward mode differentiates).
    private func forwardLoss(from initial: State, parameters: Parameters, loss: Loss) throws -> StepResult<State> {
        var state = initial
        var total = Tensor(0.0)
        for t in 0..<steps {
            let (next, output) = try step.body(state, try inputs(t), parameters)
            if let perStep = loss.perStep { total = try total + perStep(next, output).reshaped([]).cast(to: .float64) }
            state = next
        }
        if let final = loss.final { total = try total + final(state).reshaped([]).cast(to: .float64) }
        return StepResult(state: state, loss: total)
    }
}
