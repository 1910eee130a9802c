import AdjointTensor

extension DerivativeRules {
    /// `d/dx f(x)`, as ChainRules writes `@scalar_rule`: the same factor scales the cotangent (VJP)
    /// and the tangent (JVP); `c.output` is the saved result.
    static func unary(_ op: OpCode) -> DerivativeRule {
        let x = DerivativeRule.Saves(inputs: [0]), y = DerivativeRule.Saves(output: true)
        let xy = DerivativeRule.Saves(inputs: [0], output: true)
        switch op {
        case .neg: return .linear { c in [try -c.cotangent] }
        case .abs: return .pointwise(saving: x) { c, g in try g * c.input(0).sign() }
        // Piecewise constant: the derivative is zero wherever it exists.
        case .sign: return .differentiable(vjp: { _ in [nil] }, jvp: { _ in nil })
        case .exp: return .pointwise(saving: y) { c, g in try g * c.output }
        case .expm1: return .pointwise(saving: y) { c, g in try g * (c.output + 1) }
        case .log: return .pointwise(saving: x) { c, g in try g / c.input(0) }
        case .log1p: return .pointwise(saving: x) { c, g in try g / (c.input(0) + 1) }
        case .sqrt: return .pointwise(saving: y) { c, g in try g / (c.output * 2) }
        case .rsqrt: return .pointwise(saving: xy) { c, g in try g * c.output / c.input(0) * -0.5 }
        case .sin: return .pointwise(saving: x) { c, g in try g * c.input(0).cos() }
        case .cos: return .pointwise(saving: x) { c, g in try -(g * c.input(0).sin()) }
        case .tanh: return .pointwise(saving: y) { c, g in try g * (1 - c.output * c.output) }
        case .sigmoid: return .pointwise(saving: y) { c, g in try g * c.output * (1 - c.output) }
        case .relu:
            return .pointwise(saving: y) { c, g in
                try Tensor.select(c.output.greater(c.output.scalarLike(0)), g, g.scalarLike(0))
            }
        case .softplus: return .pointwise(saving: x) { c, g in try g * c.input(0).sigmoid() }
        default: preconditionFailure("\(op.rawValue) is not a unary operator")
        }
    }
}
