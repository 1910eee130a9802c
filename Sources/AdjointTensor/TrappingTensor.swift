/// The non-throwing face of ``Tensor``, for numeric code whose shapes and dtypes are validated
/// up front: the same operators, without `try`, trapping with the typed error's message where the
/// throwing operator would throw.
///
/// ```swift
/// let (x, w, b) = (input.trapping, weight.trapping, bias.trapping)
/// let loss = ((x.matmul(w) + b).tanh() - target.trapping).pow(2).mean()
/// ```
///
/// Use ``Tensor`` (throwing) wherever a shape, a dtype, an index or a file comes from outside the
/// program — a request, a trace, a configuration, a user — so a bad one is an error the caller can
/// report; use `TrappingTensor` in the inner numeric code that such checks guard, where a mismatch
/// is a bug. Every operation is the ``Tensor`` operator (one dispatch, every transform sees it):
/// `gradient`, `jvp` and `unroll` work through either face, and the results are bitwise equal.
public struct TrappingTensor {
    @usableFromInline var storage: Tensor

    /// The tensor (a computed property, so that `_Differentiation` can be given its derivative).
    public var tensor: Tensor {
        get { storage }
        set { storage = newValue }
    }

    public init(_ tensor: Tensor) { storage = tensor }

    /// The result of `body`; a thrown error stops the program with its message.
    @inlinable
    static func must(_ body: () throws -> Tensor) -> TrappingTensor {
        do { return TrappingTensor(try body()) } catch { fatalError("\(error)") }
    }

    public var shape: [Int] { tensor.shape }
    public var dtype: DType { tensor.dtype }
    public var rank: Int { tensor.rank }
    public var doubles: [Double] { tensor.doubles }
    /// The single element (traps unless there is exactly one).
    public func item() -> Double {
        do { return try tensor.item() } catch { fatalError("\(error)") }
    }

    // MARK: Elementwise
    @inlinable public func neg() -> TrappingTensor { .must { try tensor.neg() } }
    @inlinable public func abs() -> TrappingTensor { .must { try tensor.abs() } }
    @inlinable public func sign() -> TrappingTensor { .must { try tensor.sign() } }
    @inlinable public func exp() -> TrappingTensor { .must { try tensor.exp() } }
    @inlinable public func expm1() -> TrappingTensor { .must { try tensor.expm1() } }
    @inlinable public func log() -> TrappingTensor { .must { try tensor.log() } }
    @inlinable public func log1p() -> TrappingTensor { .must { try tensor.log1p() } }
    @inlinable public func sqrt() -> TrappingTensor { .must { try tensor.sqrt() } }
    @inlinable public func rsqrt() -> TrappingTensor { .must { try tensor.rsqrt() } }
    @inlinable public func sin() -> TrappingTensor { .must { try tensor.sin() } }
    @inlinable public func cos() -> TrappingTensor { .must { try tensor.cos() } }
    @inlinable public func tanh() -> TrappingTensor { .must { try tensor.tanh() } }
    @inlinable public func sigmoid() -> TrappingTensor { .must { try tensor.sigmoid() } }
    @inlinable public func relu() -> TrappingTensor { .must { try tensor.relu() } }
    @inlinable public func softplus() -> TrappingTensor { .must { try tensor.softplus() } }
    @inlinable public func pow(_ e: TrappingTensor) -> TrappingTensor { .must { try tensor.pow(e.tensor) } }
    @inlinable public func pow<S: TensorScalar>(_ e: S) -> TrappingTensor { .must { try tensor.pow(e) } }
    @inlinable public func maximum(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.maximum(o.tensor) } }
    @inlinable public func maximum<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.maximum(o) } }
    @inlinable public func minimum(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.minimum(o.tensor) } }
    @inlinable public func minimum<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.minimum(o) } }
    @inlinable public func clamped<S: TensorScalar & Comparable>(to range: ClosedRange<S>) -> TrappingTensor { .must { try tensor.clamped(to: range) } }
    @inlinable public static prefix func - (x: TrappingTensor) -> TrappingTensor { .must { try x.tensor.neg() } }
    @inlinable public static func + (a: TrappingTensor, b: TrappingTensor) -> TrappingTensor { .must { try a.tensor.adding(b.tensor) } }
    @inlinable public static func + <S: TensorScalar>(a: TrappingTensor, b: S) -> TrappingTensor { .must { try a.tensor + b } }
    @inlinable public static func + <S: TensorScalar>(a: S, b: TrappingTensor) -> TrappingTensor { .must { try a + b.tensor } }
    @inlinable public static func - (a: TrappingTensor, b: TrappingTensor) -> TrappingTensor { .must { try a.tensor.subtracting(b.tensor) } }
    @inlinable public static func - <S: TensorScalar>(a: TrappingTensor, b: S) -> TrappingTensor { .must { try a.tensor - b } }
    @inlinable public static func - <S: TensorScalar>(a: S, b: TrappingTensor) -> TrappingTensor { .must { try a - b.tensor } }
    @inlinable public static func * (a: TrappingTensor, b: TrappingTensor) -> TrappingTensor { .must { try a.tensor.multiplying(b.tensor) } }
    @inlinable public static func * <S: TensorScalar>(a: TrappingTensor, b: S) -> TrappingTensor { .must { try a.tensor * b } }
    @inlinable public static func * <S: TensorScalar>(a: S, b: TrappingTensor) -> TrappingTensor { .must { try a * b.tensor } }
    @inlinable public static func / (a: TrappingTensor, b: TrappingTensor) -> TrappingTensor { .must { try a.tensor.dividing(b.tensor) } }
    @inlinable public static func / <S: TensorScalar>(a: TrappingTensor, b: S) -> TrappingTensor { .must { try a.tensor / b } }
    @inlinable public static func / <S: TensorScalar>(a: S, b: TrappingTensor) -> TrappingTensor { .must { try a / b.tensor } }

    // MARK: Comparison and selection (bool results)
    @inlinable public func equal(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.equal(o.tensor) } }
    @inlinable public func equal<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.equal(o) } }
    @inlinable public func notEqual(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.notEqual(o.tensor) } }
    @inlinable public func notEqual<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.notEqual(o) } }
    @inlinable public func less(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.less(o.tensor) } }
    @inlinable public func less<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.less(o) } }
    @inlinable public func lessEqual(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.lessEqual(o.tensor) } }
    @inlinable public func lessEqual<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.lessEqual(o) } }
    @inlinable public func greater(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.greater(o.tensor) } }
    @inlinable public func greater<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.greater(o) } }
    @inlinable public func greaterEqual(_ o: TrappingTensor) -> TrappingTensor { .must { try tensor.greaterEqual(o.tensor) } }
    @inlinable public func greaterEqual<S: TensorScalar>(_ o: S) -> TrappingTensor { .must { try tensor.greaterEqual(o) } }
    @inlinable public static func select(_ c: TrappingTensor, _ a: TrappingTensor, _ b: TrappingTensor) -> TrappingTensor { .must { try Tensor.select(c.tensor, a.tensor, b.tensor) } }
    @inlinable public static func select<S: TensorScalar>(_ c: TrappingTensor, _ a: TrappingTensor, _ b: S) -> TrappingTensor { .must { try Tensor.select(c.tensor, a.tensor, b) } }
    @inlinable public static func select<S: TensorScalar>(_ c: TrappingTensor, _ a: S, _ b: TrappingTensor) -> TrappingTensor { .must { try Tensor.select(c.tensor, a, b.tensor) } }
    @inlinable public func cast(to dtype: DType) -> TrappingTensor { .must { try tensor.cast(to: dtype) } }

    // MARK: Reductions
    @inlinable public func sum(axes: [Int] = [], keepDims: Bool = false) -> TrappingTensor { .must { try tensor.sum(axes: axes, keepDims: keepDims) } }
    @inlinable public func mean(axes: [Int] = [], keepDims: Bool = false) -> TrappingTensor { .must { try tensor.mean(axes: axes, keepDims: keepDims) } }
    @inlinable public func max(axes: [Int] = [], keepDims: Bool = false) -> TrappingTensor { .must { try tensor.max(axes: axes, keepDims: keepDims) } }
    @inlinable public func min(axes: [Int] = [], keepDims: Bool = false) -> TrappingTensor { .must { try tensor.min(axes: axes, keepDims: keepDims) } }
    @inlinable public func logsumexp(axes: [Int] = [], keepDims: Bool = false) -> TrappingTensor { .must { try tensor.logsumexp(axes: axes, keepDims: keepDims) } }
    @inlinable public func softmax(axis: Int = -1) -> TrappingTensor { .must { try tensor.softmax(axis: axis) } }
    @inlinable public func logSoftmax(axis: Int = -1) -> TrappingTensor { .must { try tensor.logSoftmax(axis: axis) } }
    @inlinable public func crossEntropy(labels: TrappingTensor) -> TrappingTensor { .must { try tensor.crossEntropy(labels: labels.tensor) } }
    @inlinable public func meanSquaredError(_ target: TrappingTensor) -> TrappingTensor { .must { try tensor.meanSquaredError(target.tensor) } }

    // MARK: Linear algebra, layout, indexing
    @inlinable public func matmul(_ o: TrappingTensor, transposeSelf: Bool = false, transposeOther: Bool = false) -> TrappingTensor { .must { try tensor.matmul(o.tensor, transposeSelf: transposeSelf, transposeOther: transposeOther) } }
    @inlinable public func reshaped(_ shape: [Int]) -> TrappingTensor { .must { try tensor.reshaped(shape) } }
    @inlinable public func transposed() -> TrappingTensor { .must { try tensor.transposed() } }
    @inlinable public func transposed(_ permutation: [Int]) -> TrappingTensor { .must { try tensor.transposed(permutation) } }
    @inlinable public func broadcast(to shape: [Int]) -> TrappingTensor { .must { try tensor.broadcast(to: shape) } }
    @inlinable public func unsqueezed(axis: Int) -> TrappingTensor { .must { try tensor.unsqueezed(axis: axis) } }
    @inlinable public func squeezed(axis: Int) -> TrappingTensor { .must { try tensor.squeezed(axis: axis) } }
    @inlinable public func takeAlong(_ indices: TrappingTensor, axis: Int) -> TrappingTensor { .must { try tensor.takeAlong(indices.tensor, axis: axis) } }
    @inlinable public func gather(_ indices: TrappingTensor, axis: Int = 0) -> TrappingTensor { .must { try tensor.gather(indices.tensor, axis: axis) } }
    @inlinable public func gatherND(_ indices: TrappingTensor) -> TrappingTensor { .must { try tensor.gatherND(indices.tensor) } }
    @inlinable public func scatterAdd(_ indices: TrappingTensor, _ updates: TrappingTensor, axis: Int = 0) -> TrappingTensor {
        .must { try tensor.scatterAdd(indices.tensor, updates.tensor, axis: axis) }
    }
    @inlinable public func slice(starts: [Int], ends: [Int]) -> TrappingTensor { .must { try tensor.slice(starts: starts, ends: ends) } }
    @inlinable public func padded(low: [Int], high: [Int], value: Double = 0) -> TrappingTensor { .must { try tensor.padded(low: low, high: high, value: value) } }
    @inlinable public func oneHot(depth: Int, dtype: DType = .float64) -> TrappingTensor { .must { try tensor.oneHot(depth: depth, dtype: dtype) } }
    @inlinable public func argmax(axis: Int, keepDims: Bool = false) -> TrappingTensor { .must { try tensor.argmax(axis: axis, keepDims: keepDims) } }
    /// The same selection as ``Tensor/subscript(_:)``.
    public subscript(_ indices: any TensorIndexConvertible...) -> TrappingTensor { .must { try tensor.indexed(indices.map(\.tensorIndex)) } }
    @inlinable public static func concat(_ tensors: [TrappingTensor], axis: Int = 0) -> TrappingTensor { .must { try Tensor.concat(tensors.map(\.tensor), axis: axis) } }
    @inlinable public static func stack(_ tensors: [TrappingTensor], axis: Int = 0) -> TrappingTensor { .must { try Tensor.stack(tensors.map(\.tensor), axis: axis) } }
}

extension TrappingTensor: TensorIndexConvertible {
    public var tensorIndex: TensorIndex { tensor.tensorIndex }
}

extension TrappingTensor: CustomStringConvertible {
    public var description: String { tensor.description }
}

extension Tensor {
    /// This tensor's non-throwing face (see ``TrappingTensor``).
    public var trapping: TrappingTensor { TrappingTensor(self) }
}
