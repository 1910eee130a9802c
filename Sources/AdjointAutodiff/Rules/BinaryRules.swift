import AdjointTensor

extension DerivativeRules {
    /// The rules of the binary pointwise operators (and `multiplyAdd`, `a · b + c`), from the
    /// formulas of ``PointwiseRules/binary(_:_:_:a:b:y:sameValue:)``: the VJP unbroadcasts each
    /// input's term to its shape, the JVP sums the tangents' terms.
    static func binary(_ op: OpCode) -> DerivativeRule {
        if op == .multiplyAdd {
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0, 1]), vjp: { c in
                let (da, db) = try partials(.mul, c, c.needed(0), c.needed(1))
                return [try da.flatMap { try c.unbroadcast($0, to: 0) }, try db.flatMap { try c.unbroadcast($0, to: 1) },
                        try c.unbroadcast(c.cotangent, to: 2)]
            }, jvp: { c in
                let (da, db) = try partials(.mul, c, c.tangent(0), c.tangent(1))
                return try c.sum(c.tangent(2), da, db)
            })
        }
        guard let saves = PointwiseRules.saves(op) else { preconditionFailure("\(op.rawValue) is not a binary operator") }
        return .differentiable(saving: saves, vjp: { c in
            let (d0, d1) = try partials(op, c, c.needed(0), c.needed(1), sameValue: c.isSameValue(0, 1))
            return [try d0.flatMap { try c.unbroadcast($0, to: 0) }, try d1.flatMap { try c.unbroadcast($0, to: 1) }]
        }, jvp: { c in
            let (d0, d1) = try partials(op, c, c.tangent(0), c.tangent(1))
            return try c.sum(d0, d1)
        })
    }

    /// The formula's two terms over the context's saved values.
    private static func partials(_ op: OpCode, _ c: any DerivativeContext, _ g0: Tensor?, _ g1: Tensor?,
                                 sameValue: Bool = false) throws -> (Tensor?, Tensor?) {
        guard let terms = try PointwiseRules.binary(op, g0, g1, a: { c.input(0) }, b: { c.input(1) }, y: { c.output },
                                                    sameValue: sameValue) else {
            preconditionFailure("\(op.rawValue) has no pointwise derivative")
        }
        return terms
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
