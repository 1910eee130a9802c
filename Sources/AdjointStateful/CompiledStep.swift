import AdjointAutodiff
import AdjointTensor

/// A ``TensorStep`` traced once into IR and re-executed from a compiled plan: adapter (b) of the
/// step protocol.
///
/// At construction the step is traced twice with ``traceGraph(_:at:)``: forward alone (for
/// ``step(_:input:parameters:)``), and forward and backward fused — the step, its per-step loss,
/// and the VJP with the cotangent of `s[t+1]` as one more argument. The fused program is split
/// into the operations that do not depend on that cotangent (run by ``recordStep``, keeping the
/// values the backward reads) and those that do (run by the pullback). Execution walks a plan of
/// slot indices with every interpreter level hidden: no tape, no closures, no per-operation
/// bookkeeping beyond the kernel. Results are bitwise those of the ``TensorStep`` (the same kernels
/// in the same order; tested). Each value is dropped after its last reader; a recorded step keeps
/// only the forward values its backward still reads, as a tape would.
///
/// The trace freezes control flow: a step whose operations depend on data (a branch on a value,
/// the bouncing ball's impact) must stay a ``TensorStep``. The plan is compiled for the per-step
/// loss given at construction; `recordStep`'s `loss` argument must be that loss. Each operation
/// still allocates its output from the storage pool (pooled: no system allocation in steady
/// state); kernels writing into preallocated buffers are not built yet.
public struct CompiledStep<State: ParameterCollection, Parameters: ParameterCollection, Output: ParameterCollection>: StepFunction {
    public typealias Input = Tensor
    public typealias Loss = TrajectoryLoss<State, Output>
    public typealias StateCotangent = State
    public typealias ParameterGradient = Parameters

    public let base: TensorStep<State, Tensor, Parameters, Output>
    let stateTemplate: State
    let parameterTemplate: Parameters
    var forward: Plan
    var record: Plan
    /// The fused plan's operations not reading the cotangent, then those that do (as indices).
    let recordForward: [Int], recordBackward: [Int]
    let stateCount: Int, parameterCount: Int

    /// Traces `step` at example arguments (shapes and dtypes are fixed from them).
    public init(_ step: TensorStep<State, Tensor, Parameters, Output>, loss: Loss, state: State, input: Tensor, parameters: Parameters) throws {
        base = step
        stateTemplate = state
        parameterTemplate = parameters
        stateCount = state.tensors.count
        parameterCount = parameters.tensors.count
        let (sc, pc) = (stateCount, parameterCount)
        let arguments = state.tensors + [input] + parameters.tensors
        let (forwardBundle, _) = try traceGraph({ a in
            try step.body(state.replacingTensors(with: Array(a[0..<sc])), a[sc], parameters.replacingTensors(with: Array(a[(sc + 1)...]))).state.tensors
        }, at: arguments)
        forward = Plan(forwardBundle)
        let cotangentExample = try state.tensors.map { try $0.zerosLike() }
        let (recordBundle, _) = try traceGraph({ a in
            let s = state.replacingTensors(with: Array(a[0..<sc])), x = a[sc]
            let p = parameters.replacingTensors(with: Array(a[(sc + 1)..<(sc + 1 + pc)]))
            let lambda = state.replacingTensors(with: Array(a[(sc + 1 + pc)...]))
            let (result, pullback) = try vjp(at: StepArguments(state: s, parameters: p)) { arguments in
                try step.stepAndLoss(arguments, input: x, loss: loss)
            }
            let g = try pullback(StepResult(state: lambda, loss: try result.loss.onesLike()))
            return result.state.tensors + [result.loss] + g.state.tensors + g.parameters.tensors
        }, at: arguments + cotangentExample)
        record = Plan(recordBundle)
        // Operations reading (transitively) a cotangent argument form the backward part.
        let cotangentIDs = Set(recordBundle.graph.inputs.filter { $0.role == .argument }.suffix(sc).map(\.id))
        var dependent = cotangentIDs
        var fwd: [Int] = [], bwd: [Int] = []
        for (i, node) in recordBundle.graph.nodes.enumerated() {
            if node.inputs.contains(where: dependent.contains) {
                dependent.formUnion(node.outputs)
                bwd.append(i)
            } else {
                fwd.append(i)
            }
        }
        recordForward = fwd
        recordBackward = bwd
        forward.computeReleases(order: Array(forward.nodes.indices))
        record.computeReleases(order: fwd + bwd)
    }

    public func step(_ state: State, input: Tensor, parameters: Parameters) throws -> State {
        var slots = forward.slots(arguments: state.tensors + [input] + parameters.tensors)
        try forward.run(forward.nodes.indices, &slots)
        return stateTemplate.replacingTensors(with: try forward.outputs(slots))
    }

    public func recordStep(_ state: State, input: Tensor, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self> {
        var slots = record.slots(arguments: state.tensors + [input] + parameters.tensors)
        try record.run(recordForward, &slots)
        let outputs = record.graphOutputs
        let next = try (0..<stateCount).map { try record.value(outputs[$0], slots) }
        let lossValue = try record.value(outputs[stateCount], slots).item()
        let (sc, pc, plan, backward, template) = (stateCount, parameterCount, record, recordBackward, stateTemplate)
        let saved = slots
        return RecordedStep(next: stateTemplate.replacingTensors(with: next), loss: lossValue) { cotangent in
            var slots = saved
            let lambda = try cotangent?.tensors ?? next.map { try $0.zerosLike() }
            plan.bind(cotangents: lambda, into: &slots)
            try plan.run(backward, &slots)
            let grads = try (0..<(sc + pc)).map { try plan.value(outputs[sc + 1 + $0], slots) }
            return (template.replacingTensors(with: Array(grads[0..<sc])), self.parameterTemplate.replacingTensors(with: Array(grads[sc...])))
        }
    }

    public func finalLoss(_ state: State, loss: Loss) throws -> (value: Double, cotangent: State)? { try base.finalLoss(state, loss: loss) }
    public func accumulate(_ gradient: Parameters, into total: inout Parameters?) throws { try base.accumulate(gradient, into: &total) }
    public func copy(_ state: State) -> State { base.copy(state) }
    public func serialize(_ state: State) throws -> [UInt8] { try base.serialize(state) }
    public func deserialize(_ bytes: [UInt8], like template: State) throws -> State { try base.deserialize(bytes, like: template) }
    public func hash(_ state: State) -> StateHash { base.hash(state) }
    public func byteCount(of state: State) -> Int { base.byteCount(of: state) }

    /// Operations in the compiled plans (forward alone; fused forward and backward).
    public var operationCounts: (forward: Int, fusedForward: Int, fusedBackward: Int) {
        (forward.nodes.count, recordForward.count, recordBackward.count)
    }
}

/// A graph bundle as a flat plan: slot indices instead of value ids, captures preloaded.
struct Plan {
    struct Instruction {
        var op: OpCode
        var attributes: Attributes
        var inputs: [Int]
        var output: Int
    }

    let nodes: [Instruction]
    let argumentSlots: [Int]
    let graphOutputs: [Int]
    let template: [Tensor?]     // captures in place, everything else nil
    /// Slots to drop after each instruction: values whose last reader it is (outputs are kept).
    var releases: [[Int]] = []

    /// Frees every value right after its last reader in `order`, so a plan holds only live values.
    mutating func computeReleases(order: [Int]) {
        var last: [Int: Int] = [:]
        for i in order { for s in nodes[i].inputs { last[s] = i } }
        let kept = Set(graphOutputs)
        releases = [[Int]](repeating: [], count: nodes.count)
        for (slot, i) in last where !kept.contains(slot) { releases[i].append(slot) }
    }

    init(_ bundle: GraphBundle) {
        let graph = bundle.graph
        var slotOf: [ValueID: Int] = [:]
        func slot(_ id: ValueID) -> Int {
            if let s = slotOf[id] { return s }
            slotOf[id] = slotOf.count
            return slotOf.count - 1
        }
        let arguments = graph.inputs.filter { $0.role == .argument }.map { slot($0.id) }
        var template: [Tensor?] = []
        for input in graph.inputs where input.role == .capture {
            let s = slot(input.id)
            if template.count <= s { template += [Tensor?](repeating: nil, count: s + 1 - template.count) }
            template[s] = bundle.captures[input.id]
        }
        nodes = graph.nodes.map { Instruction(op: $0.op, attributes: $0.attributes, inputs: $0.inputs.map(slot), output: slot($0.outputs[0])) }
        graphOutputs = graph.outputs.map(slot)
        argumentSlots = arguments
        self.template = template + [Tensor?](repeating: nil, count: Swift.max(0, slotOf.count - template.count))
    }

    /// The slot array with the captures and the leading `arguments` bound.
    func slots(arguments: [Tensor]) -> [Tensor?] {
        var slots = template
        for (s, t) in zip(argumentSlots, arguments) { slots[s] = t }
        return slots
    }

    /// Binds the trailing arguments (the cotangents of a fused plan).
    func bind(cotangents: [Tensor], into slots: inout [Tensor?]) {
        for (s, t) in zip(argumentSlots.suffix(cotangents.count), cotangents) { slots[s] = t }
    }

    /// Runs the instructions at `indices`, in order, with every interpreter level hidden.
    func run<C: Collection>(_ indices: C, _ slots: inout [Tensor?]) throws where C.Element == Int {
        var buffer: [Tensor] = []
        buffer.reserveCapacity(4)
        try InterpreterStack.current.withoutLevels {
            for i in indices {
                let instruction = nodes[i]
                buffer.removeAll(keepingCapacity: true)
                for s in instruction.inputs {
                    guard let t = slots[s] else { throw IRError.corruptFile("slot \(s) read before it is written") }
                    buffer.append(t)
                }
                slots[instruction.output] = try dispatch1(instruction.op, instruction.attributes, buffer)
                if i < releases.count { for s in releases[i] { slots[s] = nil } }
            }
        }
    }

    func value(_ slot: Int, _ slots: [Tensor?]) throws -> Tensor {
        guard let t = slots[slot] else { throw IRError.corruptFile("output slot \(slot) was never written") }
        return t
    }

    func outputs(_ slots: [Tensor?]) throws -> [Tensor] { try graphOutputs.map { try value($0, slots) } }
}
