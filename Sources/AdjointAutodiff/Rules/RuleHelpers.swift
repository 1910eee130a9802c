import AdjointTensor

extension Tensor {
    /// Sums a broadcast cotangent back to `shape` (the adjoint of NumPy broadcasting).
    func unbroadcast(to shape: [Int]) throws -> Tensor {
        if self.shape == shape { return self }
        let lead = rank - shape.count
        var axes = Array(0..<lead)
        for (i, d) in shape.enumerated() where d == 1 && self.shape[lead + i] != 1 { axes.append(lead + i) }
        let summed = axes.isEmpty ? self : try sum(axes: axes, keepDims: true)
        return try summed.reshaped(shape)
    }

    /// `self` reshaped so that it broadcasts against an input of `shape` reduced over `axes`.
    func expandReduced(inputShape shape: [Int], attributes: Attributes, op: OpCode) throws -> Tensor {
        guard case let .reduction(rawAxes, _) = attributes else { return self }
        let axes = try ShapeRules.axes(rawAxes, rank: shape.count, op: op.rawValue)
        var keep = shape
        for a in axes { keep[a] = 1 }
        return try reshaped(keep)
    }
}

extension VJPContext {
    /// The cotangent when input `i` needs a gradient, else `nil` (a formula then computes nothing
    /// for it).
    func needed(_ i: Int) -> Tensor? { needsGradient(i) ? cotangent : nil }

    /// The cotangent summed to input `i`'s shape, or `nil` when `i` needs none.
    func unbroadcast(_ g: @autoclosure () throws -> Tensor, to i: Int) throws -> Tensor? {
        guard needsGradient(i) else { return nil }
        return try g().unbroadcast(to: shape(i))
    }
}

extension JVPContext {
    /// The sum of the non-zero terms, broadcast to the output's shape; `nil` when every term is zero.
    func sum(_ terms: Tensor?...) throws -> Tensor? {
        var total: Tensor?
        for case let term? in terms { total = try total.map { try $0 + term } ?? term }
        return try total.map(fitted)
    }
}

extension DerivativeContext {
    /// The reduction's axes, normalized (every axis when the attribute lists none).
    func reducedAxes() throws -> [Int] {
        guard case let .reduction(axes, _) = attributes else { return [] }
        return try ShapeRules.axes(axes, rank: shape(0).count, op: op.rawValue)
    }

    /// Sums an input-shaped tensor over the reduced axes into the output's shape.
    func reduceToOutput(_ t: Tensor) throws -> Tensor {
        try t.sum(axes: reducedAxes(), keepDims: true).reshaped(outputType.shape)
    }
}

extension JVPContext {
    /// `Σ tangentᵢ·factorᵢ (+ addend)` over the non-zero tangents, fused into ``OpCode/multiplyAdd``
    /// passes (one pass per term instead of a product and a sum), broadcast to the output's shape.
    func productRule(_ terms: [(tangent: Tensor?, factor: Tensor)], adding addend: Tensor? = nil) throws -> Tensor? {
        var total = addend
        for case let (tangent?, factor) in terms {
            total = try total.map { try tangent.multiplied(by: factor, adding: $0) } ?? tangent * factor
        }
        return try total.map(fitted)
    }
}
