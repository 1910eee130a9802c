import AdjointTensor

/// `f(x)` and the directional derivative `J_f(x)·v` along `direction`, in one forward pass.
///
/// Tangents travel with the values through every operation (forward mode), so memory does not
/// grow with the length of the computation and no tape is kept. `x` and `direction` must have the
/// same structure, shapes and dtypes; the tangent has the result's structure (zeros for result
/// tensors that do not depend on `x`).
///
/// - Complexity: about 2–3 times the cost of `f(x)`, whatever the size of `x`.
/// - Throws: ``AutodiffError/tangentMismatch(index:expected:expectedDType:got:gotDType:)`` or
///   ``AutodiffError/tangentCountMismatch(expected:got:)`` for a direction that does not fit `x`.
public func jvp<P: ParameterCollection, R: ParameterCollection>(
    at x: P, direction: P, of f: (P) throws -> R
) throws -> (value: R, tangent: R) {
    let directions = direction.tensors
    try checkDirections(directions, against: x.tensors.map(\.valueType))
    let level = ForwardLevel()
    var seeded = x
    var k = 0
    seeded.visitTensors { _, t in
        if t.dtype.isFloatingPoint { level.seed(&t, direction: directions[k]) }
        k += 1
    }
    let y = try InterpreterStack.current.withLevel(level) { try f(seeded) }
    let tangents = try y.tensors.map { t in try level.tangent(of: t) ?? Tensor.full(t.shape, 0, dtype: t.dtype, on: t.device) }
    let value = y.mapTensors { t in
        var t = t
        t.traceTags.remove(level: level.levelID)
        return t
    }
    return (value, y.replacingTensors(with: tangents))
}

/// `f(x)` and its differential at `x`: a linear map `v ↦ J_f(x)·v` that can be applied to any
/// number of directions without running `f` again (JAX's `linearize`).
///
/// `f` is recorded once; the map replays the JVP rules over the recorded operations, reading the
/// values they saved. Memory is that of a reverse-mode tape until ``Differential/release()``.
public func linearize<P: ParameterCollection, R: ParameterCollection>(
    at x: P, of f: (P) throws -> R
) throws -> (value: R, differential: Differential<P, R>) {
    let recording = try Recording(x, f)
    let differential = Differential<P, R>(
        tape: recording.tape, argumentTypes: x.tensors.map(\.valueType), template: structure(of: recording.value),
        outputIDs: recording.outputIDs, outputTypes: recording.outputTypes)
    return (recording.value, differential)
}

/// The linear map `v ↦ J_f(x)·v` of a function at a point (from ``linearize(at:of:)``).
public struct Differential<Argument: ParameterCollection, Result: ParameterCollection> {
    let tape: Tape
    let argumentTypes: [ValueType]
    /// The result's structure only (holding its tensors would keep them alive).
    let template: Result
    let outputIDs: [Int32?]
    let outputTypes: [ValueType]

    /// The recorded program, printable as IR.
    public var graph: Graph { tape.graph(outputs: outputIDs.compactMap { $0 }) }

    /// `J_f(x)·direction`.
    public func callAsFunction(_ direction: Argument) throws -> Result {
        let directions = direction.tensors
        try checkDirections(directions, against: argumentTypes)
        let tangents = try tape.forward(leafTangents: directions)
        let out = try zip(outputIDs, outputTypes).map { id, type in
            try id.flatMap { tangents[Int($0)] } ?? Tensor.zeros(type.shape, dtype: type.dtype)
        }
        return template.replacingTensors(with: out)
    }

    /// Frees the recorded values; later calls throw ``AutodiffError/tapeReleased``.
    public func release() { tape.release() }
}

/// Throws unless `directions` match `arguments` one to one in shape and dtype.
func checkDirections(_ directions: [Tensor], against types: [ValueType]) throws {
    guard directions.count == types.count else {
        throw AutodiffError.tangentCountMismatch(expected: types.count, got: directions.count)
    }
    for (i, (d, type)) in zip(directions, types).enumerated() where d.valueType != type {
        throw AutodiffError.tangentMismatch(index: i, expected: type.shape, expectedDType: type.dtype, got: d.shape, gotDType: d.dtype)
    }
}
