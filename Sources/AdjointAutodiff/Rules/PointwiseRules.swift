import AdjointTensor

/// The derivatives of the pointwise operators, each formula written once over ``PointwiseValue``
/// (ChainRules' `@scalar_rule`, PyTorch's `derivatives.yaml`): the tensor rules
/// (``DerivativeRules/unary(_:)``, ``DerivativeRules/binary(_:)``) evaluate them over tensors for
/// both modes — `g` is the cotangent in a VJP and the tangent in a JVP — and the rank-0 backward
/// pass (``ScalarVJP``) over numbers, with the same operations in the same order, so the two agree
/// bit for bit. The values a formula reads come through closures: a rule saves only what its
/// formula reads (``saves(_:)``), and a closure for a value that was not saved is never called.
enum PointwiseRules {
    /// What the derivative of elementwise operator `op` reads: its inputs, its output or both;
    /// nil for an operator without a pointwise derivative formula.
    static func saves(_ op: OpCode) -> DerivativeRule.Saves? {
        switch op {
        case .neg, .add, .sub: DerivativeRule.Saves()
        case .abs, .log, .log1p, .sin, .cos, .softplus: DerivativeRule.Saves(inputs: [0])
        case .exp, .expm1, .sqrt, .tanh, .sigmoid, .relu: DerivativeRule.Saves(output: true)
        case .rsqrt: DerivativeRule.Saves(inputs: [0], output: true)
        case .mul, .div, .maximum, .minimum: DerivativeRule.Saves(inputs: [0, 1])
        case .pow: DerivativeRule.Saves(inputs: [0, 1], output: true)
        default: nil
        }
    }

    /// `g · f′(x)` for `y = f(x)`, unary operator `op`; nil when `op` has no formula here (`sign`'s
    /// derivative is zero wherever it exists).
    @inline(__always)
    static func unary<V: PointwiseValue>(_ op: OpCode, _ g: V, x: () -> V, y: () -> V) throws(V.Failure) -> V? {
        switch op {
        case .neg: return try -g
        case .abs: return try g * x().signum()
        case .exp: return try g * y()
        case .expm1: return try g * (y() + 1)
        case .log: return try g / x()
        case .log1p: return try g / (x() + 1)
        case .sqrt: return try g / (y() * 2)
        case .rsqrt: return try g * y() / x() * -0.5
        case .sin: return try g * x().cos()
        case .cos: return try -(g * x().sin())
        case .tanh:
            let y = y()
            return try g * (1 - y * y)
        case .sigmoid:
            let y = y()
            return try g * y * (1 - y)
        case .relu:
            let y = y()
            return try V.select(y.greater(y.constant(0)), g, else: g.constant(0))
        case .softplus: return try g * x().sigmoid()
        default: return nil
        }
    }

    /// `(g₀ · ∂y/∂a, g₁ · ∂y/∂b)` for `y = a ∘ b`, binary operator `op`, before unbroadcasting
    /// (nil where `gᵢ` is nil); nil when `op` has no formula here. A VJP passes the cotangent as
    /// both `g₀` and `g₁`, a JVP each input's tangent. `sameValue`: `a` and `b` are one tracked
    /// value, and the first derivative is the whole one (`x · x`: one product and a doubling).
    @inline(__always)
    static func binary<V: PointwiseValue>(_ op: OpCode, _ g0: V?, _ g1: V?, a: () -> V, b: () -> V, y: () -> V,
                                          sameValue: Bool = false) throws(V.Failure) -> (V?, V?)? {
        var (d0, d1): (V?, V?) = (nil, nil)
        switch op {
        case .add:
            (d0, d1) = (g0, g1)
        case .sub:
            d0 = g0
            if let g1 { d1 = try -g1 }
        case .mul:
            if sameValue {
                if let g0 { d0 = try g0 * a() * 2 }
                return (d0, nil)
            }
            if let g0 { d0 = try g0 * b() }
            if let g1 { d1 = try g1 * a() }
        case .div:
            let b = b()
            if let g0 { d0 = try g0 / b }
            if let g1 {
                let a = a()
                d1 = try -(g1 * a / (b * b))
            }
        case .pow:
            // ∂/∂a a^b = b·a^(b−1); ∂/∂b a^b = a^b·log a (taken as 0 at a = 0, where a^b is flat in b for b > 0).
            let (a, b) = (a(), b())
            if let g0 { d0 = try g0 * (b * a.pow(b - 1)) }
            if let g1 { d1 = try g1 * (y() * V.select(a.equal(a.constant(0)), a.constant(0), else: a.log())) }
        case .maximum, .minimum:
            // The larger (smaller) operand carries the derivative; ties split it evenly.
            let (a, b) = (a(), b())
            let wins = try op == .maximum ? a.greater(b) : a.less(b)
            let w = try V.indicator(wins, like: a) + V.indicator(a.equal(b), like: a) * 0.5
            if let g0 { d0 = try g0 * w }
            if let g1 { d1 = try g1 * (1 - w) }
        default:
            return nil
        }
        return (d0, d1)
    }
}
