import AdjointTensor

/// Errors raised while differentiating.
public enum AutodiffError: Error, Equatable, CustomStringConvertible {
    /// `gradient`/`valueWithGradient` of a function whose result has more than one element.
    case nonScalarOutput(shape: [Int])
    /// `hessian`, `hvp` or `gradientAndHVP` (the `transform`) of a function whose result has more
    /// than one element: second derivatives of that kind exist for scalar functions only.
    case nonScalarFunction(transform: String, shape: [Int])
    /// A pullback was called after ``Pullback/release()``.
    case tapeReleased
    /// A cotangent (or tangent) reached an operator whose derivative is not implemented. `node` is
    /// the tape node, or -1 in forward mode.
    case derivativeNotImplemented(op: OpCode, node: Int, reason: String)
    /// The cotangent passed to a pullback does not match the result it is for.
    case cotangentMismatch(index: Int, expected: [Int], expectedDType: DType, got: [Int], gotDType: DType)
    /// The cotangent passed to a pullback holds a different number of tensors than the result.
    case cotangentCountMismatch(expected: Int, got: Int)
    /// The direction passed to `jvp` or a linear map does not match the argument it perturbs.
    case tangentMismatch(index: Int, expected: [Int], expectedDType: DType, got: [Int], gotDType: DType)
    /// The direction holds a different number of tensors than the argument.
    case tangentCountMismatch(expected: Int, got: Int)
    /// A derivative rule produced a gradient of the wrong shape (a bug in that rule). `input` is
    /// -1 for the output tangent of a JVP.
    case ruleProducedWrongShape(op: OpCode, input: Int, expected: [Int], got: [Int])
    /// A derivative rule produced a gradient of the wrong element type (a bug in that rule).
    case ruleProducedWrongDType(op: OpCode, input: Int, expected: DType, got: DType)
    /// A custom operator's VJP or JVP returned derivatives of the wrong count, shape or dtype.
    case customDerivative(name: String, detail: String)
    /// A differentiated result is not a floating-point tensor.
    case nonFloatingPointOutput(dtype: DType)
    /// `vmap` axes that do not fit the arguments: an axis a tensor does not have, batch sizes that
    /// differ, an empty batch, or no batched argument.
    case vmapInvalidAxes(detail: String)
    /// The function given to `vmap` read the elements of a batched value (of the example `shape`)
    /// as numbers: a Swift branch on them would take the first example's path for every example.
    case vmapValueRead(shape: [Int])
    /// A batching rule produced a batch of the wrong shape (a bug in that rule).
    case batchingRuleProducedWrongShape(op: OpCode, expected: [Int], got: [Int])

    public var description: String {
        func s(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
        switch self {
        case let .nonScalarOutput(shape):
            return "gradient needs a scalar result, but the function returned shape \(s(shape)); use vjp(at:of:) and pass a cotangent, or reduce the result (sum, mean) first"
        case let .nonScalarFunction(transform, shape):
            return "\(transform) needs a scalar-valued function, but it returned shape \(s(shape)); reduce the result to one element first (sum, mean, or pick a component), or take jacobian(of:at:) of its jacobian for a vector-valued function"
        case .tapeReleased:
            return "backward through a released tape: this pullback's tape was released; record the function again"
        case let .customDerivative(name, detail):
            return "custom operator '\(name)': \(detail)"
        case let .derivativeNotImplemented(op, node, reason):
            return "the derivative of \(op.rawValue) (\(node < 0 ? "forward mode" : "tape node \(node)")) is not implemented: \(reason)"
        case let .cotangentMismatch(index, expected, expectedDType, got, gotDType):
            return "cotangent \(index) is \(gotDType)\(s(got)) but the result it seeds is \(expectedDType)\(s(expected))"
        case let .cotangentCountMismatch(expected, got):
            return "the cotangent holds \(got) tensors but the result it seeds holds \(expected); pass one cotangent per result tensor"
        case let .tangentMismatch(index, expected, expectedDType, got, gotDType):
            return "direction \(index) is \(gotDType)\(s(got)) but the argument it perturbs is \(expectedDType)\(s(expected))"
        case let .tangentCountMismatch(expected, got):
            return "the direction holds \(got) tensors but the argument holds \(expected); pass one tangent per argument tensor"
        case let .ruleProducedWrongShape(op, input, expected, got):
            let what = input < 0 ? "an output tangent" : "a gradient for input \(input)"
            return "internal error: the derivative rule of \(op.rawValue) produced \(what) of shape \(s(got)) where \(s(expected)) was expected"
        case let .ruleProducedWrongDType(op, input, expected, got):
            let what = input < 0 ? "an output tangent" : "a gradient for input \(input)"
            return "internal error: the derivative rule of \(op.rawValue) produced \(what) of type \(got) where \(expected) was expected"
        case let .vmapInvalidAxes(detail):
            return "vmap: \(detail)"
        case let .vmapValueRead(shape):
            return "vmap: the function read the elements of a batched value (example shape \(s(shape))) as numbers; a Swift branch on them would follow the first example for all. Use select(_:_:_:) for a per-example choice, or read `.untracked` to read the first example deliberately"
        case let .batchingRuleProducedWrongShape(op, expected, got):
            return "internal error: the batching rule of \(op.rawValue) produced a batch of shape \(s(got)) where \(s(expected)) was expected"
        case let .nonFloatingPointOutput(dtype):
            return "cannot differentiate a \(dtype) result; only floating-point results have derivatives"
        }
    }
}
