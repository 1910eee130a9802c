import AdjointTensor

/// A simulated concurrent task: atomic operations run one at a time on the shared state, with
/// registers private to the task (a read into a register and a later write from it are two
/// operations, so other tasks can interleave between them — lost updates included).
public struct SimulatedTask<State> {
    public typealias Operation = (inout State, inout [String: Tensor]) throws -> Void
    public var name: String
    public var operations: [Operation]

    public init(_ name: String, _ operations: [Operation]) {
        self.name = name
        self.operations = operations
    }
}

/// Runs simulated concurrent tasks over shared state one atomic operation at a time, choosing
/// which task moves next by a policy, and records every choice as a ``Event/Kind/decision`` event
/// named `"schedule"` (choice = task index, options = task count).
///
/// ``replay(_:state:log:from:)`` takes the choices from a log instead, reproducing the interleaving
/// exactly. Run inside `gradient(at:)` (or `unroll`), derivatives are taken **along the recorded
/// interleaving**: they are the derivatives of the program that actually ran, with that order of
/// operations fixed — not of an average over orders, and not of some other order that a different
/// choice would have produced (the choice is a discrete decision with no derivative).
public struct DeterministicScheduler {
    public enum Policy {
        /// The runnable tasks in turn.
        case roundRobin
        /// A runnable task drawn uniformly from `stream` (keyed Philox: reproducible, loggable).
        case random(RandomStream)
        /// Exactly these task indices, in order (each must be runnable when its turn comes).
        case fixed([Int])
    }

    public var policy: Policy
    /// The choices made so far.
    public private(set) var interleaving: [Int] = []

    public init(policy: Policy) { self.policy = policy }

    /// Runs every task to completion on `state`; logs each choice (at `step` = its index) when
    /// `log` is given. Returns the interleaving.
    ///
    /// - Throws: ``EventLogError/replayMismatch(step:detail:)`` when a `.fixed` policy names a
    ///   task that is finished or does not exist, or runs out early; whatever an operation throws.
    @discardableResult
    public mutating func run<State>(_ tasks: [SimulatedTask<State>], state: inout State, log: (any EventLog)? = nil) throws -> [Int] {
        var next = [Int](repeating: 0, count: tasks.count)
        var registers = [[String: Tensor]](repeating: [:], count: tasks.count)
        var turn = 0
        let total = tasks.reduce(0) { $0 + $1.operations.count }
        for k in 0..<total {
            let runnable = tasks.indices.filter { next[$0] < tasks[$0].operations.count }
            let chosen: Int
            switch policy {
            case .roundRobin:
                chosen = runnable.first { $0 >= turn % tasks.count } ?? runnable[0]
                turn = chosen + 1
            case var .random(stream):
                let u = try stream.uniform([]).item()
                chosen = runnable[Swift.min(runnable.count - 1, Int(u * Double(runnable.count)))]
                policy = .random(stream)
            case let .fixed(order):
                guard k < order.count else { throw EventLogError.replayMismatch(step: k, detail: "the schedule ends after \(order.count) of \(total) operations") }
                chosen = order[k]
                guard runnable.contains(chosen) else {
                    throw EventLogError.replayMismatch(step: k, detail: "task \(chosen) is not runnable (runnable: \(runnable.map { tasks[$0].name }))")
                }
            }
            try log?.append(Event.decision(step: k, name: "schedule", choice: chosen, options: tasks.count))
            interleaving.append(chosen)
            try tasks[chosen].operations[next[chosen]](&state, &registers[chosen])
            next[chosen] += 1
        }
        return interleaving
    }

    /// Runs `tasks` again in the order `log` recorded (its `"schedule"` decisions from sequence
    /// number `start` on).
    @discardableResult
    public static func replay<State>(_ tasks: [SimulatedTask<State>], state: inout State, log: any EventLog, from start: Int = 0) throws -> [Int] {
        let order = try log.events(start..<log.count).filter { $0.kind == .decision && $0.name == "schedule" }.compactMap(\.choice)
        var scheduler = DeterministicScheduler(policy: .fixed(order))
        return try scheduler.run(tasks, state: &state)
    }
}
