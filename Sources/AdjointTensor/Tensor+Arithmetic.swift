extension Tensor {
    // MARK: Unary
    public func neg() throws -> Tensor { try dispatchUnary(.neg, self) }
    public func abs() throws -> Tensor { try dispatchUnary(.abs, self) }
    public func sign() throws -> Tensor { try dispatchUnary(.sign, self) }
    public func exp() throws -> Tensor { try dispatchUnary(.exp, self) }
    /// `exp(x) - 1`, accurate near 0.
    public func expm1() throws -> Tensor { try dispatchUnary(.expm1, self) }
    public func log() throws -> Tensor { try dispatchUnary(.log, self) }
    /// `log(1 + x)`, accurate near 0.
    public func log1p() throws -> Tensor { try dispatchUnary(.log1p, self) }
    public func sqrt() throws -> Tensor { try dispatchUnary(.sqrt, self) }
    /// `1 / sqrt(x)`.
    public func rsqrt() throws -> Tensor { try dispatchUnary(.rsqrt, self) }
    public func sin() throws -> Tensor { try dispatchUnary(.sin, self) }
    public func cos() throws -> Tensor { try dispatchUnary(.cos, self) }
    public func tanh() throws -> Tensor { try dispatchUnary(.tanh, self) }
    /// `1 / (1 + e^-x)`, evaluated without overflow for any finite x.
    public func sigmoid() throws -> Tensor { try dispatchUnary(.sigmoid, self) }
    public func relu() throws -> Tensor { try dispatchUnary(.relu, self) }
    /// `log(1 + e^x)` as `max(x, 0) + log1p(e^-|x|)`: finite for any finite x.
    public func softplus() throws -> Tensor { try dispatchUnary(.softplus, self) }

    // MARK: Binary (NumPy broadcasting)
    public func adding(_ other: Tensor) throws -> Tensor { try dispatchBinary(.add, self, other) }
    public func subtracting(_ other: Tensor) throws -> Tensor { try dispatchBinary(.sub, self, other) }
    public func multiplying(_ other: Tensor) throws -> Tensor { try dispatchBinary(.mul, self, other) }
    public func dividing(_ other: Tensor) throws -> Tensor { try dispatchBinary(.div, self, other) }
    public func pow(_ exponent: Tensor) throws -> Tensor { try dispatchBinary(.pow, self, exponent) }
    public func pow(_ exponent: Double) throws -> Tensor { try pow(try scalarLike(exponent)) }
    public func maximum(_ other: Tensor) throws -> Tensor { try dispatchBinary(.maximum, self, other) }
    public func minimum(_ other: Tensor) throws -> Tensor { try dispatchBinary(.minimum, self, other) }
    /// `self · factor + addend` in one pass, bitwise equal to `self * factor + addend` (the
    /// product is rounded before the sum; this is not a single-rounding FMA). All three broadcast.
    public func multiplied(by factor: Tensor, adding addend: Tensor) throws -> Tensor {
        try dispatch1(.multiplyAdd, .none, [self, factor, addend])
    }

    /// A rank-0 tensor of this tensor's dtype.
    public func scalarLike(_ value: Double) throws -> Tensor { try Tensor.full([], value, dtype: dtype) }

    public static prefix func - (x: Tensor) throws -> Tensor { try x.neg() }
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.adding(b) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.subtracting(b) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.multiplying(b) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.dividing(b) }
    public static func + (a: Tensor, b: Double) throws -> Tensor { try a.adding(try a.scalarLike(b)) }
    public static func - (a: Tensor, b: Double) throws -> Tensor { try a.subtracting(try a.scalarLike(b)) }
    public static func * (a: Tensor, b: Double) throws -> Tensor { try a.multiplying(try a.scalarLike(b)) }
    public static func / (a: Tensor, b: Double) throws -> Tensor { try a.dividing(try a.scalarLike(b)) }
    public static func + (a: Double, b: Tensor) throws -> Tensor { try b.scalarLike(a).adding(b) }
    public static func - (a: Double, b: Tensor) throws -> Tensor { try b.scalarLike(a).subtracting(b) }
    public static func * (a: Double, b: Tensor) throws -> Tensor { try b.scalarLike(a).multiplying(b) }
    public static func / (a: Double, b: Tensor) throws -> Tensor { try b.scalarLike(a).dividing(b) }

    // MARK: Comparison and selection (results are bool)
    public func equal(_ other: Tensor) throws -> Tensor { try dispatch1(.equal, .none, [self, other]) }
    public func notEqual(_ other: Tensor) throws -> Tensor { try dispatch1(.notEqual, .none, [self, other]) }
    public func less(_ other: Tensor) throws -> Tensor { try dispatch1(.less, .none, [self, other]) }
    public func lessEqual(_ other: Tensor) throws -> Tensor { try dispatch1(.lessEqual, .none, [self, other]) }
    public func greater(_ other: Tensor) throws -> Tensor { try dispatch1(.greater, .none, [self, other]) }
    public func greaterEqual(_ other: Tensor) throws -> Tensor { try dispatch1(.greaterEqual, .none, [self, other]) }

    /// Elements of `a` where `condition` is true, of `b` elsewhere (all three broadcast).
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try dispatch1(.select, .none, [condition, a, b])
    }

    /// Converts the elements to `dtype` (narrowing rounds to nearest-even; float-to-integer truncates and refuses NaN, infinities and values out of range).
    public func cast(to dtype: DType) throws -> Tensor { try dispatch1(.cast, .dtype(dtype), [self]) }

    // MARK: Linear algebra
    /// Batched matrix product of the last two axes (OpenBLAS), batch axes broadcast.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        try dispatch1(.matmul, .matmul(transposeA: transposeSelf, transposeB: transposeOther), [self, other])
    }
}

/// Tensors evaluate the pointwise derivative formulas of the rules (see ``PointwiseValue``): each
/// operation of a formula is one dispatched operator, so a rule's backward pass is recorded,
/// profiled and differentiated again like any other computation.
extension Tensor: PointwiseValue {
    package typealias Failure = any Error
    package typealias Condition = Tensor

    package func constant(_ value: Double) throws -> Tensor { try scalarLike(value) }
    package func signum() throws -> Tensor { try sign() }
    package static func indicator(_ condition: Tensor, like: Tensor) throws -> Tensor { try condition.cast(to: like.dtype) }
    package static func select(_ condition: Tensor, _ a: Tensor, else b: Tensor) throws -> Tensor { try select(condition, a, b) }
}
