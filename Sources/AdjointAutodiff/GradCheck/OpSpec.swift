import AdjointTensor

/// One input of an op-spec case: its shape and the domain its values are drawn from.
package struct InputSpec: Sendable {
    /// How the input's shape is chosen.
    package enum Shape: Sendable {
        /// Exactly this shape.
        case fixed([Int])
        /// A random shape of rank in `ranks` with extents 1…4, drawn from the case's key.
        case random(ranks: ClosedRange<Int>)
        /// The same shape as input `index`.
        case like(Int)
    }

    /// Where values come from.
    package enum Domain: Sendable {
        /// Uniform in the range.
        case uniform(ClosedRange<Double>)
        /// Magnitude uniform in the range, random sign (keeps away from a kink at 0).
        case awayFromZero(ClosedRange<Double>)
        /// Integer indices in `0 ..< bound` (i64), not differentiated.
        case indices(bound: Int)
        /// Random booleans, not differentiated.
        case mask
    }

    package var shape: Shape
    package var domain: Domain

    package init(_ shape: Shape, _ domain: Domain) {
        self.shape = shape
        self.domain = domain
    }

    package var isDifferentiable: Bool {
        switch domain {
        case .uniform, .awayFromZero: return true
        case .indices, .mask: return false
        }
    }
}

/// One row of the op-spec table: an operator applied to inputs from given domains, with the
/// finite-difference step and tolerance it is checked at.
package struct OpSpec: Sendable, CustomStringConvertible {
    /// The operator the case exercises.
    package var op: OpCode
    /// What distinguishes this case (shape family, broadcasting, edge domain).
    package var label: String
    package var inputs: [InputSpec]
    package var function: @Sendable ([Tensor]) throws -> Tensor
    package var step: Double
    package var tolerance: Double

    package init(_ op: OpCode, _ label: String, _ inputs: [InputSpec], step: Double = 1e-6, tolerance: Double = 1e-6,
                _ function: @escaping @Sendable ([Tensor]) throws -> Tensor) {
        self.op = op
        self.label = label
        self.inputs = inputs
        self.function = function
        self.step = step
        self.tolerance = tolerance
    }

    package var description: String { "\(op.rawValue) \(label)" }

    /// A key derived from the case's name (FNV-1a), so every case draws its own fixed numbers.
    package var key: RandomKey {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in description.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return RandomKey(seed: hash)
    }

    /// Draws the inputs (float64) from the case's key.
    package func makeInputs() throws -> [Tensor] {
        let key = self.key
        var shapes: [[Int]] = []
        for (i, input) in inputs.enumerated() {
            switch input.shape {
            case let .fixed(s): shapes.append(s)
            case let .like(j): shapes.append(shapes[j])
            case let .random(ranks):
                let draws = try Tensor.uniform([5], key: key.fold(in: UInt64(1000 + i))).doubles
                let rank = ranks.lowerBound + Int(draws[0] * Double(ranks.count))
                shapes.append((0..<rank).map { 1 + Int(draws[1 + $0] * 4) })
            }
        }
        return try inputs.enumerated().map { i, input in
            let k = key.fold(in: UInt64(i))
            let shape = shapes[i]
            switch input.domain {
            case let .uniform(r):
                return try Tensor.uniform(shape, key: k, low: r.lowerBound, high: r.upperBound)
            case let .awayFromZero(r):
                let magnitude = try Tensor.uniform(shape, key: k, low: r.lowerBound, high: r.upperBound)
                let signs = try Tensor.uniform(shape, key: k.fold(in: 1)).greater(Tensor(0.5)).cast(to: .float64) * 2 - 1
                return try magnitude * signs
            case let .indices(bound):
                return try (Tensor.uniform(shape, key: k) * Double(bound)).cast(to: .int64)
            case .mask:
                return try Tensor.uniform(shape, key: k).greater(Tensor(0.5))
            }
        }
    }

    /// Runs ``gradcheck(_:at:differentiable:mode:order:step:tolerance:key:)`` on this case.
    package func check(mode: GradcheckMode = .reverse, order: Int = 1) throws -> GradcheckResult {
        try gradcheck(function, at: try makeInputs(), differentiable: inputs.map(\.isDifferentiable),
                      mode: mode, order: order, step: step, tolerance: tolerance, key: key.fold(in: 99))
    }
}
