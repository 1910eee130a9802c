import AdjointAutodiff
import AdjointTensor

/// A step that can carry the sensitivity `S[t] = ∂s[t]/∂θ` forward with the state, for
/// ``OnlineSensitivity``.
public protocol ForwardSensitivityStep: StepFunction {
    /// How the step holds `∂s/∂θ`.
    associatedtype Sensitivity

    /// `∂s[0]/∂θ = 0`.
    func zeroSensitivity(state: State, parameters: Parameters) throws -> Sensitivity

    /// `s[0] = initialState(θ)` and `S[0] = ∂s[0]/∂θ`, for a run whose initial state depends on
    /// the parameters.
    func initialSensitivity(_ initialState: (Parameters) throws -> State,
                            parameters: Parameters) throws -> (state: State, sensitivity: Sensitivity)

    /// `s[t+1]`, `S[t+1] = ∂F/∂s·S[t] + ∂F/∂θ`, the per-step loss and its total derivative
    /// `dℓ/dθ = ∂ℓ/∂s[t+1]·S[t+1] + ∂ℓ/∂θ`.
    func stepWithSensitivity(_ state: State, sensitivity: Sensitivity, input: Input, parameters: Parameters,
                             loss: Loss) throws -> (next: State, sensitivity: Sensitivity, loss: Double, gradient: ParameterGradient)

    /// The final-state loss and its total derivative `∂ℓ_T/∂s·S`, or `nil` when the loss has none.
    func finalLoss(_ state: State, sensitivity: Sensitivity, parameters: Parameters,
                   loss: Loss) throws -> (value: Double, gradient: ParameterGradient)?
}

/// Forward sensitivity for horizons that never end: `∂L/∂θ` of the losses so far, carried forward
/// step by step in memory independent of the number of steps (the state, `∂s/∂θ` — one state per
/// parameter element — and the gradient), so it runs beside a live system.
///
/// Each step costs about one step evaluation per parameter element (forward-mode derivatives), so
/// it suits systems with few parameters; the gradient equals the reverse-mode unroll's up to
/// rounding.
///
/// ```swift
/// var sensitivity = try OnlineSensitivity(step, state: s0, parameters: θ, loss: loss)
/// for x in liveInputs { try sensitivity.advance(input: x) }
/// let (L, dLdθ) = try sensitivity.total()
/// ```
public struct OnlineSensitivity<Step: ForwardSensitivityStep> {
    public let step: Step
    public let parameters: Step.Parameters
    public let loss: Step.Loss
    /// The current state `s[t]`.
    public private(set) var state: Step.State
    /// `∂s[t]/∂θ`.
    public private(set) var sensitivity: Step.Sensitivity
    /// Steps taken.
    public private(set) var steps = 0
    /// `Σ ℓ` over the steps taken.
    public private(set) var lossSum = 0.0
    /// `Σ dℓ/dθ` over the steps taken (`nil` before the first).
    public private(set) var gradient: Step.ParameterGradient?

    public init(_ step: Step, state: Step.State, parameters: Step.Parameters, loss: Step.Loss) throws {
        self.step = step
        self.parameters = parameters
        self.loss = loss
        self.state = state
        sensitivity = try step.zeroSensitivity(state: state, parameters: parameters)
    }

    /// Starts from `s[0] = initialState(θ)` (a starting temperature, a learned initial condition):
    /// `S[0] = ∂s[0]/∂θ`, so every gradient includes the initial state's dependence on `θ`.
    public init(_ step: Step, initialState: (Step.Parameters) throws -> Step.State, parameters: Step.Parameters,
                loss: Step.Loss) throws {
        self.step = step
        self.parameters = parameters
        self.loss = loss
        (state, sensitivity) = try step.initialSensitivity(initialState, parameters: parameters)
    }

    /// Takes one step with input `x`; returns its loss.
    @discardableResult
    public mutating func advance(input x: Step.Input) throws -> Double {
        let taken = try step.stepWithSensitivity(state, sensitivity: sensitivity, input: x, parameters: parameters, loss: loss)
        state = taken.next
        sensitivity = taken.sensitivity
        steps += 1
        lossSum += taken.loss
        try step.accumulate(taken.gradient, into: &gradient)
        return taken.loss
    }

    /// `L` and `∂L/∂θ` if the run stopped now: the per-step losses so far plus the final-state loss
    /// at the current state.
    public func total() throws -> (loss: Double, gradient: Step.ParameterGradient) {
        var value = lossSum
        var g = gradient
        if let (finalValue, finalGradient) = try step.finalLoss(state, sensitivity: sensitivity, parameters: parameters, loss: loss) {
            value += finalValue
            try step.accumulate(finalGradient, into: &g)
        }
        guard let g else { throw UnrollError.invalidSteps(0) }
        return (value, g)
    }
}

extension TensorStep: ForwardSensitivityStep {
    /// One state-shaped tangent per scalar of the parameters, in visiting order.
    public typealias Sensitivity = [State]

    public func zeroSensitivity(state: State, parameters: Parameters) throws -> [State] {
        let zero = try state.mapTensors { try $0.zerosLike() }
        return Array(repeating: zero, count: parameters.tensors.reduce(0) { $0 + $1.elementCount })
    }

    public func initialSensitivity(_ initialState: (Parameters) throws -> State,
                                   parameters: Parameters) throws -> (state: State, sensitivity: [State]) {
        let directions = try Self.unitDirections(parameters)
        guard !directions.isEmpty else {
            let state = try initialState(parameters)
            return (state, try zeroSensitivity(state: state, parameters: parameters))
        }
        var state: State?
        let columns = try directions.map { direction in
            let (value, tangent) = try jvp(at: parameters, direction: direction, of: initialState)
            if state == nil { state = value }
            return tangent
        }
        return (state!, columns)
    }

    public func stepWithSensitivity(_ state: State, sensitivity: [State], input: Input, parameters: Parameters,
                                    loss: Loss) throws -> (next: State, sensitivity: [State], loss: Double, gradient: Parameters) {
        let arguments = StepArguments(state: state, parameters: parameters)
        var next: State?
        var lossValue = 0.0
        var tangents: [State] = []
        var derivatives: [Double] = []
        tangents.reserveCapacity(sensitivity.count)
        derivatives.reserveCapacity(sensitivity.count)
        for (k, direction) in try Self.unitDirections(parameters).enumerated() {
            let (value, tangent) = try jvp(at: arguments, direction: StepArguments(state: sensitivity[k], parameters: direction)) {
                try stepAndLoss($0, input: input, loss: loss)
            }
            if next == nil {
                next = value.state
                lossValue = try value.loss.untracked.item()
            }
            tangents.append(tangent.state)
            derivatives.append(try tangent.loss.untracked.item())
        }
        guard let next else {
            // No parameter scalars: nothing to carry.
            let result = try stepAndLoss(arguments, input: input, loss: loss)
            return (result.state, [], try result.loss.untracked.item(), parameters)
        }
        return (next, tangents, lossValue, try Self.pack(derivatives, like: parameters))
    }

    public func finalLoss(_ state: State, sensitivity: [State], parameters: Parameters, loss: Loss) throws -> (value: Double, gradient: Parameters)? {
        guard let (value, g) = try finalLoss(state, loss: loss) else { return nil }
        let flat = g.tensors
        let derivatives = try sensitivity.map { s in
            try zip(flat, s.tensors).reduce(0.0) { sum, pair in sum + (try (pair.0 * pair.1).sum().untracked.item()) }
        }
        return (value, try Self.pack(derivatives, like: parameters))
    }

    /// `e_k` for every scalar of the parameters, shaped like them.
    static func unitDirections(_ parameters: Parameters) throws -> [Parameters] {
        let shapes = parameters.tensors
        let count = shapes.reduce(0) { $0 + $1.elementCount }
        return try (0..<count).map { k in
            var flat = [Double](repeating: 0, count: count)
            flat[k] = 1
            return try pack(flat, like: parameters)
        }
    }

    /// Splits a flat list of scalars into tensors shaped like `parameters`.
    static func pack(_ flat: [Double], like parameters: Parameters) throws -> Parameters {
        var offset = 0
        return try parameters.mapTensors { t in
            let part = Array(flat[offset..<offset + t.elementCount])
            offset += t.elementCount
            return try Tensor(part, shape: t.shape).cast(to: t.dtype)
        }
    }
}
