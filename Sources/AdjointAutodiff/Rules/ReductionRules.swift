import AdjointTensor

extension DerivativeRules {
    static func reduction(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .sum:
            return .linear { c in
                [try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op).broadcast(to: c.shape(0))]
            }
        case .mean:
            return .linear { c in
                let n = Double(c.shape(0).reduce(1, *) / Swift.max(1, c.outputType.shape.reduce(1, *)))
                return [try (c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op) / n).broadcast(to: c.shape(0))]
            }
        case .max, .min:
            // The derivative is shared evenly among the elements that attain the extremum.
            func weights(_ c: any DerivativeContext) throws -> Tensor {
                let x = c.input(0)
                let y = try c.output.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                let mask = try x.equal(y).cast(to: x.dtype)
                return try mask / mask.sum(axes: c.reducedAxes(), keepDims: true)
            }
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0], output: true), vjp: { c in
                let g = try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                return [try g * weights(c)]
            }, jvp: { c in
                try c.tangent(0).map { try c.reduceToOutput($0 * weights(c)) }
            })
        case .logsumexp:
            func softmax(_ c: any DerivativeContext) throws -> Tensor {
                try (c.input(0) - c.output.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)).exp()
            }
            return .differentiable(saving: DerivativeRule.Saves(inputs: [0], output: true), vjp: { c in
                let g = try c.cotangent.expandReduced(inputShape: c.shape(0), attributes: c.attributes, op: op)
                return [try g * softmax(c)]
            }, jvp: { c in
                try c.tangent(0).map { try c.reduceToOutput($0 * softmax(c)) }
            })
        case .argmax: return .nonDifferentiable("integer result")
        default: preconditionFailure("\(op.rawValue) is not a reduction")
        }
    }

    static func linalg(_ op: OpCode) -> DerivativeRule {
        // C = op(A)·op(B): dA and dB are products with the cotangent, transposed as needed; batch
        // axes that were broadcast are summed back.
        .differentiable(saving: DerivativeRule.Saves(inputs: [0, 1]), vjp: { c in
            guard case let .matmul(ta, tb) = c.attributes else { return [nil, nil] }
            let (a, b, g) = (c.input(0), c.input(1), c.cotangent)
            let da = try c.unbroadcast(
                ta ? b.matmul(g, transposeSelf: tb, transposeOther: true) : g.matmul(b, transposeSelf: false, transposeOther: !tb),
                to: 0)
            let db = try c.unbroadcast(
                tb ? g.matmul(a, transposeSelf: true, transposeOther: ta) : a.matmul(g, transposeSelf: !ta, transposeOther: false),
                to: 1)
            return [da, db]
        }, jvp: { c in
            // Bilinear: dC = op(dA)·op(B) + op(A)·op(dB).
            guard case let .matmul(ta, tb) = c.attributes else { return nil }
            return try c.sum(c.tangent(0).map { try $0.matmul(c.input(1), transposeSelf: ta, transposeOther: tb) },
                             c.tangent(1).map { try c.input(0).matmul($0, transposeSelf: ta, transposeOther: tb) })
        })
    }
}
