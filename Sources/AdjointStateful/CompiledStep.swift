import AdjointAutodiff
import AdjointTensor
import AdjointCompiler

/// A ``TensorStep`` traced once into IR and re-executed from a compiled plan: adapter (b) of the
/// step protocol.
///
/// At construction the step is traced twice with `traceGraph(_:at:)`: forward alone (for
/// ``step(_:input:parameters:)``), and forward and backward fused — the step, its per-step loss,
/// and the VJP with the cotangent of `s[t+1]` as one more argument. The fused program is split
/// into the operations that do not depend on that cotangent (run by `recordStep`, keeping the
/// values the backward reads) and those that do (run by the pullback). Both programs are compiled
/// to `CompiledProgram`s: every value has a fixed place in a preallocated frame, layout operators
/// become aliases or index gathers, and the kernels write into the frame — no tape, no closures,
/// and no allocation per operation in steady state. A recorded step holds one frame (the forward
/// values its backward reads live there) until its pullback is released; the frames are then reused.
/// Results are bitwise those of the ``TensorStep`` (the same kernel loops in the same order; tested).
///
/// `unroll` has an overload for compiled steps that keeps each state, the parameters and the
/// gradients as packed bytes between steps (copied into and out of the frames) rather than as
/// tensors, and runs the schedule's executor specialised for that form: the same schedules, results
/// and reports, bitwise, with no tensor made per step. It is chosen whenever the step's static type
/// is `CompiledStep`; generic code over `StepFunction` gets the tensor form.
///
/// The trace freezes control flow. A branch written with `Tensor.select` is data (the bouncing
/// ball's impact compiles); a Swift `if` on a tensor's value is not, and a step that reads a traced
/// value as numbers while it is traced (`item()`, `doubles`, `scalars(as:)`) is refused with
/// ``UnrollError/valueReadWhileTracing(afterOperators:)`` — keep such a step a ``TensorStep``. The plan is compiled for the per-step
/// loss given at construction (the final-state loss too, for the packed `unroll`); the `loss`
/// passed to `recordStep` and `unroll` must be that loss. Operators the
/// compiled form does not cover natively (see `CompiledProgram`) still run, through temporary
/// tensors; ``programStatistics`` says how many there are.
public struct CompiledStep<State: ParameterCollection, Parameters: ParameterCollection, Output: ParameterCollection>: StepFunction {
    public typealias Input = Tensor
    public typealias Loss = TrajectoryLoss<State, Output>
    public typealias StateCotangent = State
    public typealias ParameterGradient = Parameters

    public let base: TensorStep<State, Tensor, Parameters, Output>
    let stateTemplate: State
    let parameterTemplate: Parameters
    /// Where each tensor of a state and of the parameters lives in their packed form.
    let stateLayout: PackedLayout, parameterLayout: PackedLayout
    /// The forward step alone: first the operators that depend on the parameters only
    /// (`forwardInvariant` positions), then the rest.
    let forward: CompiledProgram
    let forwardInvariant: Int
    /// Forward, per-step loss and backward, split at the cotangent (`boundary`); the first
    /// `recordInvariant` positions read only the parameters.
    let record: CompiledProgram
    let recordInvariant: Int
    let boundary: Int
    /// The final-state loss and its gradient (state in, value and cotangent out), when the loss
    /// has a final term that could be traced.
    let finalProgram: CompiledProgram?
    let stateCount: Int, parameterCount: Int
    /// What the packed `unroll` reuses from one unroll to the next (frames, records, buffers).
    let packedSteps = PackedStepCache()
    /// Whether the body reads an input (false for a step built from a body without one).
    public private(set) var takesInput = true

    /// Traces `step` at example arguments (shapes and dtypes are fixed from them); with `native`,
    /// the programs' arithmetic is also compiled to machine code (`NativeCode`; same results,
    /// bitwise).
    public init(_ step: TensorStep<State, Tensor, Parameters, Output>, loss: Loss, state: State, input: Tensor, parameters: Parameters,
                native: NativeCode = .off) throws {
        base = step
        stateTemplate = state
        parameterTemplate = parameters
        stateLayout = PackedLayout(state)
        parameterLayout = PackedLayout(parameters)
        stateCount = state.tensors.count
        parameterCount = parameters.tensors.count
        let (sc, pc) = (stateCount, parameterCount)
        let arguments = state.tensors + [input] + parameters.tensors
        let (forwardBundle, _) = try traceGraph({ a in
            try step.body(state.replacingTensors(with: Array(a[0..<sc])), a[sc], parameters.replacingTensors(with: Array(a[(sc + 1)...]))).state.tensors
        }, at: arguments)
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
        // Operations reading (transitively) a cotangent argument form the backward part.
        let recordArguments = recordBundle.graph.inputs.filter { $0.role == .argument }.map(\.id)
        let (fwd, bwd) = Self.split(recordBundle.graph, Array(recordBundle.graph.nodes.indices), readingAnyOf: Set(recordArguments.suffix(sc)))
        let reads = forwardBundle.valueReads.isEmpty ? recordBundle.valueReads : forwardBundle.valueReads
        guard reads.isEmpty else { throw UnrollError.valueReadWhileTracing(afterOperators: reads) }
        // Loop-invariant code motion: operators that read neither the state nor the input (the
        // parameters' transforms) come first, before a boundary, so a run of many steps with the
        // same parameters computes them once (``advance``) and re-runs only the rest.
        let varying = Set(forwardBundle.graph.inputs.filter { $0.role == .argument }.prefix(sc + 1).map(\.id))
        let (invariant, stepOrder) = Self.split(forwardBundle.graph, Array(forwardBundle.graph.nodes.indices), readingAnyOf: varying)
        forward = try CompiledProgram(forwardBundle.graph, captures: forwardBundle.captures, order: invariant + stepOrder,
                                      boundary: invariant.count, native: native)
        forwardInvariant = invariant.count
        // The fused program's forward part is ordered the same way, with a boundary after its
        // invariant operators too: a frame that ran them keeps their values (see ``PackedStep``).
        let (invariantNodes, stepNodes) = Self.split(recordBundle.graph, fwd, readingAnyOf: Set(recordArguments.prefix(sc + 1)))
        // Large values the backward reads and can cheaply compute again from the state, the input
        // and the invariant values are recomputed there rather than kept from the forward
        // (`Graph.rematerializing`); forward operators nothing reads any more are then dropped.
        var available = Set(recordBundle.graph.inputs.map(\.id))
        for i in invariantNodes { available.formUnion(recordBundle.graph.nodes[i].outputs) }
        let (recordGraph, index, backwardNodes) = recordBundle.graph.rematerializing(forward: stepNodes, available: available, backward: bwd)
        let live = Set(recordGraph.nodesReachingOutputs)
        let (recordInvariant, recordRest) = (invariantNodes.map { index[$0] }.filter(live.contains), stepNodes.map { index[$0] }.filter(live.contains))
        // Small operators no large one reads (a parameter's gradient gathered from reductions)
        // come last, so that they do not cut the backward's elementwise runs.
        let backwardOrder = recordGraph.deferringSmallNodes(backwardNodes.filter(live.contains))
        record = try CompiledProgram(recordGraph, captures: recordBundle.captures, order: recordInvariant + recordRest + backwardOrder,
                                     boundaries: [recordInvariant.count, recordInvariant.count + recordRest.count], native: native,
                                     outputsApart: true)
        self.recordInvariant = recordInvariant.count
        boundary = recordInvariant.count + recordRest.count
        if let finalLoss = loss.final {
            let (finalBundle, _) = try traceGraph({ a in
                let (value, gradient) = try valueWithGradient(at: state.replacingTensors(with: a), of: finalLoss)
                return [value] + gradient.tensors
            }, at: state.tensors)
            // A final loss that reads values stays on the tape (``finalLoss(_:loss:)`` of the base).
            finalProgram = finalBundle.valueReads.isEmpty ? try finalBundle.compiled(native: native) : nil
        } else {
            finalProgram = nil
        }
        // Tracing ran the step eagerly on the examples, and the storage pool keeps what those
        // temporaries freed for eager steps of the same sizes — which a compiled unroll does not
        // make (its values live in frames). Give it back: for a large state, several times the
        // state's size.
        StoragePool.shared.trim()
    }

    /// A step whose body reads no input, `(s[t+1], y[t]) = body(s[t], θ)`: an autonomous system
    /// (a thermal model without weather, a pendulum). Unroll it without `inputs:`
    /// (``unroll(_:from:parameters:steps:loss:schedule:options:)``); each step is given an empty
    /// placeholder tensor, which the plan never reads.
    public init(loss: Loss, state: State, parameters: Parameters, native: NativeCode = .off,
                _ body: @escaping (_ state: State, _ parameters: Parameters) throws -> (state: State, output: Output)) throws {
        try self.init(TensorStep { s, _, p in try body(s, p) }, loss: loss, state: state, input: Self.placeholder,
                      parameters: parameters, native: native)
        takesInput = false
    }

    /// The input every step of a step without one is given: no elements.
    static var placeholder: Tensor { Tensor(uninitialized: [0], dtype: .float64) }

    /// `nodes` (indices into `graph`, in order) split into those that do not read any of `sources`,
    /// directly or through earlier nodes, and those that do.
    static func split(_ graph: Graph, _ nodes: [Int], readingAnyOf sources: Set<ValueID>) -> (independent: [Int], dependent: [Int]) {
        var reached = sources
        var independent: [Int] = [], dependent: [Int] = []
        for i in nodes {
            let node = graph.nodes[i]
            if node.inputs.contains(where: reached.contains) {
                reached.formUnion(node.outputs)
                dependent.append(i)
            } else {
                independent.append(i)
            }
        }
        return (independent, dependent)
    }

    public func step(_ state: State, input: Tensor, parameters: Parameters) throws -> State {
        let frame = forward.makeFrame()
        try bindArguments(forward, state, input, parameters, frame)
        try forward.run(forward.positions, in: frame)
        return outputs(forward, frame, from: 0, into: stateTemplate)
    }

    public func recordStep(_ state: State, input: Tensor, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self> {
        let (sc, pc, program) = (stateCount, parameterCount, record)
        let frame = program.makeFrame()
        try bindArguments(program, state, input, parameters, frame)
        try program.run(0..<boundary, in: frame)
        let next = outputs(program, frame, from: 0, into: stateTemplate)
        let lossValue = try program.scalarOutput(sc, in: frame)
        let backward = boundary..<program.positions.upperBound
        return RecordedStep(next: next, loss: lossValue) { cotangent in
            if var cotangent {
                var k = sc + 1 + pc
                try cotangent.visitTensors { _, t in try program.bind(t, at: k, in: frame); k += 1 }
            } else {
                program.bindZeros((sc + 1 + pc)..<(2 * sc + 1 + pc), in: frame)
            }
            try program.run(backward, in: frame)
            return (self.outputs(program, frame, from: sc + 1, into: self.stateTemplate),
                    self.outputs(program, frame, from: 2 * sc + 1, into: self.parameterTemplate))
        }
    }

    /// Binds a state, an input and parameters as a program's leading arguments.
    private func bindArguments(_ program: CompiledProgram, _ state: State, _ input: Tensor, _ parameters: Parameters,
                               _ frame: CompiledProgram.Frame) throws {
        var (s, p, k) = (state, parameters, 0)
        try s.visitTensors { _, t in try program.bind(t, at: k, in: frame); k += 1 }
        try program.bind(input, at: k, in: frame)
        k += 1
        try p.visitTensors { _, t in try program.bind(t, at: k, in: frame); k += 1 }
    }

    /// `template` with its tensors replaced by the program's outputs `first`, `first + 1`, ….
    private func outputs<C: ParameterCollection>(_ program: CompiledProgram, _ frame: CompiledProgram.Frame, from first: Int, into template: C) -> C {
        var result = template, k = first
        result.visitTensors { _, t in t = program.output(k, in: frame); k += 1 }
        return result
    }

    public func finalLoss(_ state: State, loss: Loss) throws -> (value: Double, cotangent: State)? { try base.finalLoss(state, loss: loss) }
    public func accumulate(_ gradient: Parameters, into total: inout Parameters?) throws { try base.accumulate(gradient, into: &total) }
    public func copy(_ state: State) -> State { base.copy(state) }
    public func serialize(_ state: State) throws -> [UInt8] { try base.serialize(state) }
    public func deserialize(_ bytes: [UInt8], like template: State) throws -> State { try base.deserialize(bytes, like: template) }
    public func hash(_ state: State) -> StateHash { base.hash(state) }
    public func byteCount(of state: State) -> Int { base.byteCount(of: state) }

    /// Operations in the compiled programs (forward alone; fused forward and backward).
    public var operationCounts: (forward: Int, fusedForward: Int, fusedBackward: Int) {
        (forward.statistics.operations, boundary, record.statistics.operations - boundary)
    }

    /// Operators of the forward step that read neither the state nor the input: a packed `unroll`
    /// computes them once per run of steps instead of once per step (same values).
    public var loopInvariantOperations: Int { forwardInvariant }

    /// What compilation made of the two programs (aliases, gathers, operators through temporary
    /// tensors, frame sizes).
    public var programStatistics: (forward: CompiledProgram.Statistics, record: CompiledProgram.Statistics) {
        (forward.statistics, record.statistics)
    }
}
