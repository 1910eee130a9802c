import AdjointStateful

/// The symbolic guard on the learned scheduler's admissions (the seed's "request batching —
/// maximum latency budget"), checked in this order:
///
/// 1. **Latency budget (no starvation).** When a waiting request has waited
///    ``ServingGuardSettings/maxWait`` or longer, the admission goes to the longest-waiting one
///    (repaired, reason `latency budget`), whatever the learned ranking says.
/// 2. **Tenant fairness floor.** When a tenant with waiting requests has had less than
///    ``ServingGuardSettings/tenantFloor`` of its fair share of recent admissions, its
///    longest-waiting request goes first (repaired, reason `tenant floor`).
/// 3. **KV capacity.** A request whose blocks do not fit the free KV cache is never admitted
///    (refused, reason `KV capacity`); the iteration admits nothing more.
///
/// The classical policies run unguarded: they are the reference.
public struct ServingValidator: DecisionValidator {
    public struct Context {
        /// The longest-waiting request, when it has reached the latency budget.
        public var overdue: Int?
        /// The longest-waiting request of the tenant most below its floor, if any is.
        public var starvedTenant: Int?
        public var freeBlocks: Int
        /// KV blocks admitting a request would take now.
        public var blocksNeeded: (Int) -> Int
    }

    public let settings: ServingGuardSettings

    public init(settings: ServingGuardSettings) { self.settings = settings }

    public func validate(_ proposal: Int, in context: Context) -> Verdict<Int> {
        var target = proposal, reason: String?
        if let overdue = context.overdue, overdue != proposal {
            (target, reason) = (overdue, "latency budget")
        } else if context.overdue == nil, let starved = context.starvedTenant, starved != proposal {
            (target, reason) = (starved, "tenant floor")
        }
        guard context.blocksNeeded(target) <= context.freeBlocks else { return .refuse(reason: "KV capacity") }
        if let reason { return .repair(target, reason: reason) }
        return .accept
    }
}
