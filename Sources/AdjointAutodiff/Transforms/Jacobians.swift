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
///   batched tangents (``vmap(at:axes:outAxis:of:)``): every basis vector at once (in blocks when
///   their tangents would exceed 2²⁵ elements), so a matrix-vector product of `f` becomes one
///   matrix-matrix product.
public func jacobian(of f: (Tensor) throws -> Tensor, at x: Tensor, mode: JacobianMode = .automatic) throws -> Tensor {
    try jacobian(of: f, at: x, mode: mode, batchElements: 1 << 25)
}

/// ``jacobian(of:at:mode:)`` holding at most `batchElements` elements in the tangents of all
/// recorded values at once (2²⁵ — 256 MiB of float64 — in the public function): the basis is taken
/// in blocks of at most `batchElements` / (elements of all recorded values) vectors.
package func jacobian(of f: (Tensor) throws -> Tensor, at x: Tensor, mode: JacobianMode, batchElements: Int) throws -> Tensor {
    // One recording serves both modes: forward replays the JVP rules over it, reverse the VJPs.
    let (tape, y) = try record(x, f)
    defer { tape.release() }
    guard y.dtype.isFloatingPoint else { throw AutodiffError.nonFloatingPointOutput(dtype: y.dtype) }
    let (n, m) = (x.elementCount, y.elementCount)
    guard let outputID = y.traceTags.id(at: tape.levelID) else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
    guard n > 0, m > 0 else { return try Tensor.zeros(y.shape + x.shape, dtype: y.dtype) }
    // Basis vectors in blocks: a replay holds `block` copies of every recorded value's tangent.
    let perBasis = tape.nodes.reduce(n) { $0 + $1.outputType.elementCount }
    func blocks(_ count: Int) -> [Range<Int>] {
        let size = Swift.max(1, Swift.min(count, batchElements / Swift.max(1, perBasis)))
        return stride(from: 0, to: count, by: size).map { $0 ..< Swift.min(count, $0 + size) }
    }
    switch mode.resolved(inputCount: n, outputCount: m) {
    case .forward, .automatic:
        // A block of basis vectors at a time: one JVP replay with batched tangents.
        let rows = try blocks(n).map { block -> Tensor in
            let level = try BatchLevel(size: block.count)
            let seed = try level.batched(basis(block, of: n, shape: x.shape, dtype: x.dtype))
            let tangent = try level.run { try tape.forward(leafTangents: [seed])[Int(outputID)] }
            guard let tangent else { return try Tensor.zeros([block.count, m], dtype: y.dtype) }
            return try level.physicalOrBroadcast(tangent).reshaped([block.count, m])  // row j: J·e_j
        }
        let columns = rows.count == 1 ? rows[0] : try Tensor.concat(rows, axis: 0)
        return try columns.transposed([1, 0]).reshaped(y.shape + x.shape)
    case .reverse:
        // A block of basis cotangents at a time: one backward pass with batched cotangents.
        let rows = try blocks(m).map { block -> Tensor in
            let level = try BatchLevel(size: block.count)
            let seed = try level.batched(basis(block, of: m, shape: y.shape, dtype: y.dtype))
            let cotangent = try level.run { try tape.backward(seeds: [(outputID, seed)])[0] }
            guard let cotangent else { return try Tensor.zeros([block.count, n], dtype: x.dtype) }
            return try level.physicalOrBroadcast(cotangent).reshaped([block.count, n])  // row i: e_iᵀ·J
        }
        return try (rows.count == 1 ? rows[0] : try Tensor.concat(rows, axis: 0)).reshaped(y.shape + x.shape)
    }
}

/// Basis vectors `block` of a tensor of `shape` with `count` elements, stacked: shape
/// `[block.count] + shape`.
func basis(_ block: Range<Int>, of count: Int, shape: [Int], dtype: DType) throws -> Tensor {
    try Tensor.arange(Double(block.lowerBound), Double(block.upperBound)).cast(to: .int64)
        .oneHot(depth: count, dtype: dtype).reshaped([block.count] + shape)
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
