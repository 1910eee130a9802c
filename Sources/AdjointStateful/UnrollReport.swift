import Foundation

/// How an unroll runs its steps (``UnrollOptions/engine``). They give the same results, bitwise.
public enum UnrollEngine: String, Sendable, Equatable, CaseIterable, CustomStringConvertible {
    /// Through the ``StepFunction`` protocol: states, inputs and cotangents are the step's own
    /// values (for a ``CompiledStep``, tensor collections bound into its frames at every step).
    case stepFunction
    /// For a ``CompiledStep`` only: each state is one packed byte buffer between steps, copied
    /// into the step's frame and back — no tensor made per step.
    case packed
    /// For a `SwiftADBodyStep` (AdjointSwiftAD), under ``CheckpointSchedule/storeAll`` only: one
    /// loop runs the steps forward keeping the states, one differentiates each step last first and
    /// runs its pullback at once — without the executor's per-step bookkeeping. `storeAll`
    /// computes each state once, so there is nothing to replay and no hash is kept.
    case loop

    public var description: String { rawValue }
}

/// What an unroll did: how much it ran, how much it kept, how much it checked.
public struct UnrollReport: Equatable, Sendable, CustomStringConvertible {
    /// The horizon `T`.
    public var steps = 0
    /// The engine that ran the steps (``UnrollOptions/engine`` resolved).
    public var engine = UnrollEngine.stepFunction
    /// The schedule, in its text form.
    public var schedule = ""
    /// Steps run without recording (the forward sweep and recomputation).
    public var forwardSteps = 0
    /// Steps run with a pullback (each step exactly once).
    public var recordedSteps = 0
    /// Step evaluations beyond the first of each step: `forwardSteps + recordedSteps − steps`.
    public var recomputations: Int { forwardSteps + recordedSteps - steps }
    /// The most snapshots held at once (in memory and on disk).
    public var peakSnapshots = 0
    /// The most bytes snapshots held at once (in memory and on disk).
    public var peakSnapshotBytes = 0
    /// The most recorded steps (pullbacks) held at once.
    public var peakRecordedSteps = 0
    /// Snapshot files written and read (multi-tier schedules).
    public var diskWrites = 0
    public var diskReads = 0
    /// Recomputed states whose hash was compared with the original run's.
    public var replayChecks = 0
    /// State hashes replay verification kept (at most ``UnrollOptions/verificationHashes``), and
    /// how often states were checked (1: every state).
    public var verificationHashes = 0
    public var checkedEvery = 1
    /// Calls of `inputs` (the other evaluations found their input in the cache,
    /// ``UnrollOptions/inputCacheSlots``).
    public var inputReads = 0

    public init() {}

    public var description: String {
        var lines = [
            "schedule            \(schedule)",
            "engine              \(engine)",
            "steps               \(steps)",
            "forward steps       \(forwardSteps)",
            "recorded steps      \(recordedSteps)",
            "recomputations      \(recomputations)",
            "peak snapshots      \(peakSnapshots) (\(Self.bytes(peakSnapshotBytes)))",
            "peak recorded steps \(peakRecordedSteps)",
            "replay checks       \(replayChecks)" + (verificationHashes == 0 ? "" : " (\(checkedEvery == 1 ? "every state" : "every \(checkedEvery)-th state");"
                + " \(verificationHashes) hashes, \(Self.bytes(8 * verificationHashes)))"),
            "input reads         \(inputReads)",
        ]
        if diskWrites > 0 || diskReads > 0 { lines.append("disk writes/reads   \(diskWrites)/\(diskReads)") }
        return lines.joined(separator: "\n")
    }

    static func bytes(_ n: Int) -> String {
        if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
        if n >= 1 << 10 { return String(format: "%.1f KiB", Double(n) / Double(1 << 10)) }
        return "\(n) B"
    }
}
