import AdjointTensor

extension DerivativeRules {
    static func binary(_ op: OpCode) -> DerivativeRule {
        let ab = DerivativeRule.Saves(inputs: [0, 1])
        switch op {
        case .add:
            return .vjp { c in [try c.unbroadcast(c.cotangent, to: 0), try c.unbroadcast(c.cotangent, to: 1)] }
        case .sub:
            return .vjp { c in [try c.unbroadcast(c.cotangent, to: 0), try c.unbroadcast(-c.cotangent, to: 1)] }
        case .mul:
            return .vjp(saving: ab) { c in
                [try c.unbroadcast(c.cotangent * c.input(1), to: 0), try c.unbroadcast(c.cotangent * c.input(0), to: 1)]
            }
        case .div:
            return .vjp(saving: ab) { c in
                let (a, b) = (c.input(0), c.input(1))
                return [try c.unbroadcast(c.cotangent / b, to: 0), try c.unbroadcast(-(c.cotangent * a / (b * b)), to: 1)]
            }
        case .pow:
            // d/da a^b = b·a^(b-1); d/db a^b = a^b·log a (taken as 0 at a = 0, where a^b is flat in b for b > 0).
            return .vjp(saving: DerivativeRule.Saves(inputs: [0, 1], output: true)) { c in
                let (a, b, y) = (c.input(0), c.input(1), c.output)
                let da = try c.unbroadcast(c.cotangent * b * a.pow(b - 1), to: 0)
                let db = try c.unbroadcast({
                    let atZero = try a.equal(a.scalarLike(0))
                    let logA = try Tensor.select(atZero, a.scalarLike(0), a.log())
                    return try c.cotangent * y * logA
                }(), to: 1)
                return [da, db]
            }
        case .maximum, .minimum:
            // The cotangent goes to the larger (smaller) operand; ties split it evenly.
            return .vjp(saving: ab) { c in
                let (a, b) = (c.input(0), c.input(1))
                let wins = try op == .maximum ? a.greater(b) : a.less(b)
                let weightA = try wins.cast(to: a.dtype) + a.equal(b).cast(to: a.dtype) * 0.5
                return [try c.unbroadcast(c.cotangent * weightA, to: 0), try c.unbroadcast(c.cotangent * (1 - weightA), to: 1)]
            }
        default: preconditionFailure("\(op.rawValue) is not a binary operator")
        }
    }

    static func comparison(_ op: OpCode) -> DerivativeRule {
        guard op == .select else { return .nonDifferentiable("boolean result") }
        return .vjp(saving: DerivativeRule.Saves(inputs: [0])) { c in
            let condition = c.input(0), g = c.cotangent, zero = try g.scalarLike(0)
            return [nil,
                    try c.unbroadcast(Tensor.select(condition, g, zero), to: 1),
                    try c.unbroadcast(Tensor.select(condition, zero, g), to: 2)]
        }
    }

    static func conversion(_ op: OpCode) -> DerivativeRule {
        .vjp { c in
            guard c.dtype(0).isFloatingPoint else { return [nil] }
            return [try c.cotangent.cast(to: c.dtype(0))]
        }
    }

    static func creation(_ op: OpCode) -> DerivativeRule {
        .nonDifferentiable(op == .randomUniform || op == .randomNormal ? "random draw with no tensor inputs" : "constant with no tensor inputs")
    }
}
