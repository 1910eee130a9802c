import AdjointTensor

/// The reverse-mode interpreter level: records every operation that reads a tracked value as an IR
/// node with the values its VJP needs, and runs the VJPs backwards on demand.
public final class Tape: InterpreterLevel {
    /// One input of a recorded node.
    struct Input {
        /// Tape value id; -1 for a value this tape does not track (a constant).
        var id: Int32
        var type: ValueType
        /// Kept only when the operator's rule reads it.
        var saved: SavedTensor?
    }

    struct Node {
        var op: OpCode
        var attributes: Attributes
        var inputs: [Input]
        var outputID: Int32
        var outputType: ValueType
        var savedOutput: SavedTensor?

        /// Throws if an in-place write touched a value this node saved (checked before its rule
        /// runs, so the first modified value is the one reported).
        func verifySaved(index: Int) throws {
            for (i, input) in inputs.enumerated() { try input.saved?.verify(op: op, node: index, input: i) }
            try savedOutput?.verify(op: op, node: index, input: -1)
        }
    }

    public let levelID = InterpreterStack.makeLevelID()
    private(set) var nodes: [Node] = []
    /// Ids and types of the differentiated arguments, in order.
    private(set) var leaves: [(id: Int32, type: ValueType)] = []
    private var valueCount: Int32 = 0
    private(set) var isReleased = false

    /// ``ResourceLimits/maxTapeNodes`` in force when the tape was created (read once, not per node).
    private let maxNodes: Int?

    public init() { maxNodes = InterpreterStack.current.maxTapeNodes }

    deinit { releaseSaved() }

    /// Types of the differentiated arguments, in order.
    var leafTypes: [ValueType] { leaves.map(\.type) }

    /// Number of recorded nodes.
    public var nodeCount: Int { nodes.count }

    private func newValue() -> Int32 {
        defer { valueCount += 1 }
        return valueCount
    }

    /// Starts tracking `tensor` as a differentiated argument.
    func track(_ tensor: inout Tensor) {
        let id = newValue()
        leaves.append((id, ValueType(dtype: tensor.dtype, shape: tensor.shape)))
        tensor.traceTags.set(TraceTag(level: levelID, id: id))
    }

    public func process(_ call: inout OpCall) throws {
        var tracked = false
        for input in call.inputs where input.traceTags.id(at: levelID) != nil { tracked = true; break }
        guard tracked else { return }
        let rule = DerivativeRules.rule(for: call.op)
        if case .nonDifferentiable = rule.status { return }
        let output = call.output
        guard output.dtype.isFloatingPoint else { return }
        var inputs: [Input] = []
        inputs.reserveCapacity(call.inputs.count)
        for (i, input) in call.inputs.enumerated() {
            inputs.append(Input(id: input.traceTags.id(at: levelID) ?? -1,
                                type: input.valueType,
                                saved: rule.saves.inputs.contains(i) ? SavedTensor(input, dropping: levelID) : nil))
        }
        if let limit = maxNodes, nodes.count >= limit {
            throw ResourceError.tapeTooLong(nodes: nodes.count + 1, limit: limit)
        }
        let id = newValue()
        nodes.append(Node(
            op: call.op, attributes: call.attributes, inputs: inputs,
            outputID: id, outputType: output.valueType,
            savedOutput: rule.saves.output ? SavedTensor(output, dropping: levelID) : nil))
        call.output.traceTags.set(TraceTag(level: levelID, id: id))
    }

    /// Runs the VJPs from the given seeds and returns the cotangent of every leaf (nil: zero).
    func backward(seeds: [(id: Int32, cotangent: Tensor)]) throws -> [Tensor?] {
        guard !isReleased else { throw AutodiffError.tapeReleased }
        var cotangents = [Tensor?](repeating: nil, count: Int(valueCount))
        for seed in seeds {
            cotangents[Int(seed.id)] = try accumulate(cotangents[Int(seed.id)], seed.cotangent)
        }
        for index in stride(from: nodes.count - 1, through: 0, by: -1) {
            let outputID = Int(nodes[index].outputID)
            guard let g = cotangents[outputID] else { continue }
            cotangents[outputID] = nil
            let op = nodes[index].op
            let rule = DerivativeRules.rule(for: op)
            guard let vjp = rule.vjp else { try rule.requireImplemented(op, node: index); continue }
            try nodes[index].verifySaved(index: index)
            let stack = InterpreterStack.current
            let outer = stack.backwardNode
            stack.backwardNode = (index, op)
            defer { stack.backwardNode = outer }
            let grads = try vjp(VJPContext(node: nodes[index], cotangent: g))
            let inputs = nodes[index].inputs
            for i in 0..<Swift.min(inputs.count, grads.count) where inputs[i].id >= 0 {
                guard let grad = grads[i] else { continue }
                try DerivativeRules.check(grad, of: op, input: i, against: inputs[i].type)
                let id = Int(inputs[i].id)
                cotangents[id] = try accumulate(cotangents[id], grad)
            }
        }
        return leaves.map { cotangents[Int($0.id)] }
    }

    /// Runs the JVPs from the given leaf tangents (`nil`: zero) over the recorded nodes, reading the
    /// saved values, and returns the tangent of every value id (`nil`: zero). The primal program is
    /// not run again: this is the linear map of ``linearize(at:of:)``.
    func forward(leafTangents: [Tensor?]) throws -> [Tensor?] {
        guard !isReleased else { throw AutodiffError.tapeReleased }
        var tangents = [Tensor?](repeating: nil, count: Int(valueCount))
        for (leaf, tangent) in zip(leaves, leafTangents) { tangents[Int(leaf.id)] = tangent }
        for (index, node) in nodes.enumerated() {
            var inputTangents = [Tensor?](repeating: nil, count: node.inputs.count)
            var any = false
            for (i, input) in node.inputs.enumerated() where input.id >= 0 {
                inputTangents[i] = tangents[Int(input.id)]
                any = any || inputTangents[i] != nil
            }
            guard any else { continue }
            let rule = DerivativeRules.rule(for: node.op)
            guard let jvp = rule.jvp else { try rule.requireImplemented(node.op, node: index); continue }
            try node.verifySaved(index: index)
            guard let tangent = try jvp(JVPContext(source: .node(node), tangents: inputTangents)) else { continue }
            try DerivativeRules.check(tangent, of: node.op, input: -1, against: node.outputType)
            tangents[Int(node.outputID)] = tangent
        }
        return tangents
    }

    /// Fan-out: cotangents of a value read several times add up.
    private func accumulate(_ existing: Tensor?, _ new: Tensor) throws -> Tensor {
        guard let existing else { return new }
        return try existing + new
    }

    /// Frees every saved value; later backward passes throw ``AutodiffError/tapeReleased``.
    public func release() {
        releaseSaved()
        nodes = []
        isReleased = true
    }

    private func releaseSaved() {
        for node in nodes {
            for input in node.inputs { input.saved?.release() }
            node.savedOutput?.release()
        }
    }

    /// The recorded program as an IR graph: leaves are arguments, untracked inputs are captures.
    public func graph(outputs: [Int32] = []) -> Graph {
        var inputs = leaves.map { GraphInput(id: ValueID(Int($0.id)), type: $0.type, role: .argument) }
        var nextCapture = Int(valueCount)
        var irNodes: [AdjointIR.Node] = []
        for node in nodes {
            var ids: [ValueID] = []
            for input in node.inputs {
                if input.id >= 0 { ids.append(ValueID(Int(input.id))); continue }
                let capture = ValueID(nextCapture)
                nextCapture += 1
                inputs.append(GraphInput(id: capture, type: input.type, role: .capture))
                ids.append(capture)
            }
            irNodes.append(AdjointIR.Node(op: node.op, attributes: node.attributes, inputs: ids,
                                          outputs: [ValueID(Int(node.outputID))], outputTypes: [node.outputType]))
        }
        let outs = outputs.isEmpty ? (nodes.last.map { [ValueID(Int($0.outputID))] } ?? []) : outputs.map { ValueID(Int($0)) }
        return Graph(inputs: inputs, nodes: irNodes, outputs: outs)
    }
}
