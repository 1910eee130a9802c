import RealModule

/// A value a pointwise formula computes with: one float, a tensor, or a C expression.
///
/// Each operator's elementwise function and each pointwise derivative is written once, as a
/// function generic over this protocol, and every backend evaluates that one definition: the
/// kernels and the rank-0 backward pass over floats (``KernelFloat``), the derivative rules over
/// tensors, the native code generator over C expressions. A formula performs its operations in the
/// order written, so the backends agree bit for bit wherever they compute in the same element type
/// (the kernels' and native code's bitwise tests and the rank-0 rules' test check it).
package protocol PointwiseValue {
    associatedtype Failure: Error
    /// What a comparison gives: a truth value per element.
    associatedtype Condition

    static func + (a: Self, b: Self) throws(Failure) -> Self
    static func - (a: Self, b: Self) throws(Failure) -> Self
    static func * (a: Self, b: Self) throws(Failure) -> Self
    static func / (a: Self, b: Self) throws(Failure) -> Self
    static prefix func - (x: Self) throws(Failure) -> Self

    /// `value` in this value's element type (exact for the constants formulas use).
    func constant(_ value: Double) throws(Failure) -> Self

    func exp() throws(Failure) -> Self
    func expm1() throws(Failure) -> Self
    func log() throws(Failure) -> Self
    func log1p() throws(Failure) -> Self
    func sqrt() throws(Failure) -> Self
    func sin() throws(Failure) -> Self
    func cos() throws(Failure) -> Self
    /// 1, −1 or the value itself (±0, NaN): `sign` as an operator (not `FloatingPoint.sign`).
    func signum() throws(Failure) -> Self
    func sigmoid() throws(Failure) -> Self
    func pow(_ exponent: Self) throws(Failure) -> Self

    func greater(_ other: Self) throws(Failure) -> Condition
    func less(_ other: Self) throws(Failure) -> Condition
    func equal(_ other: Self) throws(Failure) -> Condition
    /// 1 where `condition` holds, else 0, in the element type of `like`.
    static func indicator(_ condition: Condition, like: Self) throws(Failure) -> Self
    /// `a` where `condition` holds, else `b`.
    static func select(_ condition: Condition, _ a: Self, else b: Self) throws(Failure) -> Self
}

extension PointwiseValue {
    @inlinable @inline(__always) package static func + (a: Self, b: Double) throws(Failure) -> Self { try a + a.constant(b) }
    @inlinable @inline(__always) package static func - (a: Self, b: Double) throws(Failure) -> Self { try a - a.constant(b) }
    @inlinable @inline(__always) package static func * (a: Self, b: Double) throws(Failure) -> Self { try a * a.constant(b) }
    @inlinable @inline(__always) package static func / (a: Self, b: Double) throws(Failure) -> Self { try a / a.constant(b) }
    @inlinable @inline(__always) package static func + (a: Double, b: Self) throws(Failure) -> Self { try b.constant(a) + b }
    @inlinable @inline(__always) package static func - (a: Double, b: Self) throws(Failure) -> Self { try b.constant(a) - b }
    @inlinable @inline(__always) package static func * (a: Double, b: Self) throws(Failure) -> Self { try b.constant(a) * b }
    @inlinable @inline(__always) package static func / (a: Double, b: Self) throws(Failure) -> Self { try b.constant(a) / b }
}

/// A value an operator's elementwise function is computed with, one element at a time: a float
/// in a kernel loop (``KernelFloat``) or a C expression in native code.
package protocol ElementValue: PointwiseValue where Failure == Never {
    func abs() -> Self
    func tanh() -> Self
    /// The correctly rounded square root, as the hardware instruction computes it.
    func squareRoot() -> Self
    /// C `pow`, defined for negative bases with integral exponents.
    func power(_ exponent: Self) -> Self
    func greaterOrEqual(_ other: Self) -> Condition
    func lessOrEqual(_ other: Self) -> Condition
    func isNotANumber() -> Condition
    static func or(_ a: Condition, _ b: Condition) -> Condition
    /// `a()` where `condition` holds, else `b()`, evaluating only the branch taken.
    static func choose(_ condition: Condition, _ a: () -> Self, else b: () -> Self) -> Self
    /// The value computed once and reused wherever the result is used (a C variable; a float
    /// is one already).
    func named() -> Self
}

/// The elementwise functions of the operators, each written once (see ``PointwiseValue``); the
/// kernels (``UnaryFunction``, ``BinaryFunction``) run them over floats and the native code
/// generator prints them as C.
package enum Pointwise {
    @inlinable @inline(__always) package static func neg<V: ElementValue>(_ x: V) -> V { -x }
    @inlinable @inline(__always) package static func abs<V: ElementValue>(_ x: V) -> V { x.abs() }
    /// 1, −1 or `x` itself (±0, NaN).
    @inlinable @inline(__always) package static func sign<V: ElementValue>(_ x: V) -> V {
        let zero = x.constant(0)
        return V.choose(x.greater(zero), { x.constant(1) }, else: { V.choose(x.less(zero), { x.constant(-1) }, else: { x }) })
    }
    @inlinable @inline(__always) package static func exp<V: ElementValue>(_ x: V) -> V { x.exp() }
    @inlinable @inline(__always) package static func expm1<V: ElementValue>(_ x: V) -> V { x.expm1() }
    @inlinable @inline(__always) package static func log<V: ElementValue>(_ x: V) -> V { x.log() }
    @inlinable @inline(__always) package static func log1p<V: ElementValue>(_ x: V) -> V { x.log1p() }
    @inlinable @inline(__always) package static func sqrt<V: ElementValue>(_ x: V) -> V { x.squareRoot() }
    @inlinable @inline(__always) package static func rsqrt<V: ElementValue>(_ x: V) -> V { 1 / x.squareRoot() }
    @inlinable @inline(__always) package static func sin<V: ElementValue>(_ x: V) -> V { x.sin() }
    @inlinable @inline(__always) package static func cos<V: ElementValue>(_ x: V) -> V { x.cos() }
    @inlinable @inline(__always) package static func tanh<V: ElementValue>(_ x: V) -> V { x.tanh() }
    /// tanh of a float32 value, computed in double precision (`x` is the float widened; the caller
    /// rounds the result back to float): `tanh|x| = p / (p + 2)` with `p = e^(2|x|) − 1`, and
    /// `p` from the Taylor series of `e^z − 1` to `z¹¹` at `z = 2|x| / 32`, doubled five times by
    /// `e^(2z) − 1 = p·(p + 2)`. Relative error below 10⁻⁹ — under a sixtieth of a float's
    /// half-ulp, so the float result is the correctly rounded tanh but for inputs within that
    /// distance of a rounding boundary — with only additions, multiplications and one division:
    /// no libm call, so a C compiler vectorizes it. `|x| < 2⁻¹²` (and NaN) give `x` itself (tanh
    /// rounds to it in float, signed zeros kept); `|x|` is capped at 10, beyond which tanh
    /// rounds to ±1 (so ±∞ give ±1).
    @inlinable @inline(__always) package static func float32Tanh<V: ElementValue>(_ x: V) -> V {
        // Computed for every input and chosen by selects, not branches: straight-line code, which
        // a C compiler vectorizes (the discarded values are finite: |x| is capped first, NaN too).
        let a = x.abs().named()
        let z = (V.select(a.lessOrEqual(a.constant(10)), a, else: a.constant(10)) * 0.0625).named()
        // 1/k! for k = 1…11, exact quotients of exactly representable factorials.
        var q = z.constant(1.0 / 39_916_800.0)
        for factorial in [3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0] {
            q = z.constant(1.0 / factorial) + z * q
        }
        var p = (z * q).named()
        for _ in 0..<5 { p = (p * (p + 2)).named() }
        let t = (p / (p + 2)).named()
        return V.select(a.greaterOrEqual(a.constant(0x1p-12)), V.select(x.less(x.constant(0)), -t, else: t), else: x)
    }
    /// σ(x) without overflow: `1 / (1 + e^-x)` for x ≥ 0, `e^x / (1 + e^x)` below.
    @inlinable @inline(__always) package static func sigmoid<V: ElementValue>(_ x: V) -> V {
        V.choose(x.greaterOrEqual(x.constant(0)), { 1 / (1 + (-x).exp()) }, else: {
            let e = x.exp().named()
            return e / (1 + e)
        })
    }
    /// `x` where positive or NaN, else 0.
    @inlinable @inline(__always) package static func relu<V: ElementValue>(_ x: V) -> V {
        V.choose(V.or(x.greater(x.constant(0)), x.isNotANumber()), { x }, else: { x.constant(0) })
    }
    /// log(1 + e^x) = max(x, 0) + log1p(e^-|x|): finite for every finite x.
    @inlinable @inline(__always) package static func softplus<V: ElementValue>(_ x: V) -> V {
        let positivePart = V.choose(x.lessOrEqual(x.constant(0)), { x.constant(0) }, else: { x })
        return positivePart + (-x.abs()).exp().log1p()
    }

    @inlinable @inline(__always) package static func add<V: ElementValue>(_ a: V, _ b: V) -> V { a + b }
    @inlinable @inline(__always) package static func sub<V: ElementValue>(_ a: V, _ b: V) -> V { a - b }
    @inlinable @inline(__always) package static func mul<V: ElementValue>(_ a: V, _ b: V) -> V { a * b }
    @inlinable @inline(__always) package static func div<V: ElementValue>(_ a: V, _ b: V) -> V { a / b }
    @inlinable @inline(__always) package static func pow<V: ElementValue>(_ a: V, _ b: V) -> V { a.power(b) }
    /// The larger operand; NaN when `a` is NaN.
    @inlinable @inline(__always) package static func maximum<V: ElementValue>(_ a: V, _ b: V) -> V {
        V.choose(V.or(a.isNotANumber(), a.greaterOrEqual(b)), { a }, else: { b })
    }
    /// The smaller operand; NaN when `a` is NaN.
    @inlinable @inline(__always) package static func minimum<V: ElementValue>(_ a: V, _ b: V) -> V {
        V.choose(V.or(a.isNotANumber(), a.lessOrEqual(b)), { a }, else: { b })
    }

    /// The elementwise function of unary operator `op` applied to `x`; nil when `op` is not one.
    @inlinable package static func unary<V: ElementValue>(_ op: OpCode, _ x: V) -> V? {
        switch op {
        case .neg: neg(x)
        case .abs: abs(x)
        case .sign: sign(x)
        case .exp: exp(x)
        case .expm1: expm1(x)
        case .log: log(x)
        case .log1p: log1p(x)
        case .sqrt: sqrt(x)
        case .rsqrt: rsqrt(x)
        case .sin: sin(x)
        case .cos: cos(x)
        case .tanh: tanh(x)
        case .sigmoid: sigmoid(x)
        case .relu: relu(x)
        case .softplus: softplus(x)
        default: nil
        }
    }

    /// The elementwise function of binary operator `op` applied to `a` and `b`; nil when `op` is not one.
    @inlinable package static func binary<V: ElementValue>(_ op: OpCode, _ a: V, _ b: V) -> V? {
        switch op {
        case .add: add(a, b)
        case .sub: sub(a, b)
        case .mul: mul(a, b)
        case .div: div(a, b)
        case .pow: pow(a, b)
        case .maximum: maximum(a, b)
        case .minimum: minimum(a, b)
        default: nil
        }
    }
}

/// The floats are pointwise values themselves: a formula specialised for `Double` or `Float` and
/// inlined is the arithmetic a hand-written kernel would do.
extension KernelFloat {
    @inlinable @inline(__always) package func constant(_ value: Double) -> Self { Self(value) }
    @inlinable @inline(__always) package func exp() -> Self { Self.exp(self) }
    @inlinable @inline(__always) package func expm1() -> Self { Self.expMinusOne(self) }
    @inlinable @inline(__always) package func log() -> Self { Self.log(self) }
    @inlinable @inline(__always) package func log1p() -> Self { Self.log(onePlus: self) }
    @inlinable @inline(__always) package func sqrt() -> Self { Self.hardwareSquareRoot(self) }
    @inlinable @inline(__always) package func sin() -> Self { Self.sin(self) }
    @inlinable @inline(__always) package func cos() -> Self { Self.cos(self) }
    /// libm's `tanh` for `Double`; ``Pointwise/float32Tanh(_:)`` for `Float`.
    @inlinable @inline(__always) package func tanh() -> Self {
        Self.self == Float.self ? Self(Pointwise.float32Tanh(Double(self))) : Self.tanh(self)
    }
    @inlinable @inline(__always) package func abs() -> Self { Swift.abs(self) }
    @inlinable @inline(__always) package func signum() -> Self { Pointwise.sign(self) }
    @inlinable @inline(__always) package func sigmoid() -> Self { Pointwise.sigmoid(self) }
    @inlinable @inline(__always) package func pow(_ exponent: Self) -> Self { Self.cPow(self, exponent) }
    @inlinable @inline(__always) package func power(_ exponent: Self) -> Self { Self.cPow(self, exponent) }

    @inlinable @inline(__always) package func greater(_ other: Self) -> Bool { self > other }
    @inlinable @inline(__always) package func less(_ other: Self) -> Bool { self < other }
    @inlinable @inline(__always) package func equal(_ other: Self) -> Bool { self == other }
    @inlinable @inline(__always) package func greaterOrEqual(_ other: Self) -> Bool { self >= other }
    @inlinable @inline(__always) package func lessOrEqual(_ other: Self) -> Bool { self <= other }
    @inlinable @inline(__always) package func isNotANumber() -> Bool { isNaN }
    @inlinable @inline(__always) package static func or(_ a: Bool, _ b: Bool) -> Bool { a || b }
    @inlinable @inline(__always) package static func indicator(_ condition: Bool, like: Self) -> Self { condition ? 1 : 0 }
    @inlinable @inline(__always) package static func select(_ condition: Bool, _ a: Self, else b: Self) -> Self { condition ? a : b }
    @inlinable @inline(__always) package static func choose(_ condition: Bool, _ a: () -> Self, else b: () -> Self) -> Self { condition ? a() : b() }
    @inlinable @inline(__always) package func named() -> Self { self }
}
