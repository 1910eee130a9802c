import AdjointTensor

/// `f` applied to every slice of its arguments along a batch axis, as one batched computation
/// (JAX's `vmap`).
///
/// `f` is written for one example and runs once: each operator it applies to a batched value runs
/// once on the whole batch (its batching rule), not once per example. Results are
/// stacked along `outAxis`; a result that does not depend on a batched argument is broadcast to
/// the batch.
///
/// Composes with the other transforms in either order: `vmap` of `gradient` gives per-example
/// gradients, `gradient` of `vmap` differentiates the batched computation, and ``jacobian(of:at:mode:)``
/// and ``hessian(of:at:)`` push a whole basis through one batched replay.
///
/// - Parameters:
///   - x: the arguments.
///   - axes: for each tensor of `x` (in ``ParameterCollection/tensors`` order), the axis it is
///     batched along, or `nil` for an argument every example shares. `nil` (the default): every
///     tensor along axis 0.
///   - outAxis: where the batch axis goes in every result (negative counts from the end).
///   - f: the per-example function. Inside it, a batched argument has its example shape.
/// - Throws: ``AutodiffError/vmapInvalidAxes(detail:)`` for axes that do not fit the arguments or
///   batch sizes that differ, ``AutodiffError/vmapValueRead(shape:)`` when `f` reads the elements
///   of a batched value as numbers (a Swift branch on them cannot differ per example; use
///   `select`), and whatever `f` throws.
public func vmap<P: ParameterCollection, R: ParameterCollection>(
    at x: P, axes: [Int?]? = nil, outAxis: Int = 0, of f: (P) throws -> R
) throws -> R {
    let tensors = x.tensors
    let axes = axes ?? Array(repeating: 0, count: tensors.count)
    guard axes.count == tensors.count else {
        throw AutodiffError.vmapInvalidAxes(detail: "\(axes.count) axes for \(tensors.count) argument tensors")
    }
    var size: Int?
    for (i, (t, axis)) in zip(tensors, axes).enumerated() {
        guard let axis else { continue }
        guard axis >= -t.rank, axis < t.rank else {
            throw AutodiffError.vmapInvalidAxes(detail: "argument \(i) has shape \(t.shape); it has no axis \(axis)")
        }
        let extent = t.shape[axis < 0 ? axis + t.rank : axis]
        if let size, size != extent {
            throw AutodiffError.vmapInvalidAxes(detail: "argument \(i) has \(extent) examples along axis \(axis), an earlier one \(size)")
        }
        size = extent
    }
    guard let size else { throw AutodiffError.vmapInvalidAxes(detail: "no argument is batched (every axis is nil)") }
    let level = try BatchLevel(size: size)
    var k = 0
    var failure: Error?
    let seeded = x.mapTensors { t in
        defer { k += 1 }
        guard let axis = axes[k], failure == nil else { return t }
        do { return try level.batch(t, axis: axis) } catch { failure = error; return t }
    }
    if let failure { throw failure }
    let y = try level.run { try f(seeded) }
    let outputs = try y.tensors.map { try level.unbatch($0, axis: outAxis) }
    return y.replacingTensors(with: outputs)
}

/// ``vmap(at:axes:outAxis:of:)`` for a function of one tensor batched along `axis`.
public func vmap(_ f: (Tensor) throws -> Tensor, over x: Tensor, axis: Int = 0, outAxis: Int = 0) throws -> Tensor {
    try vmap(at: x, axes: [axis], outAxis: outAxis, of: f)
}

/// The batching interpreter level behind ``vmap(at:axes:outAxis:of:)``.
///
/// A batched value is an ordinary tensor of the example's shape — it holds the first example, so
/// the code `f` runs sees valid shapes and values — whose trace tag carries the whole batch with
/// the batch axis first (its *physical* value). When an operator has a batched input, the level
/// applies the operator's batching rule (``BatchingRules``) to the physical values and tags the
/// output with the result. The rule runs with only the levels outside this one visible, so an
/// enclosing tape or forward level differentiates the batched computation, and an enclosing batch
/// level batches it again (nested `vmap`).
///
/// The first example is thus computed twice (once as the logical value): the cost is 1/size of the
/// batched work.
final class BatchLevel: InterpreterLevel {
    /// The whole batch of a value, batch axis first.
    final class Batched {
        let physical: Tensor
        init(_ physical: Tensor) { self.physical = physical }
    }

    let levelID = InterpreterStack.makeLevelID()
    /// The number of examples.
    let size: Int
    /// The shape of the first batched value read as numbers inside `f`, if any.
    private var readShape: [Int]?

    init(size: Int) throws {
        guard size > 0 else { throw AutodiffError.vmapInvalidAxes(detail: "the batch axis is empty; vmap needs at least one example") }
        self.size = size
    }

    /// The batch of `x` along `axis` as a batched value (its first example, tagged).
    func batch(_ x: Tensor, axis: Int) throws -> Tensor {
        let a = axis < 0 ? axis + x.rank : axis
        var physical = x
        if a != 0 {
            var permutation = Array(0..<x.rank)
            permutation.remove(at: a)
            permutation.insert(a, at: 0)
            physical = try x.transposed(permutation)
        }
        return try batched(physical)
    }

    /// A batched value whose whole batch is `physical` (batch axis first).
    func batched(_ physical: Tensor) throws -> Tensor {
        precondition(physical.rank >= 1 && physical.shape[0] == size, "a physical value has the batch first")
        var first = try physical.slice(starts: [0] + Array(repeating: 0, count: physical.rank - 1), ends: [1] + physical.shape.dropFirst())
            .reshaped(Array(physical.shape.dropFirst()))
        first.traceTags.set(TraceTag(level: levelID, id: 0, payload: Batched(physical)))
        return first
    }

    /// The whole batch of `x` with the batch axis first, or `nil` when `x` is not batched here.
    func physical(of x: Tensor) -> Tensor? {
        guard let payload = x.traceTags.tag(at: levelID)?.payload else { return nil }
        return unsafeDowncast(payload, to: Batched.self).physical
    }

    /// The whole batch of `x` with the batch axis first, broadcast from `x` when `x` is not batched.
    func physicalOrBroadcast(_ x: Tensor) throws -> Tensor {
        try physical(of: x) ?? x.broadcast(to: [size] + x.shape)
    }

    /// Runs `f` with this level innermost; refuses a result that read batched values as numbers.
    func run<R>(_ f: () throws -> R) throws -> R {
        let result = try InterpreterStack.current.withLevel(self, f)
        if let readShape { throw AutodiffError.vmapValueRead(shape: readShape) }
        return result
    }

    /// `x` with its batch along `axis` (every example the same when `x` is not batched), untagged
    /// at this level.
    func unbatch(_ x: Tensor, axis: Int) throws -> Tensor {
        let p = try physicalOrBroadcast(x)
        let a = axis < 0 ? axis + p.rank : axis
        guard a >= 0, a < p.rank else {
            throw AutodiffError.vmapInvalidAxes(detail: "a result of shape \(x.shape) has no output axis \(axis)")
        }
        guard a != 0 else { return p }
        var permutation = Array(1..<p.rank)
        permutation.insert(0, at: a)
        return try p.transposed(permutation)
    }

    func valueRead(_ tensor: Tensor) {
        if readShape == nil, physical(of: tensor) != nil { readShape = tensor.shape }
    }

    func process(_ call: inout OpCall) throws {
        guard call.inputs.contains(where: { physical(of: $0) != nil }) else { return }
        let batch = try BatchingRules.apply(call, level: self)
        guard batch.shape == [size] + call.output.shape, batch.dtype == call.output.dtype else {
            throw AutodiffError.batchingRuleProducedWrongShape(op: call.op, expected: [size] + call.output.shape, got: batch.shape)
        }
        call.output.traceTags.set(TraceTag(level: levelID, id: 0, payload: Batched(batch)))
    }
}
