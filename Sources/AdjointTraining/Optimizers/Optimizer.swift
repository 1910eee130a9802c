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
    /// The optimizer's kind and hyperparameters (recorded in checkpoints, checked on resume).
    var configuration: OptimizerConfiguration { get }
    /// Replaces the per-parameter state and the step counter with a checkpoint's.
    ///
    /// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` for a state name whose slot
    ///   this optimizer does not have or a negative step; nothing is modified in that case.
    mutating func restore(state: [String: Tensor], step: Int) throws
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

/// An optimizer's kind and hyperparameters as a value: what a checkpoint records so a resume with
/// a differently configured optimizer is refused instead of silently continuing.
public enum OptimizerConfiguration: Codable, Equatable, Sendable, CustomStringConvertible {
    case sgd(learningRate: LearningRateSchedule, momentum: Double, nesterov: Bool, weightDecay: Double)
    case adam(learningRate: LearningRateSchedule, beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double)
    case adamW(learningRate: LearningRateSchedule, beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double)

    public var description: String {
        switch self {
        case let .sgd(rate, momentum, nesterov, decay):
            return "SGD(lr: \(rate), momentum: \(momentum), nesterov: \(nesterov), weightDecay: \(decay))"
        case let .adam(rate, b1, b2, eps, decay):
            return "Adam(lr: \(rate), beta1: \(b1), beta2: \(b2), epsilon: \(eps), weightDecay: \(decay))"
        case let .adamW(rate, b1, b2, eps, decay):
            return "AdamW(lr: \(rate), beta1: \(b1), beta2: \(b2), epsilon: \(eps), weightDecay: \(decay))"
        }
    }
}

/// Splits optimizer state names `"<slot>.<parameter>"` by slot, refusing unknown slots.
func stateBySlot(_ state: [String: Tensor], slots: [String], step: Int) throws -> [String: [String: Tensor]] {
    guard step >= 0 else { throw TrainingError.invalidOption(name: "optimizer step", value: "\(step)", expected: "a step ≥ 0") }
    var out: [String: [String: Tensor]] = Dictionary(uniqueKeysWithValues: slots.map { ($0, [:]) })
    for (name, tensor) in state {
        guard let dot = name.firstIndex(of: "."), out[String(name[..<dot])] != nil else {
            throw TrainingError.invalidOption(name: "optimizer state", value: name,
                                              expected: "a name \"<slot>.<parameter>\" with slot \(slots.joined(separator: " or "))")
        }
        out[String(name[..<dot])]![String(name[name.index(after: dot)...])] = tensor
    }
    return out
}
