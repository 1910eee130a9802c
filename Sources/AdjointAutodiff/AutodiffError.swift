import AdjointTensor

/// Errors raised while differentiating.
public enum AutodiffError: Error, Equatable, CustomStringConvertible {
    /// `gradient`/`valueWithGradient` of a function whose result has more than one element.
    case nonScalarOutput(shape: [Int])
    /// A pullback was called after ``Pullback/release()``.
    case tapeReleased
    /// A value the tape saved was overwritten in place before backward.
    case savedTensorModified(op: OpCode, node: Int, input: String, shape: [Int], savedVersion: UInt64,
                             currentVersion: UInt64, writer: String)
    /// A cotangent reached an operator whose derivative is not implemented.
    case derivativeNotImplemented(op: OpCode, node: Int, reason: String)
    /// The cotangent passed to a pullback does not match the result it is for.
    case cotangentMismatch(index: Int, expected: [Int], expectedDType: DType, got: [Int], gotDType: DType)
    /// The cotangent passed to a pullback holds a different number of tensors than the result.
    case cotangentCountMismatch(expected: Int, got: Int)
    /// A derivative rule produced a gradient of the wrong shape (a bug in that rule).
    case ruleProducedWrongShape(op: OpCode, input: Int, expected: [Int], got: [Int])
    /// A differentiated result is not a floating-point tensor.
    case nonFloatingPointOutput(dtype: DType)

    public var description: String {
        func s(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
        switch self {
        case let .nonScalarOutput(shape):
            return "gradient needs a scalar result, but the function returned shape \(s(shape)); use vjp(at:of:) and pass a cotangent, or reduce the result (sum, mean) first"
        case .tapeReleased:
            return "backward through a released tape: this pullback's tape was released; record the function again"
        case let .savedTensorModified(op, node, input, shape, saved, current, writer):
            return "one of the values needed for gradient computation has been modified by an in-place operation: \(input) of \(op.rawValue) at tape node \(node) (shape \(s(shape))) was saved at version \(saved) and is now at version \(current), overwritten by \(writer); write a copy instead, or write before recording"
        case let .derivativeNotImplemented(op, node, reason):
            return "the derivative of \(op.rawValue) (tape node \(node)) is not implemented: \(reason)"
        case let .cotangentMismatch(index, expected, expectedDType, got, gotDType):
            return "cotangent \(index) is \(gotDType)\(s(got)) but the result it seeds is \(expectedDType)\(s(expected))"
        case let .cotangentCountMismatch(expected, got):
            return "the cotangent holds \(got) tensors but the result it seeds holds \(expected); pass one cotangent per result tensor"
        case let .ruleProducedWrongShape(op, input, expected, got):
            return "internal error: the derivative rule of \(op.rawValue) produced a gradient of shape \(s(got)) for input \(input) of shape \(s(expected))"
        case let .nonFloatingPointOutput(dtype):
            return "cannot differentiate a \(dtype) result; only floating-point results have derivatives"
        }
    }
}
