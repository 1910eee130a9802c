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
/// - Complexity: `f` runs once; then one JVP replay per input element (forward) or one backward
///   pass per output element (reverse).
public func jacobian(of f: (Tensor) throws -> Tensor, at x: Tensor, mode: JacobianMode = .automatic) throws -> Tensor {
    // One recording serves both modes: forward replays the JVP rules over it, reverse the VJPs.
    let (tape, y) = try record(x, f)
    defer { tape.release() }
    guard y.dtype.isFloatingPoint else { throw AutodiffError.nonFloatingPointOutput(dtype: y.dtype) }
    let (n, m) = (x.elementCount, y.elementCount)
    guard let outputID = y.traceTags.id(at: tape.levelID) else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
    switch mode.resolved(inputCount: n, outputCount: m) {
    case .forward, .automatic:
        let columns = try (0..<n).map { j in
            let tangent = try tape.forward(leafTangents: [basisVector(j, like: x)])[Int(outputID)]
            return try (tangent ?? Tensor.zeros(y.shape, dtype: y.dtype)).reshaped([m])
        }
        return try Tensor.stack(columns, axis: 1).reshaped(y.shape + x.shape)
    case .reverse:
        let rows = try (0..<m).map { i in
            try tape.backward(seeds: [(outputID, basisVector(i, like: y.untracked))])[0] ?? Tensor.zeros(x.shape, dtype: x.dtype)
        }
        return try Tensor.stack(rows, axis: 0).reshaped(y.shape + x.shape)
    }
}

/// The Hessian of a scalar-valued `f` at `x`: shape `x.shape + x.shape`.
///
/// Forward-over-reverse: the gradient computation is linearized once and its differential applied
/// to each basis vector, so `f` and its backward pass run once and each column costs one tangent
/// replay of the backward pass.
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

/// A tensor shaped like `like` with a one at flat index `index` and zeros elsewhere.
func basisVector(_ index: Int, like: Tensor) throws -> Tensor {
    var e = try Tensor.zeros([like.elementCount], dtype: like.dtype)
    try e.assign(Tensor.full([], 1, dtype: like.dtype), starts: [index], ends: [index + 1])
    return try e.reshaped(like.shape)
}
