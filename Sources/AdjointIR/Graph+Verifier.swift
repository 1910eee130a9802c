import Foundation

extension Graph {
    /// The default limit on one value's bytes in ``verify(maximumValueBytes:)``: the machine's
    /// physical memory (a larger value could never be allocated).
    public static var defaultMaximumValueBytes: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory) }

    /// Checks that every value is defined once before it is read, that each node has its
    /// operator's arity, that outputs are defined, and that every declared type has non-negative
    /// dimensions and at most `maximumValueBytes` bytes (so no count computed from it overflows).
    ///
    /// - Throws: ``IRError`` naming the first problem and the node where it is.
    /// - Complexity: O(number of values).
    public func verify(maximumValueBytes: Int = Graph.defaultMaximumValueBytes) throws {
        func checkSize(_ value: ValueID, _ type: ValueType, node: Int?) throws {
            guard let bytes = type.checkedByteCount, bytes <= maximumValueBytes else {
                throw IRError.valueTooLarge(value, node: node, type: type, limit: maximumValueBytes)
            }
        }
        var defined = Set<ValueID>()
        for input in inputs {
            guard defined.insert(input.id).inserted else { throw IRError.redefinedValue(input.id, node: nil) }
            try checkSize(input.id, input.type, node: nil)
        }
        for (index, node) in nodes.enumerated() {
            if let arity = node.op.arity, arity != node.inputs.count {
                throw IRError.arityMismatch(op: node.op, node: index, expected: arity, found: node.inputs.count)
            }
            if node.outputs.count != node.outputTypes.count {
                throw IRError.outputTypeCount(op: node.op, node: index, outputs: node.outputs.count, types: node.outputTypes.count)
            }
            for value in node.inputs where !defined.contains(value) {
                throw IRError.undefinedValue(value, node: index, op: node.op)
            }
            for (value, type) in zip(node.outputs, node.outputTypes) {
                guard defined.insert(value).inserted else { throw IRError.redefinedValue(value, node: index) }
                try checkSize(value, type, node: index)
            }
        }
        for value in outputs where !defined.contains(value) {
            throw IRError.undefinedOutput(value)
        }
    }
}
