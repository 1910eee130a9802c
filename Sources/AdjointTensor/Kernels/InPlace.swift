extension Kernels {
    /// Checks an in-place call before anything is written.
    static func validateInPlace(_ op: OpCode, _ attributes: Attributes, target: Tensor, operands: [Tensor]) throws {
        let expected = op == .multiplyAddInPlace ? 2 : 1
        guard operands.count == expected else {
            throw TensorError.invalidArgument(op: op.rawValue, detail: "takes \(expected) operand\(expected == 1 ? "" : "s"), got \(operands.count)")
        }
        let value = operands[0]
        switch op {
        case .multiplyAddInPlace:
            try requireFloat(target, op: op, role: "target")
            try requireSameDType(target, operands[0], op: op)
            try requireSameDType(target, operands[1], op: op)
            let shape = try ShapeRules.broadcast(ShapeRules.broadcast(target.shape, operands[0].shape, op: op.rawValue), operands[1].shape, op: op.rawValue)
            guard shape == target.shape else {
                throw TensorError.shapeMismatch(op: op.rawValue, detail: "operands \(shapeText(operands[0].shape)) and \(shapeText(operands[1].shape)) do not broadcast to the target's shape \(shapeText(target.shape))")
            }
        case .addInPlace, .mulInPlace:
            try requireFloat(target, op: op, role: "target")
            try requireSameDType(target, value, op: op)
            let shape = try ShapeRules.broadcast(target.shape, value.shape, op: op.rawValue)
            guard shape == target.shape else {
                throw TensorError.shapeMismatch(op: op.rawValue, detail: "operand \(shapeText(value.shape)) does not broadcast to the target's shape \(shapeText(target.shape))")
            }
        case .assignInPlace:
            guard case let .region(starts, ends) = attributes else { throw badAttributes(op, attributes) }
            try checkRegion(target.shape, starts: starts, ends: ends, op: op.rawValue)
            try requireSameDType(target, value, op: op)
            let regionShape = zip(starts, ends).map { $1 - $0 }
            let shape = try ShapeRules.broadcast(regionShape, value.shape, op: op.rawValue)
            guard shape == regionShape else {
                throw TensorError.shapeMismatch(op: op.rawValue, detail: "value \(shapeText(value.shape)) does not broadcast to the region \(shapeText(regionShape))")
            }
        default:
            throw TensorError.invalidArgument(op: op.rawValue, detail: "not an in-place operator")
        }
    }

    /// Writes into `target` (already made unique).
    static func executeInPlace(_ op: OpCode, _ attributes: Attributes, target: Tensor, operands: [Tensor]) throws {
        let value = operands[0]
        switch op {
        case .addInPlace, .mulInPlace:
            if target.dtype == .float64 {
                let p = target.elements(Double.self)
                if op == .addInPlace { zipInto(p, target.shape, target, p, value, value.elements(Double.self), AddFn.self) }
                else { zipInto(p, target.shape, target, p, value, value.elements(Double.self), MulFn.self) }
            } else {
                let p = target.elements(Float.self)
                if op == .addInPlace { zipInto(p, target.shape, target, p, value, value.elements(Float.self), AddFn.self) }
                else { zipInto(p, target.shape, target, p, value, value.elements(Float.self), MulFn.self) }
            }
        case .multiplyAddInPlace:
            let (a, b) = (operands[0], operands[1])
            if target.dtype == .float64 {
                let p = target.elements(Double.self)
                multiplyAddInto(p, target.shape, a, a.elements(Double.self), b, b.elements(Double.self), target, p)
            } else {
                let p = target.elements(Float.self)
                multiplyAddInto(p, target.shape, a, a.elements(Float.self), b, b.elements(Float.self), target, p)
            }
        default:
            guard case let .region(starts, ends) = attributes else { throw badAttributes(op, attributes) }
            let regionShape = zip(starts, ends).map { $1 - $0 }
            let strides = ShapeRules.contiguousStrides(target.shape)
            let start = target.offset + zip(starts, strides).reduce(0) { $0 + $1.0 * $1.1 }
            stridedCopy(from: value.storage, value.offset, ShapeRules.broadcastStrides(value.shape, to: regionShape),
                        to: target.storage, start, strides, shape: regionShape)
        }
    }
}
