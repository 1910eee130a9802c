/// A validator's verdict on a proposed hard decision.
public enum Verdict<Proposal> {
    case accept
    /// Replace the proposal (the reason is counted).
    case repair(Proposal, reason: String)
    /// No acceptable decision; the caller must fall back (the reason is counted).
    case refuse(reason: String)
}

/// A symbolic guard on hard decisions: capacity never exceeded, pinned items never evicted,
/// deadlines and quotas respected. Every decision a learned policy takes in deployment passes one.
public protocol DecisionValidator {
    associatedtype Proposal
    associatedtype Context
    func validate(_ proposal: Proposal, in context: Context) -> Verdict<Proposal>
}

/// Counts of what validators did, by outcome and reason (part of a run's metrics).
public struct ValidationMetrics: Equatable, Sendable, CustomStringConvertible {
    public var accepted = 0
    public var repaired = 0
    public var refused = 0
    public var reasons: [String: Int] = [:]

    public init() {}

    public var total: Int { accepted + repaired + refused }

    public var description: String {
        let why = reasons.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
        return "\(accepted) accepted, \(repaired) repaired, \(refused) refused" + (why.isEmpty ? "" : " (\(why))")
    }
}

/// A validator with its counts: `check` returns the decision to carry out (`nil` when refused).
/// (Inlinable, so that a policy's per-decision call is specialised for its validator.)
public struct GuardedDecisions<Validator: DecisionValidator> {
    public let validator: Validator
    public var metrics: ValidationMetrics { counts }
    @usableFromInline var counts = ValidationMetrics()

    public init(_ validator: Validator) { self.validator = validator }

    @inlinable
    public mutating func check(_ proposal: Validator.Proposal, in context: Validator.Context) -> Validator.Proposal? {
        switch validator.validate(proposal, in: context) {
        case .accept:
            counts.accepted += 1
            return proposal
        case let .repair(fixed, reason):
            counts.repaired += 1
            counts.reasons[reason, default: 0] += 1
            return fixed
        case let .refuse(reason):
            counts.refused += 1
            counts.reasons[reason, default: 0] += 1
            return nil
        }
    }
}
