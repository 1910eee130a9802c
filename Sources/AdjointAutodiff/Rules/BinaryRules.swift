import AdjointTensor

extension DerivativeRules {
    static func binary(_ op: OpCode) -> DerivativeRule {
        let ab = DerivativeRule.Saves(inputs: [0, 1])
        switch op {
        case .add:
            return .differentiable(vjp: { c in [try c.unbroadcast(c.cotangent, to: 0), try c.unbroadcast(c.cotangent, to: 1)] },
                                   jvp: { c in try c.sum(c.tangent(0), c.tangent(1)) })
        case .sub:
            return .differentiable(vjp: { c in [try c.unbroadcast(c.cotangent, to: 0), try c.unbroadcast(-c.cotangent, to: 1)] },
                                   jvp: { c in
                                       guard let tb = c.tangent(1) else { return try c.sum(c.tangent(0)) }
                                       return try c.sum(c.tangent(0).map { try $0 - tb } ?? -tb)
                                   })
        case .mul:
            return .differentiable(saving: ab, vjp: { c in
                // x·x: one product and a doubling instead of two products and their sum.
                if c.isSameValue(0, 1) { return [try c.unbroadcast(c.cotangent * c.input(0) * 2, to: 0), nil] }
                return [try c.unbroadcast(c.cotangent * c.input(1), to: 0), try c.unbroadcast(c.cotangent * c.input(0), to: 1)]
            }, jvp: { c in
                try c.productRule([(c.tangent(0), c.input(1)), (c.tangent(1), c.input(0))])
            })
        case .div:
            return .differentiable(saving: ab, vjp: { c in
                let (a, b) = (c.input(0), c.input(1))
                return [try c.unbroadcast(c.cotangent / b, to: 0), try c.unbroadcast(-(c.cotangent * a / (b * b)), to: 1)]
            }, jvp: { c in
                let (a, b) = (c.input(0), c.input(1))
                return try c.sum(c.tangent(0).map { try $0 / b }, c.tangent(1).map { try -($0 * a / (b * b)) })
            })
        case .pow:
            // d/da a^b = b·a^(b-1); d/db a^b = a^b·log a (taken as 0 at a = 0, where a^b is flat in b for b > 0).
            func dA(_ c: any DerivativeContext) throws -> Tensor { try c.input(1) * c.input(0).pow(c.input(1) - 1) }
            func dB(_ c: any DerivativeContext) throws -> Tensor {
                let a = c.input(0)
                let logA = try Tensor.select(a.equal(a.scalarLike(0)), a.scalarLike(0), a.log())
                return try c.output * logA
            }
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0, 1], output: true), vjp: { c in
                [try c.unbroadcast(c.cotangent * dA(c), to: 0), try c.unbroadcast(c.cotangent * dB(c), to: 1)]
            }, jvp: { c in
                try c.sum(c.tangent(0).map { try $0 * dA(c) }, c.tangent(1).map { try $0 * dB(c) })
            })
        case .maximum, .minimum:
            // The larger (smaller) operand carries the derivative; ties split it evenly.
            func weightA(_ c: any DerivativeContext) throws -> Tensor {
                let (a, b) = (c.input(0), c.input(1))
                let wins = try op == .maximum ? a.greater(b) : a.less(b)
                return try wins.cast(to: a.dtype) + a.equal(b).cast(to: a.dtype) * 0.5
            }
            return .differentiable(saving: ab, vjp: { c in
                let w = try weightA(c)
                return [try c.unbroadcast(c.cotangent * w, to: 0), try c.unbroadcast(c.cotangent * (1 - w), to: 1)]
            }, jvp: { c in
                let w = try weightA(c)
                return try c.sum(c.tangent(0).map { try $0 * w }, c.tangent(1).map { try $0 * (1 - w) })
            })
        case .multiplyAdd:
            return .differentiable(saving: ab, vjp: { c in
                [try c.unbroadcast(c.cotangent * c.input(1), to: 0), try c.unbroadcast(c.cotangent * c.input(0), to: 1),
                 try c.unbroadcast(c.cotangent, to: 2)]
            }, jvp: { c in
                try c.productRule([(c.tangent(0), c.input(1)), (c.tangent(1), c.input(0))], adding: c.tangent(2))
            })
        default: preconditionFailure("\(op.rawValue) is not a binary operator")
        }
    }

    static func comparison(_ op: OpCode) -> DerivativeRule {
        guard op == .select else { return .nonDifferentiable("boolean result") }
        // Linear in the two branches for a fixed condition.
        return .linear(saving: DerivativeRule.Saves(inputs: [0])) { c in
            let condition = c.input(0), g = c.cotangent, zero = try g.scalarLike(0)
            return [nil,
                    try c.unbroadcast(Tensor.select(condition, g, zero), to: 1),
                    try c.unbroadcast(Tensor.select(condition, zero, g), to: 2)]
        }
    }

    static func conversion(_ op: OpCode) -> DerivativeRule {
        .linear { c in
            guard c.dtype(0).isFloatingPoint else { return [nil] }
            return [try c.cotangent.cast(to: c.dtype(0))]
        }
    }

    static func creation(_ op: OpCode) -> DerivativeRule {
        .nonDifferentiable(op == .randomUniform || op == .randomNormal ? "random draw with no tensor inputs" : "constant with no tensor inputs")
    }
}
