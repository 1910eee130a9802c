import AdjointTensor

/// The rank-0 form of the pointwise rules: their formulas (``PointwiseRules``) over numbers.
///
/// A backward pass over scalar operations (a loss assembled from scalars, a scalar state update)
/// spends almost all its time making rank-0 tensors for the products of the rules. When nothing
/// observes the backward pass (``InterpreterStack/runsUnobserved``: no outer tape, forward level,
/// anomaly check, profiler timer or resource limit, and plain arithmetic) and every value of a
/// node is a float64 or float32 scalar of one dtype, the tape evaluates this form instead: the
/// tensor rule's formula in the element type, the same operations in the same order, so the result
/// is bitwise the one the tensor rule gives (the rule-table test checks every case).
struct ScalarVJP {
    let op: OpCode

    /// Nil for an operator without a rank-0 form: one with no pointwise formula, `sign` (zero
    /// derivative) and `multiplyAdd` (three inputs).
    init?(_ op: OpCode) {
        guard op != .multiplyAdd, PointwiseRules.saves(op) != nil else { return nil }
        self.op = op
    }

    /// The cotangents of inputs 0 and 1 (`nil`: none) from the output's cotangent `g`, the saved
    /// inputs `x0`, `x1` and the saved output `y` (a value the rule does not save is not read, and
    /// is passed as 0), by the formulas of ``PointwiseRules``. `sameValue`: inputs 0 and 1 are one
    /// tracked value (`x * x`).
    @inline(__always)
    func cotangents<T: KernelFloat>(_ g: T, _ x0: T, _ x1: T, output y: T, sameValue: Bool) -> (T?, T?) {
        if let d = PointwiseRules.unary(op, g, x: { x0 }, y: { y }) { return (d, nil) }
        guard let terms = PointwiseRules.binary(op, g, g, a: { x0 }, b: { x1 }, y: { y }, sameValue: sameValue) else {
            preconditionFailure("\(op.rawValue) has no rank-0 rule")
        }
        return terms
    }
}
