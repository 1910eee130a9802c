/// How ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)``
/// trades memory for recomputation. A schedule is a value: it prints as the text the CLI reads
/// (`binomial:32`), and ``actions(steps:)`` lists what it will do.
///
/// A *snapshot* is a copy of a state; the counts below include the snapshot of `s[0]`.
public enum CheckpointSchedule: Hashable, Sendable, CustomStringConvertible, LosslessStringConvertible {
    /// Records every step on the forward sweep and keeps every pullback: no recomputation, memory
    /// for `T` recorded steps.
    case storeAll
    /// Snapshots every `every` steps; the backward sweep recomputes one segment at a time and keeps
    /// its states: `T/every + every` snapshots, about `T` recomputed steps.
    case uniform(every: Int)
    /// Revolve (Griewank & Walther, ACM TOMS 26(1), 2000): with `snapshots` snapshots, the fewest
    /// recomputed steps possible, `t = r·T − β(s+1, r−1)` where `β(s, r) = C(s+r, s)` and `r` is the
    /// least integer with `β(s, r) ≥ T`.
    case binomial(snapshots: Int)
    /// For horizons not known in advance: the forward sweep keeps at most `snapshots` snapshots at
    /// equal spacing, doubling the spacing (and dropping every other one) when full; the backward
    /// sweep reverses each segment with Revolve in the snapshots left free.
    case online(snapshots: Int)
    /// Revolve with `ram + disk` snapshots, of which the `disk` longest-lived (the bottom of
    /// Revolve's snapshot stack) are files written atomically.
    case multiTier(ram: Int, disk: Int)
    /// Truncated backpropagation through time: windows of `window` steps, each differentiated on
    /// its own; no cotangent crosses a window boundary, so the gradient is an approximation unless
    /// `window ≥ T`.
    case truncated(window: Int)

    /// The text form, as ``init(_:)`` reads it: `storeAll`, `uniform:10`, `binomial:32`,
    /// `online:32`, `multiTier:8+4` (RAM + disk), `truncated:50`.
    public var description: String {
        switch self {
        case .storeAll: return "storeAll"
        case let .uniform(every): return "uniform:\(every)"
        case let .binomial(snapshots): return "binomial:\(snapshots)"
        case let .online(snapshots): return "online:\(snapshots)"
        case let .multiTier(ram, disk): return "multiTier:\(ram)+\(disk)"
        case let .truncated(window): return "truncated:\(window)"
        }
    }

    /// Parses the text form; `nil` when it is not one (use ``parse(_:)`` for the reason).
    public init?(_ description: String) {
        guard let schedule = try? Self.parse(description) else { return nil }
        self = schedule
    }

    /// Parses the text form, throwing ``UnrollError/invalidSchedule(_:reason:)`` naming what is wrong.
    public static func parse(_ text: String) throws -> CheckpointSchedule {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let name = parts[0].lowercased()   // split never returns nothing when empty pieces are kept
        func count(_ label: String, _ value: String?) throws -> Int {
            guard let value, let n = Int(value) else {
                throw UnrollError.invalidSchedule(text, reason: "expected '\(parts[0]):<\(label)>' with an integer \(label)")
            }
            return n
        }
        let schedule: CheckpointSchedule
        switch name {
        case "storeall":
            guard parts.count == 1 else { throw UnrollError.invalidSchedule(text, reason: "storeAll takes no argument") }
            schedule = .storeAll
        case "uniform": schedule = .uniform(every: try count("every", parts.count > 1 ? parts[1] : nil))
        case "binomial", "revolve": schedule = .binomial(snapshots: try count("snapshots", parts.count > 1 ? parts[1] : nil))
        case "online": schedule = .online(snapshots: try count("snapshots", parts.count > 1 ? parts[1] : nil))
        case "truncated": schedule = .truncated(window: try count("window", parts.count > 1 ? parts[1] : nil))
        case "multitier":
            let tiers = parts.count > 1 ? parts[1].split(separator: "+").map(String.init) : []
            guard tiers.count == 2, let ram = Int(tiers[0]), let disk = Int(tiers[1]) else {
                throw UnrollError.invalidSchedule(text, reason: "expected 'multiTier:<ram>+<disk>' with integer snapshot counts")
            }
            schedule = .multiTier(ram: ram, disk: disk)
        default:
            throw UnrollError.invalidSchedule(text, reason: "unknown schedule '\(parts[0])'; expected storeAll, uniform, binomial, online, multiTier or truncated")
        }
        try schedule.validate()
        return schedule
    }

    /// The largest horizon an unroll takes (2^48 steps: over three days at a nanosecond a step), so
    /// that no count a schedule keeps can overflow.
    public static let maximumSteps = 1 << 48
    /// The largest snapshot count, interval or window a schedule takes (2^40). Counts above the
    /// horizon act as the horizon.
    public static let maximumCount = 1 << 40

    /// Throws ``UnrollError/invalidSchedule(_:reason:)`` for counts that cannot work.
    public func validate() throws {
        func positive(_ n: Int, _ what: String) throws {
            guard n >= 1 else { throw UnrollError.invalidSchedule(description, reason: "\(what) must be at least 1, got \(n)") }
            try bounded(n, what)
        }
        func bounded(_ n: Int, _ what: String) throws {
            guard n <= Self.maximumCount else {
                throw UnrollError.invalidSchedule(description, reason: "\(what) must be at most \(Self.maximumCount) (2^40), got \(n)")
            }
        }
        switch self {
        case .storeAll: break
        case let .uniform(every): try positive(every, "every")
        case let .binomial(snapshots): try positive(snapshots, "snapshots")
        case let .online(snapshots):
            guard snapshots >= 2 else { throw UnrollError.invalidSchedule(description, reason: "online needs at least 2 snapshots, got \(snapshots)") }
            try bounded(snapshots, "snapshots")
        case let .multiTier(ram, disk):
            try bounded(ram, "ram")
            try bounded(disk, "disk")
            guard ram >= 0, disk >= 0, ram + disk >= 1 else {
                throw UnrollError.invalidSchedule(description, reason: "ram and disk must be non-negative with at least one snapshot, got \(ram)+\(disk)")
            }
        case let .truncated(window): try positive(window, "window")
        }
    }

    /// Everything the schedule does for a horizon of `steps`, in order (for printing and tests;
    /// ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)``
    /// generates the same actions lazily).
    public func actions(steps: Int) throws -> [CheckpointAction] {
        var out: [CheckpointAction] = []
        try forEachAction(steps: steps) { out.append($0) }
        return out
    }

    /// What the schedule will run and hold for a horizon of `steps`, counted from its actions
    /// without running a step.
    public func cost(steps: Int) throws -> ScheduleCost {
        var cost = ScheduleCost()
        var current = 0, live = 0, kept = 0
        try forEachAction(steps: steps) { action in
            switch action {
            case let .advance(to):
                cost.forwardSteps = Self.saturatingSum(cost.forwardSteps, to - current)
                current = to
            case let .restore(k): current = k
            case let .record(k):
                cost.recordedSteps += 1
                kept += 1
                cost.peakRecordedSteps = max(cost.peakRecordedSteps, kept)
                current = k + 1
            case .pullback: kept -= 1
            case .store:
                live += 1
                cost.peakSnapshots = max(cost.peakSnapshots, live)
            case .free: live -= 1
            case .truncate: break
            }
        }
        return cost
    }

    static func saturatingSum(_ a: Int, _ b: Int) -> Int {
        let (sum, overflow) = a.addingReportingOverflow(b)
        return overflow ? Int.max : sum
    }

    /// Calls `emit` with each of the schedule's actions for `steps` steps, in order, without
    /// running anything (the unroll runs the same sequence).
    public func forEachAction(steps: Int, _ emit: (CheckpointAction) throws -> Void) throws {
        try validate()
        guard steps >= 1, steps <= Self.maximumSteps else { throw UnrollError.invalidSteps(steps) }
        switch self {
        case .storeAll:
            for k in 0..<steps { try emit(.record(k)) }
            for k in (0..<steps).reversed() { try emit(.pullback(k)) }
        case let .uniform(every):
            try Self.planUniform(steps: steps, every: every, emit)
        case let .binomial(snapshots):
            try emit(.store(0))
            try Revolve.reverse(from: 0, to: steps, snapshots: snapshots, emit)
        case let .multiTier(ram, disk):
            try emit(.store(0))
            try Revolve.reverse(from: 0, to: steps, snapshots: ram + disk, emit)
        case let .online(snapshots):
            var planner = OnlinePlanner(snapshots: snapshots)
            try planner.forward(through: steps, emit)
            try planner.reverse(emit)
        case let .truncated(window):
            var start = 0
            try emit(.store(0))
            while start < steps {
                let end = min(start + window, steps)
                for k in start..<end - 1 {
                    try emit(.advance(to: k + 1))
                    try emit(.store(k + 1))
                }
                try emit(.record(end - 1))
                try emit(.pullback(end - 1))
                if end < steps { try emit(.store(end)) }
                for k in (start..<end - 1).reversed() {
                    try emit(.restore(k))
                    try emit(.record(k))
                    try emit(.pullback(k))
                }
                for k in start..<end { try emit(.free(k)) }
                if end < steps {
                    try emit(.truncate(end))
                    try emit(.restore(end))
                }
                start = end
            }
        }
    }

    /// Snapshots at multiples of `every` on the forward sweep; each segment, last first, is
    /// recomputed once keeping all its states.
    static func planUniform(steps: Int, every: Int, _ emit: (CheckpointAction) throws -> Void) throws {
        let starts = Array(stride(from: 0, to: steps, by: every))
        for (i, start) in starts.enumerated() {
            if i > 0 { try emit(.advance(to: start)) }
            try emit(.store(start))
        }
        for start in starts.reversed() {
            let end = min(start + every, steps)
            try emit(.restore(start))
            for k in start..<end - 1 {
                try emit(.advance(to: k + 1))
                try emit(.store(k + 1))
            }
            for k in (start..<end).reversed() {
                if k < end - 1 { try emit(.restore(k)) }
                try emit(.record(k))
                try emit(.pullback(k))
            }
            for k in start..<end { try emit(.free(k)) }
        }
    }
}

/// One thing a schedule does. The executor holds a *current* state at some step `k` (initially
/// `s[0]`); step `k` maps `s[k]` to `s[k+1]`.
public enum CheckpointAction: Hashable, Sendable, CustomStringConvertible {
    /// Runs steps without recording until the current state is `s[to]`.
    case advance(to: Int)
    /// Keeps a snapshot of the current state, which is `s[k]`.
    case store(Int)
    /// Makes the snapshot of `s[k]` current.
    case restore(Int)
    /// Drops the snapshot of `s[k]`.
    case free(Int)
    /// Runs step `k` from the current state `s[k]` with its pullback, which is kept; the current
    /// state becomes `s[k+1]`.
    case record(Int)
    /// Runs the kept pullback of step `k` (the steps after it are already reversed) and drops it.
    case pullback(Int)
    /// Truncated BPTT: the cotangent of `s[k]` is dropped, not carried into step `k − 1`.
    case truncate(Int)

    public var description: String {
        switch self {
        case let .advance(to): return "advance→\(to)"
        case let .store(k): return "store \(k)"
        case let .restore(k): return "restore \(k)"
        case let .free(k): return "free \(k)"
        case let .record(k): return "record \(k)"
        case let .pullback(k): return "pullback \(k)"
        case let .truncate(k): return "truncate \(k)"
        }
    }
}

/// The counts a schedule implies for one horizon (see ``CheckpointSchedule/cost(steps:)``).
public struct ScheduleCost: Equatable, Sendable {
    /// Steps run without recording.
    public var forwardSteps = 0
    /// Steps run with a pullback.
    public var recordedSteps = 0
    /// The most snapshots held at once.
    public var peakSnapshots = 0
    /// The most recorded steps held at once.
    public var peakRecordedSteps = 0
    /// Every step evaluation, recorded or not.
    /// Forward and recorded steps together (`Int.max` when that does not fit in an `Int`).
    public var evaluations: Int { CheckpointSchedule.saturatingSum(forwardSteps, recordedSteps) }
    public init() {}
}
