import AdjointAutodiff
import AdjointTensor
import Foundation
import AdjointIO

/// The result of ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)``.
public struct UnrollResult<Step: StepFunction> {
    /// `L = Σ_t ℓ(s[t+1], y[t]) + ℓ_T(s[T])`.
    public var loss: Double
    /// `∂L/∂θ`.
    public var parameterGradient: Step.ParameterGradient
    /// `∂L/∂s[0]` (for a truncated schedule, through the first window only).
    public var initialStateGradient: Step.StateCotangent
    /// `s[T]`.
    public var finalState: Step.State
    /// What the schedule did.
    public var report: UnrollReport

    /// A result, for a step's own engine (``StepFunction/packedUnroll(from:parameters:steps:loss:schedule:options:inputs:)``).
    @inlinable
    public init(loss: Double, parameterGradient: Step.ParameterGradient, initialStateGradient: Step.StateCotangent,
         finalState: Step.State, report: UnrollReport) {
        (self.loss, self.parameterGradient, self.initialStateGradient, self.finalState, self.report)
            = (loss, parameterGradient, initialStateGradient, finalState, report)
    }
}

/// Settings of an unroll that do not change its result.
public struct UnrollOptions {
    /// Hash states when first computed and compare each recomputation with it, throwing
    /// ``ReplayDivergence`` on a mismatch. Costs one pass over each checked state per evaluation
    /// and 8 bytes per kept hash (see ``verificationHashes``); turn off for speed once a step is
    /// known to be deterministic.
    public var verifyReplay = true
    /// The most state hashes replay verification keeps, so its memory is bounded whatever the
    /// horizon (8 MiB by default). Up to this many steps (less two) every state is checked;
    /// beyond, every `S`-th state and the last, `S = ⌈(steps + 1) / (verificationHashes − 2)⌉` (a
    /// divergence is then reported at the first checked state after it, with `S` in
    /// ``ReplayDivergence/checkedEvery``). At least 3.
    public var verificationHashes: Int
    /// Where a multi-tier schedule writes its disk snapshots (a fresh temporary directory, removed
    /// afterwards, when `nil`).
    public var snapshotDirectory: String?
    /// Called after each step evaluation with the evaluations done and the total the schedule will
    /// run (for progress bars).
    public var progress: ((_ done: Int, _ total: Int) -> Void)?
    /// Inputs kept for recomputation: `x[k]` is read from `inputs` once and kept in slot
    /// `k % inputCacheSlots` until another step's input takes the slot, so a schedule that
    /// recomputes a stretch of steps reads each input once rather than once per recomputation
    /// (`inputs` must return the same input each time anyway). 0 reads every time; `storeAll`,
    /// which reads each input once, keeps none.
    public var inputCacheSlots: Int
    /// The most bytes of tensor inputs (`Tensor` or a `ParameterCollection`) the cache holds:
    /// an input that would take it past this is used and not kept.
    public var inputCacheBytes: Int
    /// The engine: `nil` picks ``UnrollEngine/packed`` for a ``CompiledStep`` (whatever the static
    /// type the caller holds it as), ``UnrollEngine/loop`` for a `SwiftADBodyStep` under
    /// `storeAll`, and ``UnrollEngine/stepFunction`` for any other step or
    /// schedule; the report says which ran (``UnrollReport/engine``). Asking for an engine the step
    /// and schedule do not have throws ``UnrollError/engineUnavailable(_:step:)``.
    public var engine: UnrollEngine?
    /// How a ``CompiledStep``'s packed records keep a step for its pullback: `nil` picks by size
    /// (``PackedStep/Recorder/keepsCarriedBytes(frameBytes:carriedBytes:)``); tests set it to run
    /// both forms on the same unroll (their results are the same bit for bit).
    var recordsKeepCarriedBytes: Bool?

    public init(verifyReplay: Bool = true, snapshotDirectory: String? = nil, progress: ((Int, Int) -> Void)? = nil,
                inputCacheSlots: Int = 4096, inputCacheBytes: Int = 64 << 20, verificationHashes: Int = 1 << 20,
                engine: UnrollEngine? = nil) {
        self.engine = engine
        self.verifyReplay = verifyReplay
        self.verificationHashes = Swift.max(3, verificationHashes)
        self.snapshotDirectory = snapshotDirectory
        self.progress = progress
        self.inputCacheSlots = Swift.max(0, inputCacheSlots)
        self.inputCacheBytes = Swift.max(0, inputCacheBytes)
    }
}

/// Differentiates a loss over the trajectory `s[t+1] = F(s[t], x[t]; θ)`, `t = 0..<steps`, in the
/// memory the schedule allows.
///
/// Returns `L = Σ_t ℓ(s[t+1], y[t]) + ℓ_T(s[T])`, `∂L/∂θ`, `∂L/∂s[0]`, `s[T]` and a report. Every
/// schedule except a truncated one gives the same gradient as ``CheckpointSchedule/storeAll``,
/// bitwise for a deterministic step: each step is recorded exactly once and the pullbacks run
/// last step first, so sums happen in one order whatever the schedule.
///
/// - Parameters:
///   - step: the step function.
///   - initial: `s[0]`.
///   - parameters: `θ`.
///   - steps: the horizon `T`.
///   - loss: the trajectory loss.
///   - schedule: what to keep and what to recompute (default `binomial(snapshots: 32)`).
///   - options: settings that do not change the result (verification, engine, input cache, progress).
///   - inputs: `x[t]` for `t = 0..<steps`; read again when a step is recomputed, so it must
///     return the same input each time (an event log, an array, a pure function of `t`). It may
///     refill one tensor at each call (`Tensor.withUnsafeMutableScalars(as:_:)`): an input the
///     unroll still holds (an input cache, a tape) is then copied rather than overwritten, and one
///     it has let go of is rewritten in place, so producing inputs allocates nothing.
/// The engine is ``UnrollOptions/engine``.
///
/// - Throws: ``UnrollError`` for bad arguments, ``ReplayDivergence`` when a recomputed state
///   differs from the original, and whatever the step or loss throws.
@inlinable
public func unroll<Step: StepFunction>(
    _ step: Step, from initial: Step.State, parameters: Step.Parameters, steps: Int, loss: Step.Loss,
    schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions(),
    inputs: @escaping (Int) throws -> Step.Input
) throws -> UnrollResult<Step> {
    if options.engine != .stepFunction {
        if let result = try step.packedUnroll(from: initial, parameters: parameters, steps: steps, loss: loss,
                                              schedule: schedule, options: options, inputs: inputs) {
            return result
        }
        if let engine = options.engine { throw UnrollError.engineUnavailable(engine, step: "\(Step.self)") }
    }
    let total = options.progress == nil ? 0 : try schedule.cost(steps: steps).evaluations
    var executor = try UnrollExecutor(step, initial: initial, parameters: parameters, steps: steps, loss: loss,
                                      schedule: schedule, options: options, inputs: inputs, plannedEvaluations: total)
    defer { executor.removeSnapshotFiles() }
    try executor.run(schedule)
    return try executor.result()
}

/// A step that runs without inputs: ``unroll(_:from:parameters:steps:loss:schedule:options:)``
/// passes it ``placeholderInput()`` at every step. A ``TensorStep`` whose input is `Void` is one,
/// and a ``CompiledStep`` built from a body without an input.
public protocol InputFreeStep: StepFunction {
    /// The input given at every step; throws ``UnrollError/inputRequired(step:)`` when the step does
    /// read an input.
    func placeholderInput() throws -> Input
}

extension TensorStep: InputFreeStep where Input == Void {
    public func placeholderInput() {}
}

extension CompiledStep: InputFreeStep {
    public func placeholderInput() throws -> Tensor {
        guard !takesInput else { throw UnrollError.inputRequired(step: "\(Self.self)") }
        return Self.placeholder
    }
}

/// ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`` of a step that reads no input.
@inlinable
public func unroll<Step: InputFreeStep>(
    _ step: Step, from initial: Step.State, parameters: Step.Parameters, steps: Int, loss: Step.Loss,
    schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions()
) throws -> UnrollResult<Step> {
    let input = try step.placeholderInput()
    return try unroll(step, from: initial, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                      options: options) { _ in input }
}

/// ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`` for a run whose initial state
/// is a function of the parameters, `s[0] = initialState(θ)` (a starting temperature, a learned
/// initial condition): `∂L/∂θ` includes `∂L/∂s[0] · ∂s[0]/∂θ`, chained through the pullback of
/// `initialState`. ``UnrollResult/initialStateGradient`` is still `∂L/∂s[0]`.
public func unroll<Step: StepFunction>(
    _ step: Step, initialState: (Step.Parameters) throws -> Step.State, parameters: Step.Parameters, steps: Int,
    loss: Step.Loss, schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions(),
    inputs: @escaping (Int) throws -> Step.Input
) throws -> UnrollResult<Step>
where Step.State: ParameterCollection, Step.Parameters: ParameterCollection,
      Step.StateCotangent == Step.State, Step.ParameterGradient == Step.Parameters {
    // Not inlinable: a step of tensors gains nothing from specialization, and `vjp` is not.
    let (initial, pullback) = try vjp(at: parameters, of: initialState)
    defer { pullback.release() }
    var result = try unroll(step, from: initial, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                            options: options, inputs: inputs)
    var total: Step.ParameterGradient? = result.parameterGradient
    try step.accumulate(try pullback(result.initialStateGradient), into: &total)
    result.parameterGradient = total ?? result.parameterGradient
    return result
}

/// ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`` over the inputs of an array
/// (at least `steps` of them).
@inlinable
public func unroll<Step: StepFunction>(
    _ step: Step, from initial: Step.State, parameters: Step.Parameters, inputs: [Step.Input], steps: Int? = nil,
    loss: Step.Loss, schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions()
) throws -> UnrollResult<Step> {
    let horizon = steps ?? inputs.count
    guard inputs.count >= horizon else { throw UnrollError.missingInput(step: inputs.count, available: inputs.count) }
    return try unroll(step, from: initial, parameters: parameters, steps: horizon, loss: loss, schedule: schedule,
                      options: options) { inputs[$0] }
}

/// Runs a schedule's actions against a step.
///
/// A value with `mutating` methods, owned by the one call that runs the schedule: the compiler
/// checks exclusive access to its state statically, so the per-step path pays no dynamic checks.
/// Inlinable, with `unroll`: a call with a step of concrete types runs an executor specialized for
/// them, so a step whose own work is small (a struct of scalars under `_Differentiation`) does not
/// pay for generic metadata lookups on every action.
@usableFromInline
struct UnrollExecutor<Step: StepFunction> {
    @usableFromInline let step: Step
    @usableFromInline let parameters: Step.Parameters
    @usableFromInline let steps: Int
    @usableFromInline let loss: Step.Loss
    @usableFromInline let inputs: (Int) throws -> Step.Input
    @usableFromInline let options: UnrollOptions
    @usableFromInline let template: Step.State
    @usableFromInline let diskSlots: Int
    @usableFromInline let plannedEvaluations: Int

    /// The current state and the step it is at (`nil` after its snapshot was consumed).
    @usableFromInline var current: Step.State?
    @usableFromInline var currentStep = 0
    /// Stored states by step: in memory, or in a file (multi-tier), with the bytes each holds.
    @usableFromInline var snapshots: StepTable<Snapshot>
    /// This thread's interpreter stack, whose `unrollStep` names the step being taken.
    @usableFromInline let stack = InterpreterStack.current

    @usableFromInline struct Snapshot {
        @usableFromInline enum Place { case memory(Step.State), disk(String) }
        @usableFromInline var place: Place
        @usableFromInline var bytes: Int
        @inlinable init(place: Place, bytes: Int) { (self.place, self.bytes) = (place, bytes) }
    }
    @usableFromInline var liveSnapshotBytes = 0
    /// Recorded steps awaiting their pullback: the latest in `lastRecorded` (a schedule that
    /// records one step and reverses it at once never touches the table), older ones in
    /// `recorded`.
    @usableFromInline var recorded = StepTable<RecordedStep<Step>>()
    @usableFromInline var lastRecorded: (step: Int, taken: RecordedStep<Step>)?
    @usableFromInline var cotangent: Step.StateCotangent?
    @usableFromInline var initialCotangent: Step.StateCotangent?
    @usableFromInline var gradient: Step.ParameterGradient?
    @usableFromInline var lossValue = 0.0
    @usableFromInline var finalState: Step.State?
    /// The hash of each checked `s[k]` the first time it was computed (slot `k / hashStride`,
    /// `s[steps]` in the last slot); 0 means not yet.
    @usableFromInline var hashes: [UInt64]
    /// Every `hashStride`-th state is checked (1 when the horizon fits ``UnrollOptions/verificationHashes``).
    @usableFromInline let hashStride: Int
    @usableFromInline var report = UnrollReport()
    /// For a segment of a longer run (``unroll(_:recorded:parameters:template:loss:schedule:options:)``):
    /// the index of the segment's first step in the whole run (for messages), and the cotangent of
    /// the segment's last state when it is not the run's last (then the final loss does not apply).
    @usableFromInline var offset = 0
    @usableFromInline var terminalCotangent: Step.StateCotangent?
    @usableFromInline var appliesFinalLoss = true
    @usableFromInline var directory: String?
    @usableFromInline var ownsDirectory = false
    @usableFromInline var evaluations = 0
    /// The input cache (``UnrollOptions/inputCacheSlots``): the step each slot holds (-1: none).
    @usableFromInline var cachedSteps: [Int]
    @usableFromInline var cachedInputs: [Step.Input?]
    /// Bytes of the tensors the cache holds, per slot and in all.
    @usableFromInline var cachedInputBytes: [Int]
    @usableFromInline var cachedBytes = 0
    /// Reads of `inputs` (the rest came from the cache).
    @usableFromInline var inputReads = 0

    @inlinable init(_ step: Step, initial: Step.State, parameters: Step.Parameters, steps: Int, loss: Step.Loss,
         schedule: CheckpointSchedule, options: UnrollOptions, inputs: @escaping (Int) throws -> Step.Input,
         plannedEvaluations: Int) throws {
        try schedule.validate()
        guard steps >= 1, steps <= CheckpointSchedule.maximumSteps else { throw UnrollError.invalidSteps(steps) }
        self.step = step
        self.parameters = parameters
        self.steps = steps
        self.loss = loss
        self.inputs = inputs
        self.options = options
        self.plannedEvaluations = plannedEvaluations
        template = initial
        current = initial
        if case let .multiTier(_, disk) = schedule { diskSlots = disk } else { diskSlots = 0 }
        let budget = options.verificationHashes
        hashStride = steps + 2 <= budget ? 1 : (steps + budget - 2) / (budget - 2)   // ⌈(steps + 1) / (budget − 2)⌉: ≤ budget slots
        hashes = options.verifyReplay ? [UInt64](repeating: 0, count: steps / hashStride + 2) : []
        snapshots = StepTable(capacity: Swift.min(steps + 1, 64))
        // storeAll records every step: room for all of them (up to 2^20) at once, rather than
        // doubling into it (which holds up to twice the entries, three times while it copies).
        if schedule == .storeAll { recorded = StepTable(capacity: Swift.min(steps, 1 << 20)) }
        // `storeAll` reads each input once: nothing to cache.
        let slots = schedule == .storeAll ? 0 : Swift.min(options.inputCacheSlots, steps)
        cachedSteps = [Int](repeating: -1, count: slots)
        cachedInputs = [Step.Input?](repeating: nil, count: slots)
        cachedInputBytes = [Int](repeating: 0, count: slots)
        report.steps = steps
        report.schedule = schedule.description
        report.verificationHashes = hashes.count
        report.checkedEvery = hashStride
        try check(initial, at: 0)
    }

    /// Performs the schedule's actions for `steps` steps. Diagnostics (anomaly reports, profiles)
    /// name the step being taken meanwhile (``InterpreterStack/unrollStep``).
    @inlinable mutating func run(_ schedule: CheckpointSchedule) throws {
        let outerStep = stack.unrollStep
        defer { stack.unrollStep = outerStep }
        try schedule.forEachAction(steps: steps) { try perform($0) }
    }

    /// Performs one action (inside ``run(_:)``).
    @inlinable mutating func perform(_ action: CheckpointAction) throws {
        let stack = stack
        switch action {
        case let .advance(to):
            // The closures below mutate the executor, so `step` and `parameters` are read out first
            // (once per stretch of steps).
            let offset = offset, observed = options.progress != nil, verify = options.verifyReplay, step = step, parameters = parameters
            current = try step.advance(try currentState(for: action), through: currentStep..<to, parameters: parameters,
                                       inputs: { try input($0) },
                                       hashing: { verify && hashSlot($0) != nil }, before: { stack.unrollStep = $0 + offset }) { k, hash in
                if let hash { try check(hash, at: k + 1) }
                if observed { tick() } else { evaluations += 1 }
            }
            report.forwardSteps += to - currentStep
            currentStep = to
        case let .store(k):
            precondition(currentStep == k, "store \(k) with the current state at \(currentStep)")
            try store(try currentState(for: action), at: k)
        case let .restore(k):
            if currentStep == k, current != nil { return }
            current = try snapshot(k)
            currentStep = k
        case let .free(k):
            if let freed = snapshots.remove(k) {
                if case let .disk(path) = freed.place { try? FileManager.default.removeItem(atPath: path) }
                liveSnapshotBytes -= freed.bytes
            }
        case let .record(k):
            precondition(currentStep == k, "record \(k) with the current state at \(currentStep)")
            stack.unrollStep = k + offset
            // Arguments first: `input(_:)` mutates the executor, which would make the call below
            // copy `step` to read it meanwhile.
            let (state, x) = (try currentState(for: action), try input(k))
            let taken = try step.recordStep(state, input: x, parameters: parameters, loss: loss)
            report.recordedSteps += 1
            try check(taken.next, at: k + 1)
            tick()
            if k == steps - 1 { finalState = taken.next }
            if let last = lastRecorded { recorded.set(last.taken, at: last.step) }
            lastRecorded = (k, taken)
            report.peakRecordedSteps = max(report.peakRecordedSteps, recorded.count + 1)
            current = taken.next
            currentStep = k + 1
        case let .pullback(k):
            let taken: RecordedStep<Step>
            if let last = lastRecorded, last.step == k {
                taken = last.taken
                lastRecorded = nil
            } else {
                guard let older = recorded.remove(k) else { preconditionFailure("pullback \(k) before record \(k)") }
                taken = older
            }
            stack.unrollStep = k + offset
            if k == steps - 1 {
                if !appliesFinalLoss {
                    cotangent = terminalCotangent
                } else if let (value, seed) = try step.finalLoss(taken.next, loss: loss) {
                    lossValue += value
                    cotangent = seed
                }
            }
            lossValue += taken.loss
            let (stateCotangent, parameterGradient) = try taken.pullback(cotangent)
            var sum = gradient.take()   // out of the executor, so the call does not copy `step`
            try step.accumulate(parameterGradient, into: &sum)
            gradient = sum
            cotangent = stateCotangent
            if k == 0 { initialCotangent = stateCotangent }
        case .truncate:
            cotangent = nil
        }
    }

    @inlinable func result() throws -> UnrollResult<Step> {
        guard let gradient, let initialCotangent, let finalState else {
            preconditionFailure("the schedule ended before reversing every step")
        }
        var report = report
        report.inputReads = inputReads
        return UnrollResult(loss: lossValue, parameterGradient: gradient, initialStateGradient: initialCotangent,
                            finalState: finalState, report: report)
    }

    @inlinable mutating func input(_ k: Int) throws -> Step.Input {
        let slots = cachedSteps.count
        guard slots > 0 else {
            inputReads += 1
            return try inputs(k)
        }
        let slot = k % slots
        if cachedSteps[slot] == k, let x = cachedInputs[slot] { return x }
        let x = try inputs(k)
        inputReads += 1
        let bytes = Self.tensorBytes(x)
        cachedBytes -= cachedInputBytes[slot]
        if cachedBytes + bytes <= options.inputCacheBytes {
            (cachedSteps[slot], cachedInputs[slot], cachedInputBytes[slot]) = (k, x, bytes)
            cachedBytes += bytes
        } else {
            (cachedSteps[slot], cachedInputs[slot], cachedInputBytes[slot]) = (-1, nil, 0)
        }
        return x
    }

    /// The bytes of a tensor input's elements (0 for inputs of other types).
    @inlinable static func tensorBytes(_ x: Step.Input) -> Int {
        if let t = x as? Tensor { return t.elementCount * t.dtype.byteSize }
        if let c = x as? any ParameterCollection { return c.tensors.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize } }
        return 0
    }

    @inlinable func currentState(for action: CheckpointAction) throws -> Step.State {
        guard let current else { preconditionFailure("'\(action)' with no current state") }
        return current
    }

    /// The hash slot of `s[k]`, or `nil` when `s[k]` is not checked.
    @inlinable @inline(__always) func hashSlot(_ k: Int) -> Int? {
        if k == steps { return hashes.count - 1 }
        return k % hashStride == 0 ? k / hashStride : nil
    }

    /// Sets the original hash of `s[k]` (a recorded run's live hash) before the unroll runs.
    @inlinable mutating func seedHash(_ hash: StateHash, at k: Int) {
        if let slot = hashSlot(k) { hashes[slot] = Swift.max(1, hash.value) }
    }

    /// Records or compares the hash of `s[k]`.
    @inlinable mutating func check(_ state: Step.State, at k: Int) throws {
        guard options.verifyReplay, hashSlot(k) != nil else { return }
        try check(step.hash(state), at: k)
    }

    @inlinable mutating func check(_ hash: StateHash, at k: Int) throws {
        guard let slot = hashSlot(k) else { return }
        var h = hash.value
        if h == 0 { h = 1 }
        if hashes[slot] == 0 {
            hashes[slot] = h
            return
        }
        report.replayChecks += 1
        guard hashes[slot] == h else {
            throw ReplayDivergence(step: k + offset, original: StateHash(hashes[slot]), recomputed: StateHash(h), checkedEvery: hashStride)
        }
    }

    @inlinable mutating func tick() {
        evaluations += 1
        options.progress?(evaluations, plannedEvaluations)
    }

    @inlinable mutating func store(_ state: Step.State, at k: Int) throws {
        precondition(snapshots[k] == nil, "store \(k): s[\(k)] is already stored")
        let bytes = step.byteCount(of: state)
        if snapshots.count < diskSlots {
            let path = try snapshotDirectory() + "/s\(k).snapshot"
            try AtomicFile.write(try step.serialize(state), to: path)
            snapshots.set(Snapshot(place: .disk(path), bytes: bytes), at: k)
            report.diskWrites += 1
        } else {
            snapshots.set(Snapshot(place: .memory(step.copy(state)), bytes: bytes), at: k)
        }
        liveSnapshotBytes += bytes
        report.peakSnapshots = max(report.peakSnapshots, snapshots.count)
        report.peakSnapshotBytes = max(report.peakSnapshotBytes, liveSnapshotBytes)
    }

    @inlinable mutating func snapshot(_ k: Int) throws -> Step.State {
        guard let stored = snapshots[k] else { preconditionFailure("restore \(k): no snapshot of s[\(k)]") }
        switch stored.place {
        case let .memory(state):
            return step.copy(state)
        case let .disk(path):
            report.diskReads += 1
            return try step.deserialize(try AtomicFile.read(path), like: template)
        }
    }

    @inlinable mutating func snapshotDirectory() throws -> String {
        if let directory { return directory }
        let path = options.snapshotDirectory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-snapshots-\(UUID().uuidString)").path
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw PersistenceError.io(path: path, operation: "create directory", errno: 0, message: "\(error)")
        }
        ownsDirectory = options.snapshotDirectory == nil
        directory = path
        return path
    }

    @inlinable mutating func removeSnapshotFiles() {
        for (_, stored) in snapshots.entries {
            guard case let .disk(path) = stored.place else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
        snapshots.removeAll()
        if ownsDirectory, let directory { try? FileManager.default.removeItem(atPath: directory) }
    }
}
