/// One step of a stateful system, `(s[t+1], y[t]) = F(s[t], x[t]; θ)`, in the form the schedules of
/// ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`` drive.
///
/// A schedule needs only four things from a step — run it, run it with a pullback, copy or
/// serialize a state, hash a state — so the same schedules serve a step written with Adjoint
/// tensors (``TensorStep``), a step traced once and re-executed from a plan, and a step written in
/// plain Swift with the toolchain's `_Differentiation` (the `AdjointSwiftAD` module).
///
/// The per-step loss belongs to the step's world: ``Loss`` is whatever the adapter differentiates
/// (for ``TensorStep``, closures over tensors). A recorded step reports `ℓ(s[t+1], y[t])`, the loss
/// of the state it produced and of its output, and its pullback maps the cotangent of `s[t+1]` to
/// the cotangents of `s[t]` and `θ`, with the loss's own cotangent seeded to one.
public protocol StepFunction {
    associatedtype State
    associatedtype Input
    associatedtype Parameters
    associatedtype Loss
    associatedtype StateCotangent
    associatedtype ParameterGradient

    /// `s[t+1]`, without recording anything.
    func step(_ state: State, input: Input, parameters: Parameters) throws -> State

    /// `s[t+1]`, the per-step loss `ℓ(s[t+1], y[t])` and a pullback.
    func recordStep(_ state: State, input: Input, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self>

    /// The final-state loss and its cotangent at `state`; `nil` when `loss` has none.
    func finalLoss(_ state: State, loss: Loss) throws -> (value: Double, cotangent: StateCotangent)?

    /// Adds `gradient` into `total` (`nil` on the first step).
    func accumulate(_ gradient: ParameterGradient, into total: inout ParameterGradient?) throws

    /// A copy that later steps cannot change (for value types, the value itself).
    func copy(_ state: State) -> State

    /// The state as bytes, for snapshots kept on disk.
    func serialize(_ state: State) throws -> [UInt8]

    /// The state back from ``serialize(_:)``; `template` is a state of the same structure.
    func deserialize(_ bytes: [UInt8], like template: State) throws -> State

    /// A hash of the state's exact contents (every bit), to check that a recomputation reproduced
    /// the original run.
    func hash(_ state: State) -> StateHash

    /// The bytes a snapshot of `state` holds in memory.
    func byteCount(of state: State) -> Int

    /// `state` stepped through `steps` without recording: ``step(_:input:parameters:)`` once per
    /// step (the default), or anything with the same result that is faster — a compiled step keeps
    /// one frame for the whole run. Calls `before(k)` before step `k` and `after(k, hash)` after
    /// it, with ``hash(_:)`` of `s[k+1]` when `hashing(k + 1)` (nil otherwise: a state nobody
    /// checks is not hashed).
    func advance(_ state: State, through steps: Range<Int>, parameters: Parameters, inputs: (Int) throws -> Input, hashing: (Int) -> Bool,
                 before: (Int) -> Void, after: (Int, StateHash?) throws -> Void) throws -> State

    /// The whole unroll on the step's own engine, or `nil` when the step has none for this schedule
    /// and ``UnrollOptions/engine`` (the default; ``CompiledStep`` has ``UnrollEngine/packed``, a
    /// `SwiftADBodyStep` has ``UnrollEngine/loop`` under `storeAll`). ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)``
    /// calls it unless ``UnrollOptions/engine`` is ``UnrollEngine/stepFunction``, so the engine
    /// follows the step's dynamic type and the options, never the static type a caller holds.
    func packedUnroll(from initial: State, parameters: Parameters, steps: Int, loss: Loss, schedule: CheckpointSchedule,
                      options: UnrollOptions, inputs: @escaping (Int) throws -> Input) throws -> UnrollResult<Self>?
}

/// A step taken with its pullback.
public struct RecordedStep<Step: StepFunction> {
    /// `s[t+1]`.
    public var next: Step.State
    /// `ℓ(s[t+1], y[t])` (zero when the loss has no per-step term).
    public var loss: Double
    /// Maps the cotangent of `s[t+1]` (`nil`: zero) to the cotangents of `s[t]` and `θ`.
    public var pullback: (Step.StateCotangent?) throws -> (state: Step.StateCotangent, parameters: Step.ParameterGradient)

    public init(next: Step.State, loss: Double,
                pullback: @escaping (Step.StateCotangent?) throws -> (state: Step.StateCotangent, parameters: Step.ParameterGradient)) {
        self.next = next
        self.loss = loss
        self.pullback = pullback
    }
}

extension StepFunction {
    public func copy(_ state: State) -> State { state }

    public func packedUnroll(from initial: State, parameters: Parameters, steps: Int, loss: Loss, schedule: CheckpointSchedule,
                             options: UnrollOptions, inputs: @escaping (Int) throws -> Input) throws -> UnrollResult<Self>? { nil }

    public func advance(_ state: State, through steps: Range<Int>, parameters: Parameters, inputs: (Int) throws -> Input, hashing: (Int) -> Bool,
                        before: (Int) -> Void, after: (Int, StateHash?) throws -> Void) throws -> State {
        var state = state
        for k in steps {
            before(k)
            state = try step(state, input: try inputs(k), parameters: parameters)
            try after(k, hashing(k + 1) ? hash(state) : nil)
        }
        return state
    }
}
