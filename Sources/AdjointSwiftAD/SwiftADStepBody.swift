import _Differentiation
import AdjointStateful
import Foundation
import AdjointIO

/// A step body as a type, `s[t+1] = body(s[t], x[t], θ)`, whose derivative `@SwiftADStepBody`
/// writes in the body's own module.
///
/// `_Differentiation` cannot differentiate a closure inside generic inlinable code, so a step
/// made from a closure (``SwiftADStep``) is differentiated through function values: per step, a
/// pullback context for each closure layer and reabstraction thunks between them. Where the
/// step's own work is a fraction of a microsecond, that is most of the cost. The members a
/// `@SwiftADStepBody` struct gets are written with its concrete types, so the compiler
/// differentiates them where the types are known, and ``SwiftADBodyStep`` calls them directly
/// from `unroll` specialized for the body.
///
/// ```swift
/// @SwiftADStepBody
/// struct Decay {
///     var rate: Double
///     @differentiable(reverse, wrt: (state, parameters))
///     func callAsFunction(_ state: Double, _ input: Double, _ parameters: Double) -> Double {
///         state * parameters * rate + input
///     }
/// }
/// let result = try unroll(SwiftADBodyStep(Decay(rate: 1)), from: 1.0, parameters: 0.9, inputs: xs,
///                         loss: .final { s in s * s }, schedule: .storeAll)
/// ```
public protocol SwiftADStepBody {
    associatedtype StepState: SwiftADState
    associatedtype StepInput
    associatedtype StepParameters: Differentiable
    typealias StepPullback = (StepState.TangentVector) -> (StepState.TangentVector, StepParameters.TangentVector)

    /// `s[t+1]`; `@differentiable(reverse, wrt: (state, parameters))` in the conforming type.
    func callAsFunction(_ state: StepState, _ input: StepInput, _ parameters: StepParameters) -> StepState

    /// `s[t+1]` and the pullback that maps its cotangent to those of `s[t]` and `θ`.
    func valueWithPullback(_ state: StepState, _ input: StepInput, _ parameters: StepParameters) -> (value: StepState, pullback: StepPullback)
}

/// Adds the ``SwiftADStepBody`` conformance to a struct with one
/// `@differentiable(reverse, wrt: (state, parameters)) func callAsFunction(_ state: S, _ input: X, _ parameters: P) -> S`:
/// its `valueWithPullback`, written with the struct's types.
@attached(member, names: named(valueWithPullback))
@attached(extension, conformances: SwiftADStepBody)
public macro SwiftADStepBody() = #externalMacro(module: "AdjointMacros", type: "SwiftADStepBodyMacro")

/// A step made from a ``SwiftADStepBody``: the same schedules and results as a ``SwiftADStep`` of
/// the same function (bitwise), with the body's derivative called directly rather than through
/// closures.
///
/// Under `CheckpointSchedule.storeAll` it runs on its own engine, `UnrollEngine.loop` (unless
/// `UnrollOptions.engine` says `.stepFunction`): one loop runs the steps forward, one runs them
/// back last first, without the general executor's per-step bookkeeping. With `.deferred`
/// recording (the default) the forward loop keeps the states only and the backward loop
/// differentiates each step and runs its pullback at once (each step evaluated twice; memory of
/// the states, where a plain `_Differentiation` loop holds every step's pullback contexts); with
/// `.eager` the forward loop keeps each step's pullback. No state is recomputed from another, so
/// there is nothing to replay: the loop keeps no hashes.
public struct SwiftADBodyStep<Body: SwiftADStepBody>: SwiftADStepFunction {
    public typealias State = Body.StepState
    public typealias Input = Body.StepInput
    public typealias Parameters = Body.StepParameters
    public typealias Loss = SwiftADLoss<State>
    public typealias StateCotangent = State.TangentVector
    public typealias ParameterGradient = Parameters.TangentVector
    public typealias Recording = SwiftADStep<State, Input, Parameters>.Recording

    public let body: Body
    /// When a recorded step is differentiated (step-by-step engine).
    public let recording: Recording

    @inlinable
    public init(_ body: Body, recording: Recording = .deferred) {
        self.body = body
        self.recording = recording
    }

    @inlinable
    public func step(_ state: State, input: Input, parameters: Parameters) throws -> State {
        body(state, input, parameters)
    }

    @inlinable
    public func recordStep(_ state: State, input: Input, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self> {
        let perStep = loss.perStep
        switch recording {
        case .deferred:
            let next = body(state, input, parameters)
            let body = body
            return RecordedStep(next: next, loss: perStep.map { $0(next) } ?? 0) { cotangent in
                let (next, pullback) = body.valueWithPullback(state, input, parameters)
                return pullback(seed(cotangent, next: next, perStep: perStep))
            }
        case .eager:
            let (next, pullback) = body.valueWithPullback(state, input, parameters)
            return RecordedStep(next: next, loss: perStep.map { $0(next) } ?? 0) { cotangent in
                pullback(seed(cotangent, next: next, perStep: perStep))
            }
        }
    }

    /// The `UnrollEngine.loop` engine under `storeAll`.
    @inlinable
    public func packedUnroll(from initial: State, parameters: Parameters, steps: Int, loss: Loss, schedule: CheckpointSchedule,
                             options: UnrollOptions, inputs: @escaping (Int) throws -> Input) throws -> UnrollResult<Self>? {
        guard schedule == .storeAll, options.engine == nil || options.engine == .loop else { return nil }
        guard steps >= 1, steps <= CheckpointSchedule.maximumSteps else { throw UnrollError.invalidSteps(steps) }
        // Deferred (the default): the forward loop keeps every state, computed without
        // derivatives (a few bytes per step); the backward loop differentiates each step where its
        // pullback is needed and runs it at once, so its pullback contexts are freed before the
        // next are made — no per-step closure is kept or converted to be stored. Eager: the
        // forward loop differentiates each step and keeps its pullback (no second evaluation; the
        // memory of a plain `_Differentiation` loop).
        var states: [State] = []
        var xs: [Input] = []
        var pullbacks: [Body.StepPullback] = []
        let eager = recording == .eager
        states.reserveCapacity(steps + 1)
        if eager { pullbacks.reserveCapacity(steps) } else { xs.reserveCapacity(steps) }
        states.append(initial)
        let progress = options.progress
        for k in 0..<steps {
            let x = try inputs(k)
            if eager {
                let (next, pullback) = body.valueWithPullback(states[k], x, parameters)
                states.append(next)
                pullbacks.append(pullback)
            } else {
                states.append(body(states[k], x, parameters))
                xs.append(x)
            }
            progress?(k + 1, steps)
        }
        // The sums in the step-by-step engine's order: the final term, then the steps last first.
        var value = 0.0
        var cotangent: State.TangentVector?
        if let (finalValue, seed) = try finalLoss(states[steps], loss: loss) {
            value += finalValue
            cotangent = seed
        }
        var gradient: Parameters.TangentVector?
        // One backward step: the per-step term, the pullback, the sums (a function, not a branch
        // on `eager` per step with one pullback variable for both: that converted the deferred
        // pullback, one more allocation per step).
        func reverse(_ next: State, _ pullback: Body.StepPullback) throws {
            if let perStep = loss.perStep { value += perStep(next) }
            let (stateCotangent, parameterGradient) = pullback(seed(cotangent, next: next, perStep: loss.perStep))
            try accumulate(parameterGradient, into: &gradient)
            cotangent = stateCotangent
        }
        if eager {
            for k in (0..<steps).reversed() { try reverse(states[k + 1], pullbacks.removeLast()) }
        } else {
            for k in (0..<steps).reversed() {
                let (next, pullback) = body.valueWithPullback(states[k], xs[k], parameters)
                try reverse(next, pullback)
            }
        }
        var report = UnrollReport()
        report.steps = steps
        report.engine = .loop
        report.schedule = schedule.description
        report.recordedSteps = steps
        report.peakRecordedSteps = steps
        report.inputReads = steps
        return UnrollResult(loss: value, parameterGradient: gradient!, initialStateGradient: cotangent!, finalState: states[steps], report: report)
    }
}

/// What ``SwiftADStep`` and ``SwiftADBodyStep`` share: states that are ``SwiftADState``s, losses
/// that are ``SwiftADLoss``es, tangents as cotangents and gradients.
public protocol SwiftADStepFunction: StepFunction
where State: SwiftADState, Parameters: Differentiable, Loss == SwiftADLoss<State>, StateCotangent == State.TangentVector,
      ParameterGradient == Parameters.TangentVector {}

extension SwiftADStepFunction {
    @inlinable
    public func finalLoss(_ state: State, loss: Loss) throws -> (value: Double, cotangent: State.TangentVector)? {
        guard let final = loss.final else { return nil }
        let (value, g) = valueWithGradient(at: state, of: final)
        var cotangent = state.zeroTangent
        cotangent += g
        return (value, cotangent)
    }

    @inlinable
    public func accumulate(_ gradient: Parameters.TangentVector, into total: inout Parameters.TangentVector?) throws {
        if total == nil { total = gradient } else { total! += gradient }
    }

    public func serialize(_ state: State) throws -> [UInt8] {
        Array(try PropertyListEncoder.binary.encode([state]))
    }

    public func deserialize(_ bytes: [UInt8], like template: State) throws -> State {
        do {
            return try PropertyListDecoder().decode([State].self, from: Data(bytes))[0]
        } catch {
            throw PersistenceError.corrupt(path: "<snapshot>", offset: 0, detail: "not a \(State.self) snapshot: \(error)")
        }
    }

    @inlinable
    public func hash(_ state: State) -> StateHash {
        var hasher = StateHasher()
        state.hash(into: &hasher)
        return hasher.finalize()
    }

    @inlinable public func byteCount(of state: State) -> Int { state.snapshotByteCount }
}
