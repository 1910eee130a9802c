import AdjointTensor

/// Records `f(x)` on a fresh tape: returns the tape, the result (with the tape's tags still on) and
/// nothing else; the caller runs backward.
func record<P: ParameterCollection, R>(_ x: P, _ f: (P) throws -> R) throws -> (Tape, R) {
    let tape = Tape()
    var tracked = x
    tracked.visitTensors { _, t in tape.track(&t) }
    let result = try InterpreterStack.current.withLevel(tape) { try f(tracked) }
    return (tape, result)
}

/// The gradient of a scalar-valued `f` at `x`, with `f(x)`.
///
/// `x` may be a tensor, an array or dictionary of tensors, or any ``ParameterCollection``; the
/// gradient has the same structure. A tensor that does not influence the result gets zeros.
///
/// - Throws: ``AutodiffError/nonScalarOutput(shape:)`` when `f` returns more than one element,
///   and any error `f` or a derivative rule throws.
public func valueWithGradient<P: ParameterCollection>(at x: P, of f: (P) throws -> Tensor) throws -> (value: Tensor, gradient: P) {
    try valueWithGradient(at: x, of: f, leafReady: nil)
}

/// ``valueWithGradient(at:of:)``, with `leafReady` called as each leaf's gradient is final.
func valueWithGradient<P: ParameterCollection>(at x: P, of f: (P) throws -> Tensor,
                                               leafReady: ((_ index: Int, _ gradient: Tensor?) throws -> Void)?) throws -> (value: Tensor, gradient: P) {
    let (tape, y) = try record(x, f)
    defer { tape.release() }
    guard y.elementCount == 1 else { throw AutodiffError.nonScalarOutput(shape: y.shape) }
    guard y.dtype.isFloatingPoint else { throw AutodiffError.nonFloatingPointOutput(dtype: y.dtype) }
    var value = y
    value.traceTags.remove(level: tape.levelID)
    var seeds: [(Int32, Tensor)] = []
    if let id = y.traceTags.id(at: tape.levelID) { seeds.append((id, try y.untracked.onesLike())) }
    let cotangents = try tape.backward(seeds: seeds, leafReady: leafReady)
    return (value, try materialize(cotangents, types: tape.leafTypes, into: x))
}

/// ``valueWithGradient(at:of:)`` that also hands each tensor's gradient to `ready` as soon as the
/// backward pass has finished it, while the rest of the backward pass is still to run: what a
/// data-parallel trainer needs to start communicating gradients early.
///
/// `ready` receives the tensor's index in `x`'s visiting order (as in `x.tensors`) and its gradient
/// (`nil` for a tensor the result does not depend on, whose gradient is zero). Each index comes
/// exactly once; tensors read last in `f` come first. The returned gradient is the same as
/// ``valueWithGradient(at:of:)``'s.
///
/// - Throws: as ``valueWithGradient(at:of:)``, and whatever `ready` throws (which ends the pass).
public func valueWithGradient<P: ParameterCollection>(at x: P, of f: (P) throws -> Tensor,
                                                      ready: (_ index: Int, _ gradient: Tensor?) throws -> Void) throws -> (value: Tensor, gradient: P) {
    try withoutActuallyEscaping(ready) { try valueWithGradient(at: x, of: f, leafReady: $0) }
}

/// The gradient of a scalar-valued `f` at `x`.
public func gradient<P: ParameterCollection>(at x: P, of f: (P) throws -> Tensor) throws -> P {
    try valueWithGradient(at: x, of: f).gradient
}

/// The gradients of a scalar-valued `f` with respect to two arguments.
public func valueWithGradient<A: ParameterCollection, B: ParameterCollection>(
    at a: A, _ b: B, of f: (A, B) throws -> Tensor
) throws -> (value: Tensor, gradient: (A, B)) {
    let (value, g) = try valueWithGradient(at: Pair(first: a, second: b)) { p in try f(p.first, p.second) }
    return (value, (g.first, g.second))
}

/// The gradients of a scalar-valued `f` with respect to two arguments.
public func gradient<A: ParameterCollection, B: ParameterCollection>(at a: A, _ b: B, of f: (A, B) throws -> Tensor) throws -> (A, B) {
    try valueWithGradient(at: a, b, of: f).gradient
}

/// The gradients of a scalar-valued `f` with respect to three arguments.
public func gradient<A: ParameterCollection, B: ParameterCollection, C: ParameterCollection>(
    at a: A, _ b: B, _ c: C, of f: (A, B, C) throws -> Tensor
) throws -> (A, B, C) {
    let g = try gradient(at: Pair(first: a, second: Pair(first: b, second: c))) { p in
        try f(p.first, p.second.first, p.second.second)
    }
    return (g.first, g.second.first, g.second.second)
}

/// `f(x)` and a pullback that maps a cotangent of the result to the cotangent of `x`.
///
/// The pullback can be called any number of times (the tape is kept until ``Pullback/release()``
/// or until the pullback is freed).
public func vjp<P: ParameterCollection, R: ParameterCollection>(at x: P, of f: (P) throws -> R) throws -> (value: R, pullback: Pullback<P, R>) {
    let recording = try Recording(x, f)
    // The template keeps only the argument's structure: holding its tensors would keep their
    // storage shared, so in-place writes to the argument would copy even after ``Pullback/release()``.
    let pullback = Pullback<P, R>(tape: recording.tape, template: structure(of: x),
                                  outputIDs: recording.outputIDs, outputTypes: recording.outputTypes)
    return (recording.value, pullback)
}

/// `f(x)` recorded on a tape that outlives the call: the result without the tape's tags, and the
/// ids and types of its tensors on the tape.
struct Recording<R: ParameterCollection> {
    let tape: Tape
    let value: R
    let outputIDs: [Int32?]
    let outputTypes: [ValueType]

    init<P: ParameterCollection>(_ x: P, _ f: (P) throws -> R) throws {
        let (tape, y) = try record(x, f)
        let outputs = y.tensors
        self.tape = tape
        value = y.mapTensors { t in
            var t = t
            t.traceTags.remove(level: tape.levelID)
            return t
        }
        outputIDs = outputs.map { $0.traceTags.id(at: tape.levelID) }
        outputTypes = outputs.map(\.valueType)
    }
}

/// `x`'s structure with empty tensors: enough to rebuild a value of its type, holding no data.
func structure<P: ParameterCollection>(of x: P) -> P {
    x.mapTensors { Tensor(uninitialized: [0], dtype: $0.dtype) }
}

/// `x` with every interpreter's tracking removed: a constant to differentiation.
public func withoutDerivative<P: ParameterCollection>(at x: P) -> P {
    x.mapTensors { $0.untracked }
}

/// Maps a cotangent of a function's result to the cotangent of its argument.
public struct Pullback<Argument: ParameterCollection, Result: ParameterCollection> {
    let tape: Tape
    let template: Argument
    let outputIDs: [Int32?]
    let outputTypes: [ValueType]

    /// The recorded program, printable as IR.
    public var graph: Graph { tape.graph(outputs: outputIDs.compactMap { $0 }) }

    /// The cotangent of the argument for the result cotangent `cotangent`.
    public func callAsFunction(_ cotangent: Result) throws -> Argument {
        let seeds = cotangent.tensors
        guard seeds.count == outputTypes.count else {
            throw AutodiffError.cotangentCountMismatch(expected: outputTypes.count, got: seeds.count)
        }
        var pairs: [(Int32, Tensor)] = []
        for (i, seed) in seeds.enumerated() {
            let type = outputTypes[i]
            guard seed.shape == type.shape, seed.dtype == type.dtype else {
                throw AutodiffError.cotangentMismatch(index: i, expected: type.shape, expectedDType: type.dtype, got: seed.shape, gotDType: seed.dtype)
            }
            if let id = outputIDs[i] { pairs.append((id, seed)) }
        }
        return try materialize(try tape.backward(seeds: pairs), types: tape.leafTypes, into: template)
    }

    /// Frees the tape; later calls throw ``AutodiffError/tapeReleased``.
    public func release() { tape.release() }
}

/// Fills symbolic zeros with zero tensors (on the devices of the structure's tensors) and packs
/// cotangents into the argument's structure.
func materialize<P: ParameterCollection>(_ cotangents: [Tensor?], types: [ValueType], into structure: P) throws -> P {
    let devices = structure.tensors.map(\.device)
    let filled = try zip(cotangents, types).enumerated().map { k, pair in
        try pair.0 ?? Tensor.full(pair.1.shape, 0, dtype: pair.1.dtype, on: k < devices.count ? devices[k] : .cpu)
    }
    return structure.replacingTensors(with: filled)
}

/// Two collections as one (used for multi-argument gradients).
struct Pair<A: ParameterCollection, B: ParameterCollection>: ParameterCollection {
    var first: A
    var second: B
    mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try first.visitTensors { n, t in try visit("0." + n, &t) }
        try second.visitTensors { n, t in try visit("1." + n, &t) }
    }
}

extension Tape {
    /// Records `f(x)` and returns the tape as an IR graph together with the result (for printing).
    public static func trace<P: ParameterCollection>(at x: P, _ f: (P) throws -> Tensor) throws -> (graph: Graph, value: Tensor) {
        let (tape, y) = try record(x, f)
        defer { tape.release() }
        let outputs = y.traceTags.id(at: tape.levelID).map { [$0] } ?? []
        return (tape.graph(outputs: outputs), y.untracked)
    }
}
