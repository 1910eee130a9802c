import AdjointTensor

extension DerivativeRules {
    /// `d/dx f(x)`, as ChainRules writes `@scalar_rule`: the same factor scales the cotangent (VJP)
    /// and the tangent (JVP). The formulas are ``PointwiseRules/unary(_:_:x:y:)``.
    static func unary(_ op: OpCode) -> DerivativeRule {
        switch op {
        // Piecewise constant: the derivative is zero wherever it exists.
        case .sign: return .differentiable(vjp: { _ in [nil] }, jvp: { _ in nil })
        // Linear: the JVP is the operator itself applied to the tangent.
        case .neg: return .linear { c in [try pointwise(op, c, c.cotangent)] }
        default:
            guard let saves = PointwiseRules.saves(op) else { preconditionFailure("\(op.rawValue) is not a unary operator") }
            return .pointwise(saving: saves) { c, g in try pointwise(op, c, g) }
        }
    }

    /// `g · f′(x)` from the operator's formula over the context's saved values.
    private static func pointwise(_ op: OpCode, _ c: any DerivativeContext, _ g: Tensor) throws -> Tensor {
        guard let d = try PointwiseRules.unary(op, g, x: { c.input(0) }, y: { c.output }) else {
            preconditionFailure("\(op.rawValue) has no pointwise derivative")
        }
        return d
    }
}
