import AdjointAutodiff
import AdjointTensor

/// A first-order optimizer: updates parameters in place from a gradient of the same structure.
///
/// Semantics are explicit and match the usual training loop: compute (or accumulate, see
/// ``GradientAccumulator``) a gradient, optionally clip it (``GradientClipping``), then call
/// ``update(_:along:)`` once per step. The optimizer's step counter drives its
/// ``LearningRateSchedule`` and bias corrections. Updates run outside every interpreter level, so a
/// step is never recorded by an enclosing tape.
public protocol Optimizer {
    /// Steps taken so far (the next update uses `schedule.value(at: step)`).
    var step: Int { get }
    /// The learning rate per step.
    var schedule: LearningRateSchedule { get }
    /// The optimizer's per-parameter state, named `"<slot>.<parameter name>"` (for checkpoints).
    var state: [String: Tensor] { get }
    /// Applies one update to `parameters` along `gradient` and advances ``step``.
    ///
    /// - Throws: ``TrainingError/gradientMismatch(parameter:detail:)`` when `gradient` does not have
    ///   the parameters' names, shapes and dtypes; nothing is modified in that case.
    mutating func update<P: ParameterCollection>(_ parameters: inout P, along gradient: P) throws
}

/// Checks that `gradient` matches `parameters` tensor by tensor, then calls `body(name, &parameter,
/// gradient)` for each, outside every interpreter level.
func forEachParameter<P: ParameterCollection>(
    _ parameters: inout P, _ gradient: P, _ body: (String, inout Tensor, Tensor) throws -> Void
) throws {
    let grads = gradient.namedTensors
    let params = parameters.namedTensors
    guard grads.count == params.count else {
        throw TrainingError.gradientMismatch(parameter: params.first?.name ?? "", detail: "\(grads.count) gradient tensors for \(params.count) parameters")
    }
    for (p, g) in zip(params, grads) {
        guard p.name == g.name else { throw TrainingError.gradientMismatch(parameter: p.name, detail: "the gradient names '\(g.name)' here") }
        guard p.tensor.valueType == g.tensor.valueType else {
            throw TrainingError.gradientMismatch(parameter: p.name, detail: "parameter is \(p.tensor.valueType), gradient is \(g.tensor.valueType)")
        }
    }
    var index = 0
    try InterpreterStack.current.withoutLevels {
        try parameters.visitTensors { name, tensor in
            defer { index += 1 }
            try body(name, &tensor, grads[index].tensor)
        }
    }
}

/// Throws unless `value` lies in `range` (a closed or half-open description for the message).
func require(_ name: String, _ value: Double, _ test: (Double) -> Bool, _ expected: String) throws {
    guard value.isFinite, test(value) else { throw TrainingError.invalidOption(name: name, value: "\(value)", expected: expected) }
}
