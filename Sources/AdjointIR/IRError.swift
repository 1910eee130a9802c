/// Errors found in a graph or in a serialized graph file.
public enum IRError: Error, Equatable, CustomStringConvertible {
    /// A value is read before any input or node defines it.
    case undefinedValue(ValueID, node: Int, op: OpCode)
    /// A value is defined twice.
    case redefinedValue(ValueID, node: Int?)
    /// A node has the wrong number of inputs for its operator.
    case arityMismatch(op: OpCode, node: Int, expected: Int, found: Int)
    /// A node's output list and output types disagree in length.
    case outputTypeCount(op: OpCode, node: Int, outputs: Int, types: Int)
    /// A graph output is not defined.
    case undefinedOutput(ValueID)
    /// A value's declared type has a negative dimension, an element or byte count that overflows,
    /// or more bytes than `limit` (`node` is `nil` for a graph input).
    case valueTooLarge(ValueID, node: Int?, type: ValueType, limit: Int)
    /// A node declares an output type other than the one its operator computes.
    case declaredTypeMismatch(node: Int, op: OpCode, declared: ValueType, computed: ValueType)
    /// The serialized data is not an Adjoint graph, or is damaged.
    case corruptFile(String)
    /// The serialized data was written by a newer format version than this build reads.
    case unsupportedVersion(found: Int, supported: Int)

    public var description: String {
        switch self {
        case let .undefinedValue(v, node, op):
            return "node \(node) (\(op.rawValue)) reads \(v), which no input or earlier node defines"
        case let .redefinedValue(v, node):
            return "\(v) is defined twice" + (node.map { " (again at node \($0))" } ?? " (duplicate graph input)")
        case let .arityMismatch(op, node, expected, found):
            return "node \(node) (\(op.rawValue)) has \(found) inputs; the operator takes \(expected)"
        case let .outputTypeCount(op, node, outputs, types):
            return "node \(node) (\(op.rawValue)) lists \(outputs) outputs but \(types) output types"
        case let .undefinedOutput(v):
            return "graph output \(v) is not defined by any input or node"
        case let .valueTooLarge(v, node, type, limit):
            let size = type.checkedByteCount.map { "\($0) bytes" } ?? "a negative dimension or an element count that overflows"
            return "\(v) of type \(type)" + (node.map { " (node \($0))" } ?? " (graph input)") + " has \(size); the limit is \(limit) bytes"
        case let .declaredTypeMismatch(node, op, declared, computed):
            return "node \(node) (\(op.rawValue)) declares its output \(declared), but the operator computes \(computed)"
        case let .corruptFile(why):
            return "not a valid Adjoint graph file: \(why)"
        case let .unsupportedVersion(found, supported):
            return "graph file format version \(found) is newer than this build reads (up to \(supported)); upgrade Adjoint"
        }
    }
}
