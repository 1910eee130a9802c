import AdjointTensor

/// The forward-mode interpreter level: every value it tracks carries its tangent in its trace tag,
/// and each operation's JVP rule gives the output's tangent.
///
/// A tangent lives exactly as long as the value it belongs to (no tape grows), so forward mode runs
/// in memory independent of the length of the computation. The JVP runs while only the levels
/// outside this one are visible, so an enclosing tape records the tangent computation
/// (reverse-over-forward) and values tracked by enclosing levels carry their tangents through it.
///
/// Tangents are computed on demand: an operation attaches a pending tangent, which is evaluated
/// when a later JVP or the caller reads it. A tangent nobody reads is never computed — in
/// forward-over-reverse (``hvp(at:direction:of:)``) that skips the tangents of forward values the
/// backward pass does not read, as dead-code elimination of a linearized program would. Pending
/// chains are cut at ``maxPendingDepth`` operations, which bounds both the memory they hold and
/// the recursion that evaluates them.
public final class ForwardLevel: InterpreterLevel {
    /// A tangent attached to a value's tag: computed, or pending until read.
    final class Tangent {
        private var value: Tensor?
        private var compute: (() throws -> Tensor?)?
        /// Operations in the longest chain of pending tangents ending here (0 once computed).
        private(set) var pendingDepth: Int

        init(_ value: Tensor) {
            self.value = value
            pendingDepth = 0
        }

        init(pendingDepth: Int, _ compute: @escaping () throws -> Tensor?) {
            self.compute = compute
            self.pendingDepth = pendingDepth
        }

        /// The tangent (`nil`: zero), computing it first if it is pending.
        func resolve() throws -> Tensor? {
            if let compute {
                self.compute = nil
                value = try compute()
                pendingDepth = 0
            }
            return value
        }
    }

    /// The longest chain of pending tangents before the level computes the inputs of the next one.
    public static let maxPendingDepth = 16

    package let levelID = InterpreterStack.makeLevelID()
    /// Whether a read of a tracked value has been reported (``ValueReadDiagnostics``).
    private var reportedValueRead = false

    public init() {}

    package func valueRead(_ tensor: Tensor) {
        guard tensor.traceTags.tag(at: levelID) != nil else { return }
        ValueReadDiagnostics.report(tensor, transform: "forward mode (jvp, hvp, jacobian)", reported: &reportedValueRead)
    }

    /// Starts tracking `x` with tangent `direction` (same shape and dtype, checked by the caller).
    func seed(_ x: inout Tensor, direction: Tensor) {
        x.traceTags.set(TraceTag(level: levelID, id: 0, payload: Tangent(direction)))
    }

    private func box(of x: Tensor) -> Tangent? {
        guard let payload = x.traceTags.tag(at: levelID)?.payload else { return nil }
        return unsafeDowncast(payload, to: Tangent.self)
    }

    /// The tangent this level carries for `x`; `nil` when it is zero (`x` does not depend on the seeds).
    func tangent(of x: Tensor) throws -> Tensor? { try box(of: x)?.resolve() }

    package func process(_ call: inout OpCall) throws {
        var boxes: [Tangent?] = []
        var depth = 0
        for (i, input) in call.inputs.enumerated() {
            guard let b = box(of: input) else { continue }
            if boxes.isEmpty { boxes = [Tangent?](repeating: nil, count: call.inputs.count) }
            boxes[i] = b
            depth = Swift.max(depth, b.pendingDepth)
        }
        guard !boxes.isEmpty, call.output.dtype.isFloatingPoint else { return }
        let rule = DerivativeRules.rule(for: call.op)
        guard let jvp = rule.jvp else { try rule.requireImplemented(call.op, node: -1); return }
        if depth >= Self.maxPendingDepth {
            for b in boxes { _ = try b?.resolve() }
            depth = 0
        }
        // The closure holds the call as it is now: without this level's tag on the output, so the
        // output does not keep its own tangent alive.
        let captured = call, saves = rule.saves
        let tangent = Tangent(pendingDepth: depth + 1) {
            let tangents = try boxes.map { try $0?.resolve() }
            guard tangents.contains(where: { $0 != nil }) else { return nil }
            guard let t = try jvp(JVPContext(source: .call(captured, saves), tangents: tangents)) else { return nil }
            try DerivativeRules.check(t, of: captured.op, input: -1, against: captured.output.valueType)
            return t
        }
        call.output.traceTags.set(TraceTag(level: levelID, id: 0, payload: tangent))
    }
}
