import AdjointAutodiff
import AdjointTensor
import AdjointIO

/// A step written with Adjoint tensors: `(s[t+1], y[t]) = body(s[t], x[t], θ)`, recorded on a fresh
/// tape each time it is taken with a pullback.
///
/// State, parameters and output are `ParameterCollection`s (a tensor, an array or dictionary of
/// tensors, or your own struct); the input is anything (`Void`, a tensor, a trace record). Use
/// ``NoOutput`` for a step whose loss reads only the state.
///
/// ```swift
/// let decay = TensorStep<Tensor, Tensor, Tensor, NoOutput> { s, x, k in
///     (try s * k + x, NoOutput())
/// }
/// ```
public struct TensorStep<State: ParameterCollection, Input, Parameters: ParameterCollection, Output: ParameterCollection>: StepFunction {
    public typealias Loss = TrajectoryLoss<State, Output>
    public typealias StateCotangent = State
    public typealias ParameterGradient = Parameters

    /// The step.
    public let body: (_ state: State, _ input: Input, _ parameters: Parameters) throws -> (state: State, output: Output)

    public init(_ body: @escaping (_ state: State, _ input: Input, _ parameters: Parameters) throws -> (state: State, output: Output)) {
        self.body = body
    }

    public func step(_ state: State, input: Input, parameters: Parameters) throws -> State {
        try body(state, input, parameters).state
    }

    public func recordStep(_ state: State, input: Input, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self> {
        let (result, pullback) = try vjp(at: StepArguments(state: state, parameters: parameters)) { arguments in
            try stepAndLoss(arguments, input: input, loss: loss)
        }
        let lossValue = try result.loss.untracked.item()
        return RecordedStep(next: result.state, loss: lossValue) { cotangent in
            let seed = StepResult(state: try cotangent ?? result.state.mapTensors { try $0.zerosLike() },
                                  loss: try result.loss.onesLike())
            let g = try pullback(seed)
            return (g.state, g.parameters)
        }
    }

    /// `s[t+1]` and the per-step loss `ℓ(s[t+1], y[t])` (zero without a per-step term): what a
    /// recorded step differentiates, in reverse (``recordStep(_:input:parameters:loss:)``) and
    /// forward mode (``stepWithSensitivity(_:sensitivity:input:parameters:loss:)``).
    func stepAndLoss(_ arguments: StepArguments<State, Parameters>, input: Input, loss: Loss) throws -> StepResult<State> {
        let (next, output) = try body(arguments.state, input, arguments.parameters)
        let value = try loss.perStep.map { try $0(next, output) } ?? Tensor(0.0)
        guard value.elementCount == 1 else { throw AutodiffError.nonScalarOutput(shape: value.shape) }
        return StepResult(state: next, loss: value)
    }

    public func finalLoss(_ state: State, loss: Loss) throws -> (value: Double, cotangent: State)? {
        guard let final = loss.final else { return nil }
        let (value, g) = try valueWithGradient(at: state, of: final)
        return (try value.item(), g)
    }

    public func accumulate(_ gradient: Parameters, into total: inout Parameters?) throws {
        guard total != nil else {
            total = gradient
            return
        }
        let addends = gradient.tensors
        var index = 0
        try total!.visitTensors { _, t in
            try t.add_(addends[index])
            index += 1
        }
    }

    public func serialize(_ state: State) throws -> [UInt8] {
        let named = state.tensors.enumerated().map { ("\($0.offset)", $0.element) }
        return try SafeTensors.encode(Dictionary(uniqueKeysWithValues: named))
    }

    public func deserialize(_ bytes: [UInt8], like template: State) throws -> State {
        let (tensors, _) = try SafeTensors.decode(bytes, path: "<snapshot>")
        let expected = template.tensors
        let restored = try expected.indices.map { i -> Tensor in
            guard let t = tensors["\(i)"], t.shape == expected[i].shape, t.dtype == expected[i].dtype else {
                throw PersistenceError.corrupt(path: "<snapshot>", offset: 0,
                                               detail: "tensor \(i) missing or not \(expected[i].dtype)\(expected[i].shape)")
            }
            return t
        }
        return template.replacingTensors(with: restored)
    }

    public func hash(_ state: State) -> StateHash {
        var hasher = StateHasher()
        for t in state.tensors { hasher.combine(t) }
        return hasher.finalize()
    }

    public func byteCount(of state: State) -> Int {
        state.tensors.reduce(0) { $0 + $1.elementCount * $1.dtype.byteSize }
    }
}

extension StateHasher {
    /// Mixes in a tensor's dtype, shape and every byte of its elements.
    public mutating func combine(_ tensor: Tensor) {
        combine(tensor.valueType, bytes: tensor.rawPointer)
    }

    /// Mixes in a value of `type` whose elements are at `bytes` (as ``combine(_:)`` does a tensor's).
    mutating func combine(_ type: ValueType, bytes: UnsafeRawPointer) {
        combine(UInt64(DType.allCases.firstIndex(of: type.dtype)!))
        combine(UInt64(type.shape.count))
        for d in type.shape { combine(UInt64(d)) }
        combine(bytes: bytes, count: type.byteCount)
    }
}

/// The loss of a trajectory run by a ``TensorStep``: per-step terms `ℓ(s[t+1], y[t])` summed over
/// the steps, a final-state term `ℓ_T(s[T])`, or both. Each returns a one-element tensor.
public struct TrajectoryLoss<State: ParameterCollection, Output: ParameterCollection> {
    public let perStep: ((State, Output) throws -> Tensor)?
    public let final: ((State) throws -> Tensor)?

    /// `Σ_t ℓ(s[t+1], y[t])`.
    public static func perStep(_ loss: @escaping (_ state: State, _ output: Output) throws -> Tensor) -> Self {
        Self(perStep: loss, final: nil)
    }

    /// `ℓ_T(s[T])`.
    public static func final(_ loss: @escaping (_ state: State) throws -> Tensor) -> Self {
        Self(perStep: nil, final: loss)
    }

    /// `Σ_t ℓ(s[t+1], y[t]) + ℓ_T(s[T])`.
    public static func both(perStep: @escaping (_ state: State, _ output: Output) throws -> Tensor,
                            final: @escaping (_ state: State) throws -> Tensor) -> Self {
        Self(perStep: perStep, final: final)
    }
}

/// The output of a step that has none.
public struct NoOutput: ParameterCollection {
    public init() {}
    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {}
}

/// What a recorded step differentiates with respect to.
struct StepArguments<State: ParameterCollection, Parameters: ParameterCollection>: ParameterCollection {
    var state: State
    var parameters: Parameters
    mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try state.visitTensors { n, t in try visit("state." + n, &t) }
        try parameters.visitTensors { n, t in try visit("parameters." + n, &t) }
    }
}

/// What a recorded step returns.
struct StepResult<State: ParameterCollection>: ParameterCollection {
    var state: State
    var loss: Tensor
    mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try state.visitTensors { n, t in try visit("state." + n, &t) }
        try visit("loss", &loss)
    }
}
