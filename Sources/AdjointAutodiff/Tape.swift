import AdjointTensor

/// The reverse-mode interpreter level: records every operation that reads a tracked value as an IR
/// node with the values its VJP needs, and runs the VJPs backwards on demand.
public final class Tape: InterpreterLevel {
    struct Node {
        var op: OpCode
        var attributes: Attributes
        /// Tape value ids of the inputs; -1 for values this tape does not track (constants).
        var inputIDs: [Int32]
        var inputTypes: [ValueType]
        var outputID: Int32
        var outputType: ValueType
        var savedInputs: [SavedTensor?]
        var savedOutput: SavedTensor?
    }

    public let levelID = InterpreterStack.makeLevelID()
    private(set) var nodes: [Node] = []
    /// Ids and types of the differentiated arguments, in order.
    private(set) var leaves: [(id: Int32, type: ValueType)] = []
    private var valueCount: Int32 = 0
    private(set) var isReleased = false

    public init() {}

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
        let output = call.outputs[0]
        guard output.dtype.isFloatingPoint else { return }
        var savedInputs = [SavedTensor?](repeating: nil, count: call.inputs.count)
        for i in rule.saves.inputs where i < call.inputs.count {
            savedInputs[i] = SavedTensor(call.inputs[i], dropping: levelID)
        }
        let id = newValue()
        nodes.append(Node(
            op: call.op, attributes: call.attributes,
            inputIDs: call.inputs.map { $0.traceTags.id(at: levelID) ?? -1 },
            inputTypes: call.inputs.map { ValueType(dtype: $0.dtype, shape: $0.shape) },
            outputID: id, outputType: ValueType(dtype: output.dtype, shape: output.shape),
            savedInputs: savedInputs,
            savedOutput: rule.saves.output ? SavedTensor(output, dropping: levelID) : nil))
        call.outputs[0].traceTags.set(TraceTag(level: levelID, id: id))
    }

    /// Runs the VJPs from the given seeds and returns the cotangent of every leaf (nil: zero).
    func backward(seeds: [(id: Int32, cotangent: Tensor)]) throws -> [Tensor?] {
        guard !isReleased else { throw AutodiffError.tapeReleased }
        var cotangents = [Tensor?](repeating: nil, count: Int(valueCount))
        for seed in seeds {
            cotangents[Int(seed.id)] = try accumulate(cotangents[Int(seed.id)], seed.cotangent)
        }
        for index in stride(from: nodes.count - 1, through: 0, by: -1) {
            let node = nodes[index]
            guard let g = cotangents[Int(node.outputID)] else { continue }
            cotangents[Int(node.outputID)] = nil
            let rule = DerivativeRules.rule(for: node.op)
            guard let vjp = rule.vjp else {
                if case let .notImplemented(why) = rule.status {
                    throw AutodiffError.derivativeNotImplemented(op: node.op, node: index, reason: why)
                }
                continue
            }
            let context = VJPContext(
                op: node.op, attributes: node.attributes, inputTypes: node.inputTypes, outputType: node.outputType,
                cotangent: g,
                savedInputs: try node.savedInputs.enumerated().map { i, s in
                    try s?.restore(op: node.op, node: index, input: "input \(i)")
                },
                savedOutput: try node.savedOutput?.restore(op: node.op, node: index, input: "the output"),
                needs: node.inputIDs.map { $0 >= 0 })
            let grads = try vjp(context)
            for (i, id) in node.inputIDs.enumerated() where id >= 0 && i < grads.count {
                guard let grad = grads[i] else { continue }
                guard grad.shape == node.inputTypes[i].shape else {
                    throw AutodiffError.ruleProducedWrongShape(op: node.op, input: i, expected: node.inputTypes[i].shape, got: grad.shape)
                }
                cotangents[Int(id)] = try accumulate(cotangents[Int(id)], grad)
            }
        }
        return leaves.map { cotangents[Int($0.id)] }
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
            for s in node.savedInputs { s?.release() }
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
            for (i, id) in node.inputIDs.enumerated() {
                if id >= 0 { ids.append(ValueID(Int(id))); continue }
                let capture = ValueID(nextCapture)
                nextCapture += 1
                inputs.append(GraphInput(id: capture, type: node.inputTypes[i], role: .capture))
                ids.append(capture)
            }
            irNodes.append(AdjointIR.Node(op: node.op, attributes: node.attributes, inputs: ids,
                                          outputs: [ValueID(Int(node.outputID))], outputTypes: [node.outputType]))
        }
        let outs = outputs.isEmpty ? (nodes.last.map { [ValueID(Int($0.outputID))] } ?? []) : outputs.map { ValueID(Int($0)) }
        return Graph(inputs: inputs, nodes: irNodes, outputs: outs)
    }
}
