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
    public func maximum(_ other: Tensor) throws -> Tensor { try dispatchBinary(.maximum, self, other) }
    public func minimum(_ other: Tensor) throws -> Tensor { try dispatchBinary(.minimum, self, other) }
    /// `self · factor + addend` in one pass, bitwise equal to `self * factor + addend` (the
    /// product is rounded before the sum; this is not a single-rounding FMA). All three broadcast.
    public func multiplied(by factor: Tensor, adding addend: Tensor) throws -> Tensor {
        try dispatch1(.multiplyAdd, .none, [self, factor, addend])
    }

    /// A rank-0 tensor of this tensor's dtype holding `value`.
    ///
    /// Exact when `value` is representable in the dtype: a `Float` for a float32 tensor (so
    /// `x * Float.pi` multiplies by `Float.pi`, not by `Double.pi` rounded), a `Float` or `Double`
    /// for a float64 one, an `Int64` for an int64 one. A `Double` for a float32 tensor is rounded
    /// to nearest, as `Float(value)` would be; write constants in the tensor's own element type to
    /// keep them exact.
    @inlinable
    public func scalarLike<S: TensorScalar>(_ value: S) throws -> Tensor {
        // Integers beyond 2^53 do not survive the trip through `Double`.
        if S.dtype == dtype, !dtype.isFloatingPoint { return Tensor(value) }
        return try Tensor.full([], value.doubleValue, dtype: dtype)
    }

    public static prefix func - (x: Tensor) throws -> Tensor { try x.neg() }
    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.adding(b) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.subtracting(b) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.multiplying(b) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.dividing(b) }

    // MARK: Swift scalars as operands (converted by ``scalarLike(_:)``: the tensor's dtype wins)
    @inlinable public static func + <S: TensorScalar>(a: Tensor, b: S) throws -> Tensor { try a.adding(a.scalarLike(b)) }
    @inlinable public static func - <S: TensorScalar>(a: Tensor, b: S) throws -> Tensor { try a.subtracting(a.scalarLike(b)) }
    @inlinable public static func * <S: TensorScalar>(a: Tensor, b: S) throws -> Tensor { try a.multiplying(a.scalarLike(b)) }
    @inlinable public static func / <S: TensorScalar>(a: Tensor, b: S) throws -> Tensor { try a.dividing(a.scalarLike(b)) }
    @inlinable public static func + <S: TensorScalar>(a: S, b: Tensor) throws -> Tensor { try b.scalarLike(a).adding(b) }
    @inlinable public static func - <S: TensorScalar>(a: S, b: Tensor) throws -> Tensor { try b.scalarLike(a).subtracting(b) }
    @inlinable public static func * <S: TensorScalar>(a: S, b: Tensor) throws -> Tensor { try b.scalarLike(a).multiplying(b) }
    @inlinable public static func / <S: TensorScalar>(a: S, b: Tensor) throws -> Tensor { try b.scalarLike(a).dividing(b) }
    @inlinable public func adding<S: TensorScalar>(_ other: S) throws -> Tensor { try adding(scalarLike(other)) }
    @inlinable public func subtracting<S: TensorScalar>(_ other: S) throws -> Tensor { try subtracting(scalarLike(other)) }
    @inlinable public func multiplying<S: TensorScalar>(_ other: S) throws -> Tensor { try multiplying(scalarLike(other)) }
    @inlinable public func dividing<S: TensorScalar>(_ other: S) throws -> Tensor { try dividing(scalarLike(other)) }
    @inlinable public func pow<S: TensorScalar>(_ exponent: S) throws -> Tensor { try pow(scalarLike(exponent)) }
    @inlinable public func maximum<S: TensorScalar>(_ other: S) throws -> Tensor { try maximum(scalarLike(other)) }
    @inlinable public func minimum<S: TensorScalar>(_ other: S) throws -> Tensor { try minimum(scalarLike(other)) }
    /// Every element limited to `low ... high` (`minimum(maximum(x, low), high)`; NaN stays NaN).
    @inlinable public func clamped<S: TensorScalar>(to range: ClosedRange<S>) throws -> Tensor where S: Comparable {
        try maximum(range.lowerBound).minimum(range.upperBound)
    }

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
    /// `select` with a scalar for the elements where `condition` is false (of `a`'s dtype).
    @inlinable public static func select<S: TensorScalar>(_ condition: Tensor, _ a: Tensor, _ b: S) throws -> Tensor {
        try select(condition, a, a.scalarLike(b))
    }
    /// `select` with a scalar for the elements where `condition` is true (of `b`'s dtype).
    @inlinable public static func select<S: TensorScalar>(_ condition: Tensor, _ a: S, _ b: Tensor) throws -> Tensor {
        try select(condition, b.scalarLike(a), b)
    }

    // Comparisons with a Swift scalar, converted to this tensor's dtype.
    @inlinable public func equal<S: TensorScalar>(_ other: S) throws -> Tensor { try equal(scalarLike(other)) }
    @inlinable public func notEqual<S: TensorScalar>(_ other: S) throws -> Tensor { try notEqual(scalarLike(other)) }
    @inlinable public func less<S: TensorScalar>(_ other: S) throws -> Tensor { try less(scalarLike(other)) }
    @inlinable public func lessEqual<S: TensorScalar>(_ other: S) throws -> Tensor { try lessEqual(scalarLike(other)) }
    @inlinable public func greater<S: TensorScalar>(_ other: S) throws -> Tensor { try greater(scalarLike(other)) }
    @inlinable public func greaterEqual<S: TensorScalar>(_ other: S) throws -> Tensor { try greaterEqual(scalarLike(other)) }

    /// Converts the elements to `dtype` (narrowing rounds to nearest-even; float-to-integer truncates and refuses NaN, infinities and values out of range).
    public func cast(to dtype: DType) throws -> Tensor { try dispatch1(.cast, .dtype(dtype), [self]) }

    // MARK: Linear algebra
    /// Batched matrix product of the last two axes (OpenBLAS), batch axes broadcast. Vectors
    /// follow NumPy: a rank-1 left operand is a row `[1, n]` and a rank-1 right operand a column
    /// `[n, 1]`, and that axis is dropped from the result (matrix·vector gives a vector,
    /// vector·vector a rank-0 tensor); transposing a vector changes nothing.
    public func matmul(_ other: Tensor, transposeSelf: Bool = false, transposeOther: Bool = false) throws -> Tensor {
        guard rank == 1 || other.rank == 1 else {
            return try dispatch1(.matmul, .matmul(transposeA: transposeSelf, transposeB: transposeOther), [self, other])
        }
        let a = rank == 1 ? try reshaped([1, shape[0]]) : self
        let b = other.rank == 1 ? try other.reshaped([other.shape[0], 1]) : other
        let product = try a.matmul(b, transposeSelf: rank == 1 ? false : transposeSelf, transposeOther: other.rank == 1 ? false : transposeOther)
        var result = product.shape
        if other.rank == 1 { result.removeLast() }
        if rank == 1 { result.remove(at: result.count - (other.rank == 1 ? 1 : 2)) }
        return try product.reshaped(result)
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
