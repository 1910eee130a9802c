import AdjointTensor

extension DerivativeRules {
    static func nn(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .softmax:
            // dx = y ⊙ (g − Σ g⊙y)
            return .vjp(saving: DerivativeRule.Saves(output: true)) { c in
                guard case let .axis(axis) = c.attributes else { return [nil] }
                let y = c.output, g = c.cotangent
                return [try y * (g - (g * y).sum(axes: [axis], keepDims: true))]
            }
        case .logSoftmax:
            // dx = g − softmax(x) ⊙ Σ g
            return .vjp(saving: DerivativeRule.Saves(output: true)) { c in
                guard case let .axis(axis) = c.attributes else { return [nil] }
                let g = c.cotangent
                return [try g - c.output.exp() * g.sum(axes: [axis], keepDims: true)]
            }
        case .crossEntropyWithLogits:
            // d/dlogits = (softmax(logits) − onehot(label)) · g
            return .vjp(saving: DerivativeRule.Saves(inputs: [0, 1])) { c in
                let logits = c.input(0)
                let target = try c.input(1).oneHot(depth: logits.shape.last!, dtype: logits.dtype)
                let g = try c.cotangent.reshaped(c.cotangent.shape + [1])
                return [try (logits.softmax(axis: -1) - target) * g, nil]
            }
        case .meanSquaredError:
            return .vjp(saving: DerivativeRule.Saves(inputs: [0, 1])) { c in
                let n = Double(Swift.max(1, c.shape(0).reduce(1, *)))
                let d = try (c.input(0) - c.input(1)) * c.cotangent * (2 / n)
                return [c.needsGradient(0) ? d : nil, c.needsGradient(1) ? try -d : nil]
            }
        default: preconditionFailure("\(op.rawValue) is not an nn operator")
        }
    }

    /// In-place operators are recorded as the functional update they perform; input 0 is the
    /// target's value before the write (the dispatcher keeps a copy while recording).
    static func inPlace(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .addInPlace: return binary(.add)
        case .mulInPlace: return binary(.mul)
        case .assignInPlace:
            return .vjp { c in
                guard case let .region(starts, ends) = c.attributes else { return [nil, nil] }
                let g = c.cotangent
                let inside = try g.slice(starts: starts, ends: ends)
                let high = g.shape.indices.map { g.shape[$0] - ends[$0] }
                let target = c.needsGradient(0) ? try g - inside.padded(low: starts, high: high) : nil
                return [target, try c.unbroadcast(inside, to: 1)]
            }
        default: preconditionFailure("\(op.rawValue) is not an in-place operator")
        }
    }
}
