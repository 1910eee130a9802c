import AdjointTensor

/// How ``jacobian(of:at:mode:)`` builds the matrix.
public enum JacobianMode: String, Sendable, CaseIterable {
    /// Forward mode when the input has no more elements than the output, reverse mode otherwise.
    case automatic
    /// One column per input element: `f` is linearized once and its differential applied to each
    /// basis vector (cost ∝ input size).
    case forward
    /// One row per output element: `f` is recorded once and its pullback applied to each basis
    /// cotangent (cost ∝ output size).
    case reverse

    /// The concrete mode for a function from `inputCount` to `outputCount` elements.
    public func resolved(inputCount: Int, outputCount: Int) -> JacobianMode {
        guard self == .automatic else { return self }
        return inputCount <= outputCount ? .forward : .reverse
    }
}

/// The Jacobian of `f` at `x`: a tensor of shape `f(x).shape + x.shape` whose element
/// `[i…, j…]` is `∂f(x)[i…] / ∂x[j…]`.
///
/// - Parameters:
///   - f: the function.
///   - x: the point.
///   - mode: `.automatic` (default) picks forward mode when `x` has no more elements than
///     `f(x)`, reverse mode otherwise; either can be forced.
/// - Complexity: `f` runs once; then one JVP replay (forward) or one backward pass (reverse) on
///   batched tangents (``vmap(at:axes:outAxis:of:)``): every basis vector at once, so a matrix-vector
///   product of `f` becomes one matrix-matrix product.
public func jacobian(of f: (Tensor) throws -> Tensor, at x: Tensor, mode: JacobianMode = .automatic) throws -> Tensor {
    // One recording serves both modes: forward replays the JVP rules over it, reverse the VJPs.
    let (tape, y) = try record(x, f)
    defer { tape.release() }
    guard y.dtype.isFloatingPoint else { throw AutodiffError.nonFloatingPointOutput(dtype: y.dtype) }
    let (n, m) = (x.elementCount, y.elementCount)
    guard let outputID = y.traceTags.id(at: tape.levelID) else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
    guard n > 0, m > 0 else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
    switch mode.resolved(inputCount: n, outputCount: m) {
    case .forward, .automatic:
        // Every basis vector at once: one JVP replay with batched tangents.
        let level = try BatchLevel(size: n)
        let seed = try level.batched(identity(n, shape: x.shape, dtype: x.dtype))
        let tangent = try level.run { try tape.forward(leafTangents: [seed])[Int(outputID)] }
        guard let tangent else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
        let columns = try level.physicalOrBroadcast(tangent).reshaped([n, m])  // row j: J·e_j
        return try columns.transposed([1, 0]).reshaped(y.shape + x.shape)
    case .reverse:
        // Every basis cotangent at once: one backward pass with batched cotangents.
        let level = try BatchLevel(size: m)
        let seed = try level.batched(identity(m, shape: y.shape, dtype: y.dtype))
        let cotangent = try level.run { try tape.backward(seeds: [(outputID, seed)])[0] }
        guard let cotangent else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
        return try level.physicalOrBroadcast(cotangent).reshaped(y.shape + x.shape)  // row i: e_iᵀ·J
    }
}

/// The `count` basis vectors of a tensor of `shape` (`count` = its element count), stacked: shape
/// `[count] + shape`.
func identity(_ count: Int, shape: [Int], dtype: DType) throws -> Tensor {
    try Tensor.arange(0, Double(count)).cast(to: .int64).oneHot(depth: count, dtype: dtype).reshaped([count] + shape)
}

/// The Hessian of a scalar-valued `f` at `x`: shape `x.shape + x.shape`.
///
/// Forward-over-reverse: the gradient computation is recorded once and its differential applied
/// to every basis vector in one batched tangent replay, so `f` and its backward pass run once and
/// the columns come from matrix-matrix products.
public func hessian(of f: (Tensor) throws -> Tensor, at x: Tensor) throws -> Tensor {
    try scalarOnly("hessian") { try jacobian(of: { try gradient(at: $0, of: f) }, at: x, mode: .forward) }
}

/// Runs a second-order transform, naming it when the function it differentiates is not scalar.
private func scalarOnly<R>(_ transform: String, _ body: () throws -> R) throws -> R {
    do { return try body() } catch AutodiffError.nonScalarOutput(let shape) {
        throw AutodiffError.nonScalarFunction(transform: transform, shape: shape)
    }
}

/// The Hessian-vector product `∇²f(x)·v` of a scalar-valued `f`, by forward-over-reverse: the
/// gradient computation is run under forward mode along `direction`. The Hessian is never formed.
///
/// - Complexity: a small multiple of one gradient evaluation, independent of the size of `x`.
public func hvp<P: ParameterCollection>(at x: P, direction: P, of f: (P) throws -> Tensor) throws -> P {
    try gradientAndHVP(at: x, direction: direction, of: f).hvp
}

/// The gradient `∇f(x)` and the Hessian-vector product `∇²f(x)·v` from one forward-over-reverse pass.
public func gradientAndHVP<P: ParameterCollection>(
    at x: P, direction: P, of f: (P) throws -> Tensor
) throws -> (gradient: P, hvp: P) {
    let (g, hv) = try scalarOnly("hvp") { try jvp(at: x, direction: direction) { try gradient(at: $0, of: f) } }
    return (g, hv)
}
