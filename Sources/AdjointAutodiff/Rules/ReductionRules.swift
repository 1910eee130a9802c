import AdjointTensor

extension DerivativeRules {
    static func reduction(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .sum:
            return .vjp { c in
                [try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op).broadcast(to: c.shape(0))]
            }
        case .mean:
            return .vjp { c in
                let n = Double(c.shape(0).reduce(1, *) / Swift.max(1, c.outputType.shape.reduce(1, *)))
                return [try (c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op) / n).broadcast(to: c.shape(0))]
            }
        case .max, .min:
            // The cotangent is shared evenly among the elements that attain the extremum.
            return .vjp(saving: DerivativeRule.Saves(inputs: [0], output: true)) { c in
                let x = c.input(0)
                let y = try c.output.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                let mask = try x.equal(y).cast(to: x.dtype)
                guard case let .reduction(axes, _) = c.attributes else { return [nil] }
                let count = try mask.sum(axes: axes, keepDims: true)
                let g = try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                return [try g * mask / count]
            }
        case .logsumexp:
            return .vjp(saving: DerivativeRule.Saves(inputs: [0], output: true)) { c in
                let y = try c.output.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                let g = try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                return [try g * (c.input(0) - y).exp()]
            }
        case .argmax: return .nonDifferentiable("integer result")
        default: preconditionFailure("\(op.rawValue) is not a reduction")
        }
    }

    static func linalg(_ op: OpCode) -> DerivativeRule {
        // C = op(A)·op(B): dA and dB are products with the cotangent, transposed as needed; batch
        // axes that were broadcast are summed back.
        .vjp(saving: DerivativeRule.Saves(inputs: [0, 1])) { c in
            guard case let .matmul(ta, tb) = c.attributes else { return [nil, nil] }
            let (a, b, g) = (c.input(0), c.input(1), c.cotangent)
            let da = try c.unbroadcast(
                ta ? b.matmul(g, transposeSelf: tb, transposeOther: true) : g.matmul(b, transposeSelf: false, transposeOther: !tb),
                to: 0)
            let db = try c.unbroadcast(
                tb ? g.matmul(a, transposeSelf: true, transposeOther: ta) : a.matmul(g, transposeSelf: !ta, transposeOther: false),
                to: 1)
            return [da, db]
        }
    }
}
