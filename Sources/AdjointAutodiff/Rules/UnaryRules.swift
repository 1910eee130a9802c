import AdjointTensor

extension DerivativeRules {
    /// `d/dx f(x)`, as ChainRules writes `@scalar_rule`: y is the saved output.
    static func unary(_ op: OpCode) -> DerivativeRule {
        let x = DerivativeRule.Saves(inputs: [0]), y = DerivativeRule.Saves(output: true)
        let xy = DerivativeRule.Saves(inputs: [0], output: true)
        switch op {
        case .neg: return .vjp { c in [try -c.cotangent] }
        case .abs: return .vjp(saving: x) { c in [try c.cotangent * c.input(0).sign()] }
        // Piecewise constant: the derivative is zero wherever it exists.
        case .sign: return .vjp { _ in [nil] }
        case .exp: return .vjp(saving: y) { c in [try c.cotangent * c.output] }
        case .expm1: return .vjp(saving: y) { c in [try c.cotangent * (c.output + 1)] }
        case .log: return .vjp(saving: x) { c in [try c.cotangent / c.input(0)] }
        case .log1p: return .vjp(saving: x) { c in [try c.cotangent / (c.input(0) + 1)] }
        case .sqrt: return .vjp(saving: y) { c in [try c.cotangent / (c.output * 2)] }
        case .rsqrt: return .vjp(saving: xy) { c in [try c.cotangent * c.output / c.input(0) * -0.5] }
        case .sin: return .vjp(saving: x) { c in [try c.cotangent * c.input(0).cos()] }
        case .cos: return .vjp(saving: x) { c in [try -(c.cotangent * c.input(0).sin())] }
        case .tanh: return .vjp(saving: y) { c in [try c.cotangent * (1 - c.output * c.output)] }
        case .sigmoid: return .vjp(saving: y) { c in [try c.cotangent * c.output * (1 - c.output)] }
        case .relu:
            return .vjp(saving: y) { c in
                let positive = try c.output.greater(c.output.scalarLike(0))
                return [try Tensor.select(positive, c.cotangent, c.cotangent.scalarLike(0))]
            }
        case .softplus: return .vjp(saving: x) { c in [try c.cotangent * c.input(0).sigmoid()] }
        default: preconditionFailure("\(op.rawValue) is not a unary operator")
        }
    }
}
