import AdjointTensor

/// The forward-mode interpreter level: every value it tracks carries its tangent in its trace tag,
/// and each operation's JVP rule computes the output's tangent as the operation runs.
///
/// A tangent lives exactly as long as the value it belongs to (no tape grows), so forward mode runs
/// in memory independent of the length of the computation. The JVP runs while only the levels
/// outside this one are visible, so an enclosing tape records the tangent computation
/// (reverse-over-forward) and values tracked by enclosing levels carry their tangents through it.
public final class ForwardLevel: InterpreterLevel {
    /// A tangent attached to a value's tag.
    final class Tangent {
        let value: Tensor
        init(_ value: Tensor) { self.value = value }
    }

    public let levelID = InterpreterStack.makeLevelID()

    public init() {}

    /// Starts tracking `x` with tangent `direction` (same shape and dtype, checked by the caller).
    func seed(_ x: inout Tensor, direction: Tensor) {
        x.traceTags.set(TraceTag(level: levelID, id: 0, payload: Tangent(direction)))
    }

    /// The tangent this level carries for `x`; `nil` when it is zero (`x` does not depend on the seeds).
    func tangent(of x: Tensor) -> Tensor? {
        guard let payload = x.traceTags.tag(at: levelID)?.payload else { return nil }
        return unsafeDowncast(payload, to: Tangent.self).value
    }

    public func process(_ call: inout OpCall) throws {
        var tangents: [Tensor?] = []
        for (i, input) in call.inputs.enumerated() {
            guard let t = tangent(of: input) else { continue }
            if tangents.isEmpty { tangents = [Tensor?](repeating: nil, count: call.inputs.count) }
            tangents[i] = t
        }
        guard !tangents.isEmpty, call.output.dtype.isFloatingPoint else { return }
        let rule = DerivativeRules.rule(for: call.op)
        guard let jvp = rule.jvp else {
            if case let .notImplemented(why) = rule.status {
                throw AutodiffError.derivativeNotImplemented(op: call.op, node: -1, reason: why)
            }
            return
        }
        guard let tangent = try jvp(JVPContext(source: .call(call, rule.saves), tangents: tangents)) else { return }
        try DerivativeRules.check(tangent, of: call.op, input: -1, against: call.output.valueType)
        call.output.traceTags.set(TraceTag(level: levelID, id: 0, payload: Tangent(tangent)))
    }
}
