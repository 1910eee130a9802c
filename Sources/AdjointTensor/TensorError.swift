/// Errors from tensor operations: each names the operation and says what was wrong.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// Shapes that the operation cannot combine.
    case shapeMismatch(op: String, detail: String)
    /// Element types that the operation cannot combine.
    case dtypeMismatch(op: String, detail: String)
    /// An element type the operation has no kernel for.
    case unsupportedDType(op: String, dtype: DType, detail: String)
    /// An axis outside `-rank ..< rank`.
    case invalidAxis(op: String, axis: Int, rank: Int)
    /// An index outside its bound.
    case indexOutOfRange(op: String, index: Int, bound: Int, position: String)
    /// A slice that does not lie within the tensor: `requested` as written, `axis` the first axis
    /// where it does not fit.
    case sliceOutOfBounds(op: String, shape: [Int], axis: Int, requested: String)
    /// An argument that is invalid for another reason.
    case invalidArgument(op: String, detail: String)
    /// An element value that cannot be converted or used.
    case invalidValue(op: String, detail: String)
    /// Operands on different devices (a CPU scalar, rank 0, goes with any device's operands).
    case deviceMismatch(op: String, detail: String)
    /// A device that cannot be used: why.
    case deviceUnavailable(device: Device, reason: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(op, detail): return "\(op): shape mismatch: \(detail)"
        case let .dtypeMismatch(op, detail): return "\(op): dtype mismatch: \(detail)"
        case let .unsupportedDType(op, dtype, detail): return "\(op): unsupported dtype \(dtype): \(detail)"
        case let .invalidAxis(op, axis, rank):
            return "\(op): axis \(axis) is out of range for a tensor of rank \(rank) (valid: \(-rank) ..< \(rank))"
        case let .indexOutOfRange(op, index, bound, position):
            return "\(op): index \(index) at \(position) is out of range 0 ..< \(bound)"
        case let .sliceOutOfBounds(op, shape, axis, requested):
            let n = axis < shape.count ? shape[axis] : 0
            return "\(op): the slice \(requested) on axis \(axis) does not fit a tensor of shape \(shapeText(shape)): axis \(axis) has \(n) elements, so bounds must lie in 0...\(n) (or -\(n)...-1, counted from the end)"
        case let .invalidArgument(op, detail): return "\(op): invalid argument: \(detail)"
        case let .invalidValue(op, detail): return "\(op): invalid value: \(detail)"
        case let .deviceMismatch(op, detail): return "\(op): operands on different devices: \(detail)"
        case let .deviceUnavailable(device, reason): return "device \(device) is unavailable: \(reason)"
        }
    }
}

/// Shape formatting used in error messages and descriptions: `[2,3]`.
@usableFromInline
func shapeText(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ",") + "]" }
