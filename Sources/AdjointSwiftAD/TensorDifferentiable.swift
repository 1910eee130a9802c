import _Differentiation
import AdjointAutodiff
import AdjointTensor

/// The tangent (and cotangent) of a `Tensor` for the toolchain's `_Differentiation`: a tensor of
/// the same shape, or `nil` for zero (`_Differentiation` makes zeros without knowing a shape).
public struct TensorTangent: Differentiable, AdditiveArithmetic, CustomStringConvertible {
    public typealias TangentVector = TensorTangent
    /// The tangent; `nil` is zero.
    public var tensor: Tensor?

    public init(_ tensor: Tensor?) { self.tensor = tensor }

    public static var zero: TensorTangent { TensorTangent(nil) }

    /// The sum (traps, with the message of the throwing operator, on shapes that do not broadcast).
    public static func + (a: TensorTangent, b: TensorTangent) -> TensorTangent {
        guard let x = a.tensor else { return b }
        guard let y = b.tensor else { return a }
        return TensorTangent((x.trapping + y.trapping).tensor)
    }

    public static func - (a: TensorTangent, b: TensorTangent) -> TensorTangent {
        guard let y = b.tensor else { return a }
        guard let x = a.tensor else { return TensorTangent((-y.trapping).tensor) }
        return TensorTangent((x.trapping - y.trapping).tensor)
    }

    /// Equal elements (a missing tangent equals a tensor of zeros).
    public static func == (a: TensorTangent, b: TensorTangent) -> Bool {
        switch (a.tensor, b.tensor) {
        case (nil, nil): return true
        case let (x?, nil), let (nil, x?): return x.doubles.allSatisfy { $0 == 0 }
        case let (x?, y?): return x.shape == y.shape && x.doubles == y.doubles
        }
    }

    public mutating func move(by offset: TensorTangent) { self = self + offset }

    public var description: String { tensor.map { "\($0)" } ?? "zero" }
}

/// `Tensor` and its non-throwing face are differentiable by the toolchain's `_Differentiation`: a
/// `@differentiable(reverse)` Swift function can compute with Adjoint operators (through
/// `TrappingTensor`, since `_Differentiation` cannot differentiate throwing functions) and be
/// differentiated by the compiler. Each operator's derivative is Adjoint's own (its reverse-mode
/// rule, run on a tape of one operation), so the compiler's gradient equals Adjoint's `gradient`.
extension Tensor: Differentiable {
    public typealias TangentVector = TensorTangent
    public mutating func move(by offset: TensorTangent) {
        if let t = offset.tensor { self = (trapping + t.trapping).tensor }
    }
}

extension TrappingTensor: Differentiable {
    public typealias TangentVector = TensorTangent
    public mutating func move(by offset: TensorTangent) {
        if let t = offset.tensor { self = self + t.trapping }
    }
}

/// Stops the program with `error`'s message (the trapping face's behaviour).
func trap(_ error: any Error) -> Never { fatalError("\(error)") }

/// `f(x)` and its pullback by Adjoint's reverse mode.
func adjointVJP(_ x: TrappingTensor, _ f: (Tensor) throws -> Tensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
    do {
        let (y, pullback) = try vjp(at: x.tensor, of: f)
        let zero = y
        return (TrappingTensor(y), { seed in
            do { return TensorTangent(try pullback(seed.tensor ?? zero.zerosLike())) } catch { trap(error) }
        })
    } catch { trap(error) }
}

/// `f(a, b)` and its pullback by Adjoint's reverse mode.
func adjointVJP(_ a: TrappingTensor, _ b: TrappingTensor, _ f: (Tensor, Tensor) throws -> Tensor)
    -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
    do {
        let (y, pullback) = try vjp(at: [a.tensor, b.tensor]) { p in try f(p[0], p[1]) }
        return (TrappingTensor(y), { seed in
            do {
                let g = try pullback(seed.tensor ?? y.zerosLike())
                return (TensorTangent(g[0]), TensorTangent(g[1]))
            } catch { trap(error) }
        })
    } catch { trap(error) }
}

extension Tensor {
    @derivative(of: trapping)
    public func _vjpTrapping() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        (trapping, { $0 })
    }
}

extension TrappingTensor {
    @derivative(of: tensor)
    public func _vjpTensor() -> (value: Tensor, pullback: (TensorTangent) -> TensorTangent) {
        (tensor, { $0 })
    }

    @derivative(of: init(_:))
    public static func _vjpInit(_ tensor: Tensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        (TrappingTensor(tensor), { $0 })
    }

    // MARK: Elementwise
    @derivative(of: neg) public func _vjpNeg() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.neg() } }
    @derivative(of: abs) public func _vjpAbs() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.abs() } }
    @derivative(of: exp) public func _vjpExp() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.exp() } }
    @derivative(of: expm1) public func _vjpExpm1() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.expm1() } }
    @derivative(of: log) public func _vjpLog() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.log() } }
    @derivative(of: log1p) public func _vjpLog1p() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.log1p() } }
    @derivative(of: sqrt) public func _vjpSqrt() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.sqrt() } }
    @derivative(of: rsqrt) public func _vjpRsqrt() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.rsqrt() } }
    @derivative(of: sin) public func _vjpSin() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.sin() } }
    @derivative(of: cos) public func _vjpCos() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.cos() } }
    @derivative(of: tanh) public func _vjpTanh() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.tanh() } }
    @derivative(of: sigmoid) public func _vjpSigmoid() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.sigmoid() } }
    @derivative(of: relu) public func _vjpRelu() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.relu() } }
    @derivative(of: softplus) public func _vjpSoftplus() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) { adjointVJP(self) { try $0.softplus() } }

    @derivative(of: pow, wrt: self)
    public func _vjpPow<S: TensorScalar>(_ e: S) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.pow(e) }
    }

    @derivative(of: +)
    public static func _vjpAdd(a: TrappingTensor, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
        adjointVJP(a, b) { try $0 + $1 }
    }
    @derivative(of: -)
    public static func _vjpSubtract(a: TrappingTensor, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
        adjointVJP(a, b) { try $0 - $1 }
    }
    @derivative(of: *)
    public static func _vjpMultiply(a: TrappingTensor, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
        adjointVJP(a, b) { try $0 * $1 }
    }
    @derivative(of: /)
    public static func _vjpDivide(a: TrappingTensor, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
        adjointVJP(a, b) { try $0 / $1 }
    }
    @derivative(of: -)
    public static func _vjpNegate(x: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(x) { try $0.neg() }
    }

    // A Swift scalar on either side: the derivative is with respect to the tensor.
    @derivative(of: +, wrt: a)
    public static func _vjpAddScalar<S: TensorScalar>(a: TrappingTensor, b: S) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(a) { try $0 + b }
    }
    @derivative(of: -, wrt: a)
    public static func _vjpSubtractScalar<S: TensorScalar>(a: TrappingTensor, b: S) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(a) { try $0 - b }
    }
    @derivative(of: *, wrt: a)
    public static func _vjpMultiplyScalar<S: TensorScalar>(a: TrappingTensor, b: S) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(a) { try $0 * b }
    }
    @derivative(of: /, wrt: a)
    public static func _vjpDivideScalar<S: TensorScalar>(a: TrappingTensor, b: S) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(a) { try $0 / b }
    }
    @derivative(of: +, wrt: b)
    public static func _vjpScalarAdd<S: TensorScalar>(a: S, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(b) { try a + $0 }
    }
    @derivative(of: -, wrt: b)
    public static func _vjpScalarSubtract<S: TensorScalar>(a: S, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(b) { try a - $0 }
    }
    @derivative(of: *, wrt: b)
    public static func _vjpScalarMultiply<S: TensorScalar>(a: S, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(b) { try a * $0 }
    }
    @derivative(of: /, wrt: b)
    public static func _vjpScalarDivide<S: TensorScalar>(a: S, b: TrappingTensor) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(b) { try a / $0 }
    }

    // MARK: Reductions, linear algebra, layout
    @derivative(of: sum, wrt: self)
    public func _vjpSum(axes: [Int], keepDims: Bool) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.sum(axes: axes, keepDims: keepDims) }
    }
    @derivative(of: mean, wrt: self)
    public func _vjpMean(axes: [Int], keepDims: Bool) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.mean(axes: axes, keepDims: keepDims) }
    }
    @derivative(of: logsumexp, wrt: self)
    public func _vjpLogsumexp(axes: [Int], keepDims: Bool) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.logsumexp(axes: axes, keepDims: keepDims) }
    }
    @derivative(of: softmax, wrt: self)
    public func _vjpSoftmax(axis: Int) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.softmax(axis: axis) }
    }
    @derivative(of: matmul, wrt: (self, o))
    public func _vjpMatmul(_ o: TrappingTensor, transposeSelf: Bool, transposeOther: Bool)
        -> (value: TrappingTensor, pullback: (TensorTangent) -> (TensorTangent, TensorTangent)) {
        adjointVJP(self, o) { try $0.matmul($1, transposeSelf: transposeSelf, transposeOther: transposeOther) }
    }
    @derivative(of: reshaped, wrt: self)
    public func _vjpReshaped(_ shape: [Int]) -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.reshaped(shape) }
    }
    @derivative(of: transposed, wrt: self)
    public func _vjpTransposed() -> (value: TrappingTensor, pullback: (TensorTangent) -> TensorTangent) {
        adjointVJP(self) { try $0.transposed() }
    }
}
