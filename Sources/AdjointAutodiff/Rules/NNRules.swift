import AdjointTensor

extension DerivativeRules {
    static func nn(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .softmax:
            // dx = y ⊙ (g − Σ g⊙y); the Jacobian is symmetric, so the JVP has the same form.
            func product(_ c: any DerivativeContext, _ g: Tensor) throws -> Tensor {
                guard case let .axis(axis) = c.attributes else { return g }
                let y = c.output
                return try y * (g - (g * y).sum(axes: [axis], keepDims: true))
            }
            return .differentiable(saving: DerivativeRule.Saves(output: true),
                                   vjp: { c in [try product(c, c.cotangent)] },
                                   jvp: { c in try c.tangent(0).map { try product(c, $0) } })
        case .logSoftmax:
            // VJP: dx = g − softmax(x) ⊙ Σ g;  JVP: dy = t − Σ softmax(x) ⊙ t.
            return .differentiable(saving: DerivativeRule.Saves(output: true), vjp: { c in
                guard case let .axis(axis) = c.attributes else { return [nil] }
                let g = c.cotangent
                return [try g - c.output.exp() * g.sum(axes: [axis], keepDims: true)]
            }, jvp: { c in
                guard case let .axis(axis) = c.attributes, let t = c.tangent(0) else { return nil }
                return try t - (c.output.exp() * t).sum(axes: [axis], keepDims: true)
            })
        case .crossEntropyWithLogits:
            // d/dlogits = softmax(logits) − onehot(label), per example.
            func residual(_ c: any DerivativeContext) throws -> Tensor {
                let logits = c.input(0)
                return try logits.softmax(axis: -1) - c.input(1).oneHot(depth: logits.shape.last!, dtype: logits.dtype)
            }
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0, 1]), vjp: { c in
                let g = try c.cotangent.reshaped(c.cotangent.shape + [1])
                return [try residual(c) * g, nil]
            }, jvp: { c in
                try c.tangent(0).map { try ($0 * residual(c)).sum(axes: [-1]) }
            })
        case .meanSquaredError:
            func scaledResidual(_ c: any DerivativeContext) throws -> Tensor {
                try (c.input(0) - c.input(1)) * (2 / Double(Swift.max(1, c.shape(0).reduce(1, *))))
            }
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0, 1]), vjp: { c in
                let d = try scaledResidual(c) * c.cotangent
                return [c.needsGradient(0) ? d : nil, c.needsGradient(1) ? try -d : nil]
            }, jvp: { c in
                let t: Tensor
                switch (c.tangent(0), c.tangent(1)) {
                case (nil, nil): return nil
                case let (ta?, nil): t = ta
                case let (nil, tb?): t = try -tb
                case let (ta?, tb?): t = try ta - tb
                }
                return try (t * scaledResidual(c)).sum()
            })
        default: preconditionFailure("\(op.rawValue) is not an nn operator")
        }
    }

    /// In-place operators are recorded as the functional update they perform; input 0 is the
    /// target's value before the write (the dispatcher keeps a copy while recording).
    static func inPlace(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .addInPlace: return binary(.add)
        case .mulInPlace: return binary(.mul)
        case .multiplyAddInPlace:
            // target + a·b, inputs (target before the write, a, b).
            return .differentiable(saving: DerivativeRule.Saves(inputs: [1, 2]), vjp: { c in
                [try c.unbroadcast(c.cotangent, to: 0), try c.unbroadcast(c.cotangent * c.input(2), to: 1),
                 try c.unbroadcast(c.cotangent * c.input(1), to: 2)]
            }, jvp: { c in
                try c.productRule([(c.tangent(1), c.input(2)), (c.tangent(2), c.input(1))], adding: c.tangent(0))
            })
        case .assignInPlace:
            return .differentiable(vjp: { c in
                guard case let .region(starts, ends) = c.attributes else { return [nil, nil] }
                let g = c.cotangent
                let inside = try g.slice(starts: starts, ends: ends)
                let high = g.shape.indices.map { g.shape[$0] - ends[$0] }
                let target = c.needsGradient(0) ? try g - inside.padded(low: starts, high: high) : nil
                return [target, try c.unbroadcast(inside, to: 1)]
            }, jvp: { c in
                // The target's tangent with the region overwritten by the value's tangent.
                guard case let .region(starts, ends) = c.attributes, c.tangent(0) != nil || c.tangent(1) != nil else { return nil }
                var result = try c.tangentOrZeros(0)
                try result.assign(c.tangentOrZeros(1), starts: starts, ends: ends)
                return result
            })
        default: preconditionFailure("\(op.rawValue) is not an in-place operator")
        }
    }
}
