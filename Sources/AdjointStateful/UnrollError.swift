import AdjointTensor
import AdjointIO

/// A recomputed state differs from the one the original run produced: the step is not
/// deterministic (a data race, an unseeded random draw, reading the clock…), so gradients from
/// recomputation would be of a different trajectory.
public struct ReplayDivergence: Error, Equatable, CustomStringConvertible {
    /// The index `k` of the state `s[k]` whose hashes differ.
    public var step: Int
    /// The hash of `s[k]` from the first time it was computed.
    public var original: StateHash
    /// The hash of `s[k]` recomputed.
    public var recomputed: StateHash
    /// How often states were checked (``UnrollOptions/verificationHashes``): 1 names the exact
    /// state; `S > 1` says the divergence arose within the `S` steps up to `s[k]`.
    public var checkedEvery: Int = 1

    public init(step: Int, original: StateHash, recomputed: StateHash, checkedEvery: Int = 1) {
        self.step = step
        self.original = original
        self.recomputed = recomputed
        self.checkedEvery = checkedEvery
    }

    public var description: String {
        "replay diverged at state s[\(step)]: original hash \(original), recomputed \(recomputed); the step is not deterministic"
            + (checkedEvery > 1 ? " (states are checked every \(checkedEvery) steps: it diverged after s[\(Swift.max(0, step - checkedEvery))])" : "")
    }
}

/// Bad arguments to an unroll. (Snapshot files that cannot be written or read back throw
/// `PersistenceError`, naming the file.)
public enum UnrollError: Error, Equatable, CustomStringConvertible {
    /// The schedule cannot work (its text and why).
    case invalidSchedule(String, reason: String)
    /// The horizon must be `1 ... CheckpointSchedule.maximumSteps` steps.
    case invalidSteps(Int)
    /// The inputs end before the horizon does.
    case missingInput(step: Int, available: Int)
    /// A step given to ``CompiledStep`` read traced values as numbers while it was traced
    /// (`afterOperators`: how many operators each read came after).
    case valueReadWhileTracing(afterOperators: [Int])
    /// ``UnrollOptions/engine`` asked for an engine this step cannot run on (the step's type).
    case engineUnavailable(UnrollEngine, step: String)
    /// An unroll without inputs of a step that was built to read an input (the step's type).
    case inputRequired(step: String)

    public var description: String {
        switch self {
        case let .invalidSchedule(text, reason): return "invalid schedule '\(text)': \(reason)"
        case let .invalidSteps(n):
            return "an unroll's steps must be in 1...\(CheckpointSchedule.maximumSteps) (2^48), got \(n)"
        case let .missingInput(step, available): return "no input for step \(step): the inputs hold \(available)"
        case let .valueReadWhileTracing(positions):
            return "the step read a traced value as numbers (item(), doubles or scalars(as:)) \(positions.count) time(s) while it was traced "
                + "(after operator \(positions.map(String.init).joined(separator: ", "))); a branch on such a value would be frozen at the example's "
                + "values in a compiled plan — express it with Tensor.select, or keep the step a TensorStep"
        case let .engineUnavailable(engine, step):
            let runs = engine == .loop ? "SwiftADBodyStep under storeAll" : "CompiledStep"
            return "the \(engine) unroll engine runs \(runs) only, not \(step) with this schedule; leave UnrollOptions.engine nil or use .stepFunction"
        case let .inputRequired(step):
            return "\(step) reads an input at every step: pass inputs: to unroll, or build the step from a body without an input"
        }
    }
}
