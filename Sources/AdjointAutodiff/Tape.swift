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

    /// A recorded operation. Its inputs are `inputs[inputStart ..< inputStart + inputCount]` of
    /// the tape (one array for the whole tape, not one per node).
    struct Node {
        var op: OpCode
        var inputCount: Int32
        var outputID: Int32
        var inputStart: Int
        var attributes: Attributes
        var outputType: ValueType
        var savedOutput: SavedTensor?
        /// Set when the op has a rank-0 rule and every input and the output are float64 or
        /// float32 scalars of one dtype on the CPU (see ``ScalarVJP``).
        var scalarForm: ScalarVJP?

        var inputRange: Range<Int> { inputStart ..< inputStart + Int(inputCount) }
    }

    package let levelID = InterpreterStack.makeLevelID()
    /// Whether a read of a tracked value has been reported (``ValueReadDiagnostics``).
    private var reportedValueRead = false

    package func valueRead(_ tensor: Tensor) {
        guard tensor.traceTags.id(at: levelID) != nil else { return }
        ValueReadDiagnostics.report(tensor, transform: "reverse mode (gradient, vjp, hvp)", reported: &reportedValueRead)
    }

    /// Everything recorded, in one value: recording an operation modifies it in one access (one
    /// exclusivity check) rather than one per field.
    struct Recorded {
        var nodes: [Node] = []
        /// The inputs of every node, in node order.
        var inputs: [Input] = []
        /// Ids and types of the differentiated arguments, in order.
        var leaves: [(id: Int32, type: ValueType)] = []
        var valueCount: Int32 = 0
        var isReleased = false

        /// Leaves the node and input lists, emptied, to the next tape on the thread (one access
        /// to the tape's property for both lists).
        mutating func keepLists() {
            TapeMemory.current.keep(nodes: &nodes, inputs: &inputs)
            (nodes, inputs) = ([], [])
        }

        mutating func newValue() -> Int32 {
            defer { valueCount += 1 }
            return valueCount
        }
    }
    private var recorded = Recorded()

    var nodes: [Node] { recorded.nodes }
    var inputs: [Input] { recorded.inputs }
    var leaves: [(id: Int32, type: ValueType)] { recorded.leaves }
    var isReleased: Bool { recorded.isReleased }

    /// ``ResourceLimits/maxTapeNodes`` in force when the tape was created (read once, not per node).
    private let maxNodes: Int?

    public init() {
        maxNodes = InterpreterStack.current.maxTapeNodes
        (recorded.nodes, recorded.inputs) = TapeMemory.current.takeLists()
    }

    deinit { recorded.keepLists() }

    /// Types of the differentiated arguments, in order.
    var leafTypes: [ValueType] { leaves.map(\.type) }

    /// Number of recorded nodes.
    public var nodeCount: Int { recorded.nodes.count }

    /// Starts tracking `tensor` as a differentiated argument.
    func track(_ tensor: inout Tensor) {
        let id = recorded.newValue()
        recorded.leaves.append((id, ValueType(dtype: tensor.dtype, shape: tensor.shape)))
        tensor.traceTags.set(TraceTag(level: levelID, id: id))
    }

    package func process(_ call: inout OpCall) throws {
        var output = call.output
        // The inputs are read in place (a `for … in` over the array copies every tensor).
        guard !call.inputs.isEmpty else { return }
        try call.inputs.withUnsafeBufferPointer { try record(call.op, call.attributes, ElementwiseOperands(list: $0), output: &output) }
        call.output = output
    }

    /// The elementwise hot path (`dispatchBinary(_:_:_:)`, `dispatchUnary(_:_:)`): the same
    /// recording as ``process(_:)``, from operands the dispatcher holds on its stack.
    package func processElementwise(_ op: OpCode, _ operands: ElementwiseOperands, output: inout Tensor) throws {
        try record(op, .none, operands, output: &output)
    }

    /// Records `op` as a node when one of `operands` is tracked here and the op is differentiable;
    /// tags `output` with the node's value id.
    private func record(_ op: OpCode, _ attributes: Attributes, _ operand: ElementwiseOperands, output: inout Tensor) throws {
        try recorded.record(op, attributes, operand, output: &output, level: levelID, maxNodes: maxNodes)
    }
}

extension Tape.Recorded {
    /// ``Tape/record(_:_:_:output:)`` on the recorded value.
    mutating func record(_ op: OpCode, _ attributes: Attributes, _ operand: ElementwiseOperands, output: inout Tensor,
                         level: UInt32, maxNodes: Int?) throws {
        // Fields are read through the pointers: loading a whole operand would copy it.
        guard operand.indices.contains(where: { operand[$0].pointee.traceTags.id(at: level) != nil }) else { return }
        let rule = DerivativeRules.rule(for: op)
        if case .nonDifferentiable = rule.status { return }
        guard output.dtype.isFloatingPoint else { return }
        if let limit = maxNodes, nodes.count >= limit {
            throw ResourceError.tapeTooLong(nodes: nodes.count + 1, limit: limit)
        }
        let start = inputs.count
        let saves = rule.saves
        var scalarForm = ScalarVJP(op)
        // Not on a device: its values would be read back one by one, and its cotangents would
        // become CPU numbers where the device's rules need tensors there.
        if scalarForm != nil, !output.shape.isEmpty || (output.dtype != .float64 && output.dtype != .float32) || output.storage.isOnDevice
            || operand.indices.contains(where: { !operand[$0].pointee.shape.isEmpty || operand[$0].pointee.dtype != output.dtype }) {
            scalarForm = nil
        }
        for i in operand.indices {
            inputs.append(Tape.Input(id: operand[i].pointee.traceTags.id(at: level) ?? -1,
                                type: ValueType(dtype: operand[i].pointee.dtype, shape: operand[i].pointee.shape),
                                saved: saves.savesInput(i) ? SavedTensor(at: operand[i], dropping: level) : nil))
        }
        let id = newValue()
        nodes.append(Tape.Node(
            op: op, inputCount: Int32(operand.count), outputID: id, inputStart: start,
            attributes: attributes, outputType: ValueType(dtype: output.dtype, shape: output.shape),
            savedOutput: rule.saves.output ? SavedTensor(output, dropping: level) : nil, scalarForm: scalarForm))
        output.traceTags.set(TraceTag(level: level, id: id))
    }
}

extension Tape {
    /// Runs the VJPs from the given seeds and returns the cotangent of every leaf (nil: zero).
    ///
    /// With `leafReady`, each leaf's cotangent is also handed over as soon as it is final: right
    /// after the backward step of the earliest recorded node that reads it (a leaf no node reads, or
    /// that no cotangent reaches, at the end), so a caller can start using gradients while the rest
    /// of the backward pass runs.
    func backward(seeds: [(id: Int32, cotangent: Tensor)], leafReady: ((_ leaf: Int, _ cotangent: Tensor?) throws -> Void)? = nil) throws -> [Tensor?] {
        guard !isReleased else { throw AutodiffError.tapeReleased }
        // Read once: rules read the tape meanwhile, and backward does not modify it.
        let (nodes, inputs, valueCount) = (recorded.nodes, recorded.inputs, recorded.valueCount)
        let memory = TapeMemory.current
        var cotangents = memory.takeCotangents(count: Int(valueCount))
        defer { memory.keep(&cotangents) }
        let stack = InterpreterStack.current
        // Rank-0 rules may compute directly only where nothing would observe the rules' operations.
        let numbersAllowed = stack.runsUnobserved
        for seed in seeds { try cotangents.add(seed.cotangent, to: Int(seed.id)) }
        // For `leafReady`: per node, the leaves whose last reader (in backward order) it is.
        var finishing: [Int: [Int]] = [:]
        var pendingLeaves: Set<Int> = []
        if leafReady != nil {
            let leafOfValue = Dictionary(uniqueKeysWithValues: recorded.leaves.enumerated().map { (Int($0.element.id), $0.offset) })
            var firstReader: [Int: Int] = [:]
            for index in nodes.indices {
                for input in inputs[nodes[index].inputRange] where input.id >= 0 {
                    if let leaf = leafOfValue[Int(input.id)], firstReader[leaf] == nil { firstReader[leaf] = index }
                }
            }
            for (leaf, node) in firstReader { finishing[node, default: []].append(leaf) }
            pendingLeaves = Set(recorded.leaves.indices)
        }
        func finish(_ leaves: [Int]) throws {
            guard let leafReady else { return }
            for leaf in leaves.sorted() where pendingLeaves.remove(leaf) != nil {
                let id = Int(recorded.leaves[leaf].id)
                // Taken out and put back: nothing adds to it any more, and it is returned below too.
                let cotangent = try cotangents.takeTensor(id, dtype: recorded.leaves[leaf].type.dtype)
                if let cotangent { try cotangents.add(cotangent, to: id) }
                try leafReady(leaf, cotangent)
            }
        }
        func backwardStep(_ index: Int) throws {
            let outputID = Int(nodes[index].outputID)
            guard cotangents.contains(outputID) else { return }
            if numbersAllowed, let form = nodes[index].scalarForm {
                if nodes[index].outputType.dtype == .float32 {
                    backward(node: index, nodes, inputs, form, &cotangents, as: Float.self)
                } else {
                    backward(node: index, nodes, inputs, form, &cotangents, as: Double.self)
                }
                return
            }
            // Moved out, not copied: the node's cotangent is not needed after its rule.
            guard let g = try cotangents.takeTensor(outputID, dtype: nodes[index].outputType.dtype) else { return }
            let op = nodes[index].op
            let rule = DerivativeRules.rule(for: op)
            guard let vjp = rule.vjp else { try rule.requireImplemented(op, node: index); return }
            let outer = stack.backwardNode
            stack.backwardNode = (index, op)
            defer { stack.backwardNode = outer }
            let grads = try vjp(VJPContext(tape: self, node: index, cotangent: g))
            let start = nodes[index].inputStart
            for i in 0..<Swift.min(Int(nodes[index].inputCount), grads.count) {
                let id = Int(inputs[start + i].id)
                guard id >= 0, let grad = grads[i] else { continue }
                try DerivativeRules.check(grad, of: op, input: i, against: inputs[start + i].type)
                try cotangents.add(grad, to: id)
            }
        }
        if leafReady == nil {
            for index in stride(from: nodes.count - 1, through: 0, by: -1) { try backwardStep(index) }
        } else {
            for index in stride(from: nodes.count - 1, through: 0, by: -1) {
                try backwardStep(index)
                if let leaves = finishing[index] { try finish(leaves) }
            }
            try finish(Array(pendingLeaves))
        }
        return try recorded.leaves.map { try cotangents.takeTensor(Int($0.id), dtype: $0.type.dtype) }
    }

    /// The backward step of a node with a rank-0 rule (``Node/scalarForm``) in the element type
    /// `T` of its values.
    private func backward<T: KernelFloat>(node index: Int, _ nodes: [Node], _ inputs: [Input], _ form: ScalarVJP,
                                                                 _ cotangents: inout Cotangents, as _: T.Type) {
        guard let g = cotangents.takeNumber(Int(nodes[index].outputID), as: T.self) else { return }
        let start = nodes[index].inputStart, count = Int(nodes[index].inputCount)
        let id0 = inputs[start].id, id1 = count > 1 ? inputs[start + 1].id : -1
        let x0 = inputs[start].saved?.scalar(T.self) ?? 0
        let x1 = count > 1 ? inputs[start + 1].saved?.scalar(T.self) ?? 0 : 0
        let y = nodes[index].savedOutput?.scalar(T.self) ?? 0
        let (g0, g1) = form.cotangents(g, x0, x1, output: y, sameValue: id0 >= 0 && id0 == id1)
        if id0 >= 0, let g0 { cotangents.add(g0, to: Int(id0)) }
        if id1 >= 0, let g1 { cotangents.add(g1, to: Int(id1)) }
    }

    /// Runs the JVPs from the given leaf tangents (`nil`: zero) over the recorded nodes, reading the
    /// saved values, and returns the tangent of every value id (`nil`: zero). The primal program is
    /// not run again: this is the linear map of ``linearize(at:of:)``.
    func forward(leafTangents: [Tensor?]) throws -> [Tensor?] {
        guard !isReleased else { throw AutodiffError.tapeReleased }
        let (nodes, inputs, leaves) = (recorded.nodes, recorded.inputs, recorded.leaves)
        var tangents = [Tensor?](repeating: nil, count: Int(recorded.valueCount))
        for (leaf, tangent) in zip(leaves, leafTangents) { tangents[Int(leaf.id)] = tangent }
        for (index, node) in nodes.enumerated() {
            var inputTangents = [Tensor?](repeating: nil, count: Int(node.inputCount))
            var any = false
            for (i, k) in node.inputRange.enumerated() where inputs[k].id >= 0 {
                inputTangents[i] = tangents[Int(inputs[k].id)]
                any = any || inputTangents[i] != nil
            }
            guard any else { continue }
            let rule = DerivativeRules.rule(for: node.op)
            guard let jvp = rule.jvp else { try rule.requireImplemented(node.op, node: index); continue }
            guard let tangent = try jvp(JVPContext(source: .node(self, index), tangents: inputTangents)) else { continue }
            try DerivativeRules.check(tangent, of: node.op, input: -1, against: node.outputType)
            tangents[Int(node.outputID)] = tangent
        }
        return tangents
    }

    /// Frees every saved value; later backward passes throw ``AutodiffError/tapeReleased``.
    public func release() {
        recorded.keepLists()
        recorded.isReleased = true
    }

    /// The recorded program as an IR graph: leaves are arguments, untracked inputs are captures.
    public func graph(outputs: [Int32] = []) -> Graph {
        let (nodes, recordedInputs) = (recorded.nodes, recorded.inputs)
        var inputs = recorded.leaves.map { GraphInput(id: ValueID(Int($0.id)), type: $0.type, role: .argument) }
        var nextCapture = Int(recorded.valueCount)
        var irNodes: [AdjointIR.Node] = []
        for node in nodes {
            var ids: [ValueID] = []
            for input in recordedInputs[node.inputRange] {
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
