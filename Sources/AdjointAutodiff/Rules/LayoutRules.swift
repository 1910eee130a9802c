import AdjointTensor

extension DerivativeRules {
    static func layout(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .reshape: return .linear { c in [try c.cotangent.reshaped(c.shape(0))] }
        case .transpose:
            return .linear { c in
                guard case let .permutation(p) = c.attributes else { return [nil] }
                var inverse = p
                for (i, axis) in p.enumerated() { inverse[axis] = i }
                return [try c.cotangent.transposed(inverse)]
            }
        case .broadcastTo: return .linear { c in [try c.cotangent.unbroadcast(to: c.shape(0))] }
        case .slice:
            return .linear { c in
                guard case let .region(starts, ends) = c.attributes else { return [nil] }
                let high = c.shape(0).indices.map { c.shape(0)[$0] - ends[$0] }
                return [try c.cotangent.padded(low: starts, high: high)]
            }
        case .pad:
            // Affine: the padding value is a constant, so the tangent is padded with zeros.
            return .differentiable(vjp: { c in
                guard case let .pad(low, _, _) = c.attributes else { return [nil] }
                return [try c.cotangent.slice(starts: low, ends: low.indices.map { low[$0] + c.shape(0)[$0] })]
            }, jvp: { c in
                guard case let .pad(low, high, _) = c.attributes else { return nil }
                return try c.tangent(0).map { try $0.padded(low: low, high: high) }
            })
        case .concat, .stack:
            return .linear { c in
                guard case let .axis(rawAxis) = c.attributes else { return [] }
                let g = c.cotangent
                let axis = try ShapeRules.axis(rawAxis, rank: g.rank, op: op.rawValue)
                var position = 0
                return try c.inputTypes.indices.map { i in
                    let extent = op == .concat ? c.shape(i)[axis] : 1
                    defer { position += extent }
                    guard c.needsGradient(i) else { return nil }
                    var starts = [Int](repeating: 0, count: g.rank), ends = g.shape
                    starts[axis] = position
                    ends[axis] = position + extent
                    return try g.slice(starts: starts, ends: ends).reshaped(c.shape(i))
                }
            }
        default: preconditionFailure("\(op.rawValue) is not a layout operator")
        }
    }

    static func indexing(_ op: OpCode) -> DerivativeRule {
        switch op {
        case .gather:
            return .linear(saving: DerivativeRule.Saves(inputs: [1])) { c in
                guard case let .axis(axis) = c.attributes else { return [nil, nil] }
                let zeros = try Tensor.full(c.shape(0), 0, dtype: c.dtype(0), on: c.cotangent.device)
                return [try zeros.scatterAdd(c.input(1), c.cotangent, axis: axis), nil]
            }
        case .scatterAdd:
            return .linear(saving: DerivativeRule.Saves(inputs: [1])) { c in
                guard case let .axis(axis) = c.attributes else { return [nil, nil, nil] }
                return [c.needsGradient(0) ? c.cotangent : nil, nil,
                        c.needsGradient(2) ? try c.cotangent.gather(c.input(1), axis: axis) : nil]
            }
        case .oneHot: return .nonDifferentiable("encodes integer indices")
        default: preconditionFailure("\(op.rawValue) is not an indexing operator")
        }
    }
}
