extension Graph {
    /// Checks that every value is defined once before it is read, that each node has its
    /// operator's arity, and that outputs are defined.
    ///
    /// - Throws: ``IRError`` naming the first problem and the node where it is.
    /// - Complexity: O(number of values).
    public func verify() throws {
        var defined = Set<ValueID>()
        for input in inputs {
            guard defined.insert(input.id).inserted else { throw IRError.redefinedValue(input.id, node: nil) }
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
            for value in node.outputs {
                guard defined.insert(value).inserted else { throw IRError.redefinedValue(value, node: index) }
            }
        }
        for value in outputs where !defined.contains(value) {
            throw IRError.undefinedOutput(value)
        }
    }
}
