import AdjointAutodiff
import AdjointTensor
import Synchronization
import AdjointIO
import AdjointCompiler
#if canImport(Glibc)
import Glibc
#endif

extension CompiledStep {
    public func packedUnroll(from initial: State, parameters: Parameters, steps: Int, loss: Loss, schedule: CheckpointSchedule,
                             options: UnrollOptions, inputs: @escaping (Int) throws -> Tensor) throws -> UnrollResult<Self>? {
        guard options.engine != .loop else { return nil }
        return try AdjointStateful.packedUnroll(self, from: initial, parameters: parameters, steps: steps, loss: loss,
                                         schedule: schedule, options: options, inputs: inputs)
    }
}

/// The packed unroll of a ``CompiledStep`` (``UnrollEngine/packed``): the same schedules and the
/// same results, bitwise, with each state kept as one packed byte buffer between steps instead of
/// a collection of tensors — a step copies bytes into its frame and back, and makes no tensor.
/// Replay hashes are those the tensor form would give.
func packedUnroll<State, Parameters, Output>(
    _ step: CompiledStep<State, Parameters, Output>, from initial: State, parameters: Parameters, steps: Int,
    loss: CompiledStep<State, Parameters, Output>.Loss, schedule: CheckpointSchedule,
    options: UnrollOptions, inputs: @escaping (Int) throws -> Tensor
) throws -> UnrollResult<CompiledStep<State, Parameters, Output>> {
    let (state, parameterLayout) = (step.stateLayout, step.parameterLayout)
    // The frames, records and buffers of the last unroll of this step, unless another thread has them.
    let packed = try step.packedSteps.take().flatMap { $0.recorder.requested == options.recordsKeepCarriedBytes ? $0 : nil }
        ?? PackedStep(forward: step.forward, forwardInvariant: step.forwardInvariant, record: step.record,
                    recordInvariant: step.recordInvariant, boundary: step.boundary, state: state, parameters: parameterLayout,
                    recordsKeepCarriedBytes: options.recordsKeepCarriedBytes)
    defer { step.packedSteps.keep(packed) }
    let packedLoss: PackedStep.Loss
    if let program = step.finalProgram {
        packedLoss = PackedStep.Loss { s in
            let frame = program.makeFrame()
            try state.bind(s, to: program, from: 0, in: frame)
            try program.run(program.positions, in: frame)
            return (try program.scalarOutput(0, in: frame), state.read(program, from: 1, in: frame))
        }
    } else if loss.final == nil {
        packedLoss = PackedStep.Loss { _ in nil }
    } else {
        let (base, template) = (step.base, step.stateTemplate)
        packedLoss = PackedStep.Loss { s in
            guard let (value, cotangent) = try base.finalLoss(state.unpack(s, into: template), loss: loss) else { return nil }
            return (value, try state.pack(cotangent))
        }
    }
    var packedOptions = options
    packedOptions.engine = .stepFunction   // the packed step itself runs through the protocol
    let result = try unroll(packed, from: try state.pack(initial), parameters: packed.known(try parameterLayout.pack(parameters)), steps: steps,
                            loss: packedLoss, schedule: schedule, options: packedOptions, inputs: inputs)
    var report = result.report
    report.engine = .packed
    return UnrollResult(loss: result.loss, parameterGradient: parameterLayout.unpack(result.parameterGradient, into: step.parameterTemplate),
                        initialStateGradient: state.unpack(result.initialStateGradient, into: step.stateTemplate),
                        finalState: state.unpack(result.finalState, into: step.stateTemplate), report: report)
}

/// The ``PackedStep`` a ``CompiledStep``'s packed unrolls reuse: one unroll takes it and puts it
/// back when done, so its frames, records and buffers outlive the unroll; an unroll that starts
/// while another has it makes its own (the last one back is kept).
// @unchecked Sendable: `kept` is read and written only under `lock`.
final class PackedStepCache: @unchecked Sendable {
    private let lock = Lock<Void>(())
    private var kept: PackedStep?

    func take() -> PackedStep? {
        lock.withLock { _ in
            defer { kept = nil }
            return kept
        }
    }

    func keep(_ step: PackedStep) { lock.withLock { _ in kept = step } }
}

/// Where each tensor of a collection lives in its packed bytes.
struct PackedLayout {
    struct Segment { var offset: Int; var type: ValueType }
    let segments: [Segment]
    let byteCount: Int

    init<C: ParameterCollection>(_ example: C) {
        var offset = 0
        segments = example.tensors.map { t in
            defer { offset += t.elementCount * t.dtype.byteSize }
            return Segment(offset: offset, type: t.valueType)
        }
        byteCount = offset
    }

    func pack<C: ParameterCollection>(_ value: C) throws -> PackedBytes {
        let bytes = PackedBytes.make(byteCount)
        var copy = value, k = 0, matches = true
        bytes.withBase { base in
            copy.visitTensors { _, t in
                if k < segments.count, t.dtype == segments[k].type.dtype, t.shape == segments[k].type.shape {
                    (base + segments[k].offset).copyMemory(from: t.rawPointer, byteCount: segments[k].type.byteCount)
                } else {
                    matches = false
                }
                k += 1
            }
        }
        guard matches, k == segments.count else {
            throw TensorError.shapeMismatch(op: "CompiledStep", detail: "compiled for \(segments.map(\.type)), got \(value.tensors.map(\.valueType))")
        }
        return bytes
    }

    func unpack<C: ParameterCollection>(_ bytes: PackedBytes, into template: C) -> C {
        var result = template, k = 0
        bytes.withBase { base in
            result.visitTensors { _, t in
                let segment = segments[k]
                t = Tensor(uninitialized: segment.type.shape, dtype: segment.type.dtype)
                t.rawPointer.copyMemory(from: base + segment.offset, byteCount: segment.type.byteCount)
                k += 1
            }
        }
        return result
    }

    /// Copies `bytes`, one segment per argument, into arguments `first…` of `frame`.
    func bind(_ bytes: PackedBytes, to program: CompiledProgram, from first: Int, in frame: CompiledProgram.Frame) throws {
        try bytes.withBase { try program.bind(packed: $0, count: byteCount, arguments: first..<(first + segments.count), in: frame) }
    }

    /// Outputs `first…` of `frame`, one per segment, packed.
    func read(_ program: CompiledProgram, from first: Int, in frame: CompiledProgram.Frame) -> PackedBytes {
        let bytes = PackedBytes.make(byteCount)
        bytes.withBase { read(program, from: first, in: frame, into: $0) }
        return bytes
    }

    /// Outputs `first…` of `frame`, packed into `destination` (``byteCount`` bytes).
    func read(_ program: CompiledProgram, from first: Int, in frame: CompiledProgram.Frame, into destination: UnsafeMutableRawPointer) {
        program.copyOutputs(first..<(first + segments.count), packedTo: destination, in: frame)
    }
}

/// A ``CompiledStep`` over packed states, parameters and gradients: the step the packed `unroll`
/// drives. Not generic, so the unroll executor is specialised for it.
struct PackedStep: StepFunction {
    typealias State = PackedBytes
    typealias Input = Tensor
    typealias Parameters = PackedBytes
    typealias StateCotangent = PackedBytes
    typealias ParameterGradient = PackedBytes

    /// The final-state loss and its cotangent, packed (the per-step loss is compiled in).
    struct Loss {
        let final: (PackedBytes) throws -> (value: Double, cotangent: PackedBytes)?
    }

    let forward: CompiledProgram
    /// Positions of `forward` that depend on the parameters only.
    let forwardInvariant: Int
    let state: PackedLayout
    let parameters: PackedLayout
    /// The forward frame of this unroll, kept between stretches of steps with the parameters it
    /// was bound with and their loop-invariant operators computed (a schedule with many snapshots
    /// advances a step or two at a time).
    let forwardFrame = ForwardFrame()
    /// The positions of `forward` after the invariant ones, prepared.
    let perStep: CompiledProgram.PreparedRun
    /// The record program and the frames it reuses.
    let recorder: Recorder

    final class ForwardFrame {
        var frame: CompiledProgram.Frame?
        var parameters: PackedBytes?
    }

    /// The record program (forward and backward of a step, split at `boundary`) with the layouts
    /// its pullback reads, and the records it reuses. A record is free again once its pullback has
    /// run (it runs once; the executor drops a step after pulling it back). Up to ``recordLimit``
    /// free records are kept (as many as fit in 16 MiB, at least 8 and at most 256): enough for a
    /// schedule that reverses a step soon after recording it, and for `storeAll` over short
    /// horizons.
    ///
    /// A record keeps its step in one of two forms, chosen per recorder by size
    /// (``keepsCarriedBytes(frameBytes:carriedBytes:)``); both give the same results bit for bit:
    /// - **a frame**: the step runs in the record's own frame of `program`, which its pullback
    ///   runs in later. A record's frame holds the parameters it was last prepared with and their
    ///   loop-invariant values; a record taken for other parameters gets them from the
    ///   ``prototype`` frame by ``CompiledProgram/copyPrefix(before:from:into:)`` — one copy of the
    ///   prefix instead of binding the parameters and running the invariant operators in every frame.
    /// - **the carried bytes**: every step and every pullback runs in one work frame (the
    ///   prototype), and a record keeps only the frame bytes its pullback reads that its step wrote
    ///   (``CompiledProgram/carriedRegions(from:across:arguments:)``: the input argument and the
    ///   values the backward reads), copied out after the step and back before the pullback, and
    ///   holds the state the step ran from when the backward reads it (the schedule's buffer, not
    ///   a copy: the previous step's next state). A frame also holds the backward's own values
    ///   and the forward's values the backward does not read; on large states that is most of
    ///   it, so `storeAll` keeps a fraction of the memory a frame per step takes, and pages in
    ///   that much less fresh memory per step.
    ///
    /// Besides, a record holds the buffers its step last wrote (the next state, and the pullback's
    /// state cotangent and parameter gradient); a recording that takes it writes into each of them
    /// that nothing else refers to any more (the schedule dropped it), and into a fresh one otherwise.
    ///
    /// Each step's accesses to the free list and to a record's buffers are loads and stores with
    /// no call inside them, so the optimizer proves that no two overlap and checks them
    /// statically; a stored property of a class is otherwise checked at run time on every access.
    final class Recorder {
        let program: CompiledProgram
        /// Positions of `program` that depend on the parameters only.
        let invariant: Int
        let boundary: Int
        let state: PackedLayout
        let parameters: PackedLayout
        /// The per-step forward positions (`invariant..<boundary`) and the backward ones, prepared.
        let forwardRun: CompiledProgram.PreparedRun
        let backwardRun: CompiledProgram.PreparedRun
        /// Whether records keep the carried bytes (else a frame each), and what the options asked
        /// for (`nil`: chosen by size).
        let keepsCarriedBytes: Bool
        let requested: Bool?
        /// The frame regions a record keeps when it keeps the carried bytes, and their total.
        let carried: [(offset: Int, bytes: Int)]
        let carriedBytes: Int
        /// Whether the backward reads the state arguments (a record keeping the carried bytes then
        /// holds its step's state, and its pullback binds it again).
        let pullbackReadsState: Bool
        /// The most free records kept.
        let recordLimit: Int
        /// When records keep the carried bytes: the pointer slots (`CompiledProgram.boundSlot`)
        /// of the state arguments, the next-state outputs, the cotangent arguments and the
        /// state-cotangent outputs — regions the generated code reads and writes through a
        /// pointer, so a step hands it the buffers themselves instead of copying (nil: copied).
        let stateSlots: [Int?], nextSlots: [Int?], cotangentSlots: [Int?], stateCotangentSlots: [Int?]
        /// The pointers handed to the program (one per bound region; unset ones null).
        private let pointers: UnsafeMutableBufferPointer<UnsafeMutableRawPointer?>
        /// Whether steps and pullbacks hand the program pointers (records keep the carried bytes,
        /// and the program has bound regions).
        let bindsInPlace: Bool
        /// The free records, the last freed first, linked through ``Record/nextFree``.
        private var firstFree: Record?
        private var freeCount = 0
        /// A frame of `program` that ran the invariant positions for `prototypeParameters` (and,
        /// when records keep the carried bytes, the frame every step and pullback runs in).
        private var prototype: CompiledProgram.Frame?
        private(set) var prototypeParameters: PackedBytes?

        init(program: CompiledProgram, invariant: Int, boundary: Int, state: PackedLayout, parameters: PackedLayout,
             keepsCarriedBytes choice: Bool?) throws {
            (self.program, self.invariant, self.boundary, self.state, self.parameters) = (program, invariant, boundary, state, parameters)
            forwardRun = try program.prepare(invariant..<boundary)
            backwardRun = try program.prepare(boundary..<program.positions.upperBound)
            // The state arguments and the input are bound per step (the parameters are in the
            // prefix): the record holds the state it was given, and keeps the input's bytes.
            let regions = try program.carriedRegions(from: invariant, across: boundary, arguments: [state.segments.count])
            pullbackReadsState = try (0..<state.segments.count).contains { try program.reads(argument: $0, after: boundary) }
            let bytes = regions.reduce(0) { $0 + $1.bytes }
            requested = choice
            keepsCarriedBytes = choice ?? Self.keepsCarriedBytes(frameBytes: program.statistics.frameBytes, carriedBytes: bytes)
            carried = regions
            carriedBytes = bytes
            recordLimit = Self.limit(forBytes: keepsCarriedBytes ? bytes : program.statistics.frameBytes)
            let (sc, pc) = (state.segments.count, parameters.segments.count)
            stateSlots = (0..<sc).map { program.boundSlot(argument: $0) }
            nextSlots = (0..<sc).map { program.boundSlot(output: $0) }
            cotangentSlots = (0..<sc).map { program.boundSlot(argument: sc + 1 + pc + $0) }
            stateCotangentSlots = (0..<sc).map { program.boundSlot(output: sc + 1 + $0) }
            pointers = .allocate(capacity: Swift.max(1, program.boundCount))
            pointers.initialize(repeating: nil)
            bindsInPlace = keepsCarriedBytes && program.boundCount > 0
        }

        deinit { pointers.deallocate() }

        /// A step's forward positions on the work `frame`, the generated code reading the state
        /// from `s` and writing the next state into `next` where they are bound (the rest is
        /// copied), then the carried values copied into `carried` (``bindsInPlace``, and the
        /// program runs natively).
        func runForward(_ s: PackedBytes, input: Tensor, next: PackedBytes, carried: PackedBytes, in frame: CompiledProgram.Frame) throws {
            let sc = state.segments.count
            pointers.update(repeating: nil)
            try s.withBase { sBase in
                try next.withBase { nBase in
                    try carried.withBase { cBase in
                        for (k, segment) in state.segments.enumerated() {
                            if let slot = stateSlots[k] { pointers[slot] = sBase + segment.offset }
                            else { try program.bind(bytes: sBase + segment.offset, count: segment.type.byteCount, at: k, in: frame) }
                            if let slot = nextSlots[k] { pointers[slot] = nBase + segment.offset }
                        }
                        try program.bind(input, at: sc, in: frame)
                        try program.run(forwardRun, in: frame, bound: UnsafePointer(pointers.baseAddress!))
                        for (k, segment) in state.segments.enumerated() where nextSlots[k] == nil {
                            program.copyOutputs(k..<(k + 1), packedTo: nBase + segment.offset, in: frame)
                        }
                        program.copy(self.carried, of: frame, to: cBase)
                    }
                }
            }
        }

        /// A pullback's backward positions on the work `frame`, as ``runForward(_:input:next:carried:in:)``:
        /// the carried values copied back, the state (when the backward reads it) and the
        /// cotangent read where they are, the state cotangent written into `stateCotangent`.
        func runBackward(state s: PackedBytes?, carried: PackedBytes, cotangent: PackedBytes?, stateCotangent: PackedBytes,
                         in frame: CompiledProgram.Frame) throws {
            let (sc, pc) = (state.segments.count, parameters.segments.count)
            pointers.update(repeating: nil)
            func withBase(_ bytes: PackedBytes?, _ body: (UnsafeMutableRawPointer?) throws -> Void) rethrows {
                if let bytes { try bytes.withBase { try body($0) } } else { try body(nil) }
            }
            try withBase(s) { sBase in
                try withBase(cotangent) { lBase in
                    try carried.withBase { cBase in
                        try stateCotangent.withBase { gBase in
                            for (k, segment) in state.segments.enumerated() {
                                if let sBase {
                                    if let slot = stateSlots[k] { pointers[slot] = sBase + segment.offset }
                                    else { try program.bind(bytes: sBase + segment.offset, count: segment.type.byteCount, at: k, in: frame) }
                                }
                                if let lBase {
                                    if let slot = cotangentSlots[k] { pointers[slot] = lBase + segment.offset }
                                    else { try program.bind(bytes: lBase + segment.offset, count: segment.type.byteCount, at: sc + 1 + pc + k, in: frame) }
                                }
                                if let slot = stateCotangentSlots[k] { pointers[slot] = gBase + segment.offset }
                            }
                            if lBase == nil { program.bindZeros((sc + 1 + pc)..<(2 * sc + 1 + pc), in: frame) }
                            program.copy(self.carried, from: cBase, into: frame)
                            try program.run(backwardRun, in: frame, bound: UnsafePointer(pointers.baseAddress!))
                            for (k, segment) in state.segments.enumerated() where stateCotangentSlots[k] == nil {
                                program.copyOutputs((sc + 1 + k)..<(sc + 2 + k), packedTo: gBase + segment.offset, in: frame)
                            }
                        }
                    }
                }
            }
        }

        /// Whether records should keep the carried bytes rather than a frame: when a frame is
        /// large (64 KiB or more: below, copying the regions out and back costs more per step than
        /// the frame's memory is worth) and the carried bytes are at most half of it.
        static func keepsCarriedBytes(frameBytes: Int, carriedBytes: Int) -> Bool {
            frameBytes >= 64 << 10 && carriedBytes <= frameBytes / 2
        }

        /// A limit for objects of `bytes` bytes each: as many as fit in 16 MiB, at least 8 and at most 256.
        static func limit(forBytes bytes: Int) -> Int { Swift.min(256, Swift.max(8, (16 << 20) / Swift.max(1, bytes))) }

        /// A free record (the last freed), or a new one, for parameters `p`; a record with a frame
        /// has `p` and its invariant values there.
        func takeRecord(parameters p: PackedBytes) throws -> Record {
            let record: Record
            if let free = firstFree {
                firstFree = free.nextFree
                free.nextFree = nil
                freeCount -= 1
                free.pulled.store(false, ordering: .relaxed)
                record = free
            } else {
                record = Record(self, keepsCarriedBytes ? nil : program.makeFrame())
            }
            if record.parameters !== p {
                if let frame = record.frame { try program.copyPrefix(before: invariant, from: try prototype(for: p), into: frame) }
                record.parameters = p
            }
            return record
        }

        /// Puts `record`, whose pullback has run, on the free list (unless ``recordLimit`` are there).
        func free(_ record: Record) {
            guard freeCount < recordLimit else { return }
            record.nextFree = firstFree
            firstFree = record
            freeCount += 1
        }

        /// The prototype frame, holding the parameters `p` and their invariant values (bound and
        /// run first if it holds others).
        func prototype(for p: PackedBytes) throws -> CompiledProgram.Frame {
            if let prepared = prototype, prototypeParameters === p { return prepared }
            let frame = prototype ?? program.makeFrame()
            prototypeParameters = nil
            try parameters.bind(p, to: program, from: state.segments.count + 1, in: frame)
            try program.run(0..<invariant, in: frame)
            (prototype, prototypeParameters) = (frame, p)
            return frame
        }

        /// Copies the carried regions of `frame` into `record`'s bytes (made on its first use).
        func keepCarried(of frame: CompiledProgram.Frame, in record: Record) {
            let bytes = record.carried ?? record.keepCarried(carriedBytes)
            bytes.withBase { program.copy(carried, of: frame, to: $0) }
        }

        /// Copies `record`'s carried bytes back into their regions of `frame`.
        func restoreCarried(of record: Record, into frame: CompiledProgram.Frame) {
            record.carried?.withBase { program.copy(carried, from: $0, into: frame) }
        }

        /// `slot`'s buffer when nothing else refers to it, else `nil`. The access to `slot` holds
        /// the check alone: a new buffer is made outside it (``Record/keep(_:in:)``).
        @inline(__always)
        static func unshared(_ slot: inout PackedBytes?) -> PackedBytes? { isKnownUniquelyReferenced(&slot) ? slot : nil }

        /// Outputs `first…` of `frame` packed into `bytes`.
        func fill(_ bytes: PackedBytes, _ layout: PackedLayout, from first: Int, in frame: CompiledProgram.Frame) {
            bytes.withBase { layout.read(program, from: first, in: frame, into: $0) }
        }
    }

    /// One recorded step, until its pullback (which runs once) has run — its frame, or the frame
    /// bytes its pullback reads — and the buffers its step writes (see ``Recorder``).
    final class Record {
        /// Not counted (the recorder pools its records, so a strong reference would be a cycle): a
        /// record is reachable only from its recorder's free list and from the recorded steps of an
        /// unroll, whose executor holds the `PackedStep` and so the recorder, for as long as it
        /// runs. `unowned` (checked): a record outliving its recorder traps instead of reading freed
        /// memory.
        unowned let recorder: Recorder
        /// The record's frame, unless the recorder's records keep the carried bytes.
        let frame: CompiledProgram.Frame?
        /// The carried bytes of the recorded step, when the recorder's records keep them.
        private(set) var carried: PackedBytes?
        /// The state the step ran from, held until the pullback when it reads the state and the
        /// record keeps the carried bytes (buffers handed to the schedule are not written again).
        var state: PackedBytes?
        /// Whether the pullback ran (an atomic only so that reading and setting it is one
        /// operation with no exclusivity check; a record is used by one thread at a time).
        let pulled = Atomic<Bool>(false)
        /// The parameters the step ran with (and, with a frame, whose values and invariant
        /// operators the frame holds); held, so the identity cannot pass to other parameters.
        var parameters: PackedBytes?
        /// The next record on the recorder's free list.
        var nextFree: Record?
        /// The buffers this record's step last wrote: its next state, and its pullback's state
        /// cotangent and parameter gradient.
        var next: PackedBytes?
        var stateCotangent: PackedBytes?
        var parameterGradient: PackedBytes?

        /// The buffer slots of a record.
        enum Slot { case next, stateCotangent, parameterGradient }

        /// A new buffer of `layout.byteCount` bytes, kept in `slot` for the record's next use.
        func keep(_ layout: PackedLayout, in slot: Slot) -> PackedBytes {
            let bytes = PackedBytes.make(layout.byteCount)
            switch slot {
            case .next: next = bytes
            case .stateCotangent: stateCotangent = bytes
            case .parameterGradient: parameterGradient = bytes
            }
            return bytes
        }

        /// A new buffer of `count` bytes for the carried bytes, kept for the record's next use
        /// (uninitialized: ``Recorder/keepCarried(of:in:)`` writes all of it before it is read).
        func keepCarried(_ count: Int) -> PackedBytes {
            let bytes = PackedBytes.make(count, zeroed: false)
            carried = bytes
            return bytes
        }

        init(_ recorder: Recorder, _ frame: CompiledProgram.Frame?) { (self.recorder, self.frame) = (recorder, frame) }

        func pullback(_ cotangent: PackedBytes?) throws -> (state: PackedBytes, parameters: PackedBytes) {
            guard !pulled.exchange(true, ordering: .relaxed) else {
                throw TensorError.invalidArgument(op: "CompiledStep", detail: "the pullback of a step in a packed unroll runs once")
            }
            let r = recorder   // one load of the unowned reference
            let program = r.program
            let (sc, pc) = (r.state.segments.count, r.parameters.segments.count)
            if self.frame == nil, r.bindsInPlace, program.runsNatively, let carried {
                guard let p = parameters else { throw TensorError.invalidArgument(op: "CompiledStep", detail: "a record without parameters") }
                let frame = try r.prototype(for: p)
                let stateBytes = Recorder.unshared(&stateCotangent) ?? keep(r.state, in: .stateCotangent)
                let gradientBytes = Recorder.unshared(&parameterGradient) ?? keep(r.parameters, in: .parameterGradient)
                try r.runBackward(state: state, carried: carried, cotangent: cotangent, stateCotangent: stateBytes, in: frame)
                state = nil
                r.fill(gradientBytes, r.parameters, from: 2 * sc + 1, in: frame)
                r.free(self)
                return (stateBytes, gradientBytes)
            }
            let frame: CompiledProgram.Frame
            if let own = self.frame {
                frame = own
            } else {
                // The parameters first: preparing the work frame for them writes the prefix only.
                guard let p = parameters else { throw TensorError.invalidArgument(op: "CompiledStep", detail: "a record without parameters") }
                frame = try r.prototype(for: p)
                if let s = state {
                    try r.state.bind(s, to: program, from: 0, in: frame)
                    state = nil
                }
                r.restoreCarried(of: self, into: frame)
            }
            if let cotangent {
                try r.state.bind(cotangent, to: program, from: sc + 1 + pc, in: frame)
            } else {
                program.bindZeros((sc + 1 + pc)..<(2 * sc + 1 + pc), in: frame)
            }
            try program.run(r.backwardRun, in: frame)
            let stateBytes = Recorder.unshared(&stateCotangent) ?? keep(r.state, in: .stateCotangent)
            let gradientBytes = Recorder.unshared(&parameterGradient) ?? keep(r.parameters, in: .parameterGradient)
            r.fill(stateBytes, r.state, from: sc + 1, in: frame)
            r.fill(gradientBytes, r.parameters, from: 2 * sc + 1, in: frame)
            // Free only now: a later recording takes the record, after this pullback has returned.
            r.free(self)
            return (stateBytes, gradientBytes)
        }
    }

    init(forward: CompiledProgram, forwardInvariant: Int, record: CompiledProgram, recordInvariant: Int, boundary: Int,
         state: PackedLayout, parameters: PackedLayout, recordsKeepCarriedBytes: Bool? = nil) throws {
        (self.forward, self.forwardInvariant, self.state, self.parameters) = (forward, forwardInvariant, state, parameters)
        perStep = try forward.prepare(forwardInvariant..<forward.positions.upperBound)
        recorder = try Recorder(program: record, invariant: recordInvariant, boundary: boundary, state: state, parameters: parameters,
                                keepsCarriedBytes: recordsKeepCarriedBytes)
    }

    /// `p`, or the parameters object of an earlier unroll holding the same bytes: frames prepared
    /// for that object (its values bound, its loop-invariant operators run) are then used as they
    /// are. Equal bytes give equal invariant values — the programs are deterministic.
    func known(_ p: PackedBytes) -> PackedBytes {
        if let kept = forwardFrame.parameters, kept.hasSameBytes(as: p) { return kept }
        if let kept = recorder.prototypeParameters, kept.hasSameBytes(as: p) { return kept }
        return p
    }

    /// Binds a state, an input and parameters as a program's leading arguments.
    private func bindArguments(_ program: CompiledProgram, _ s: PackedBytes, _ input: Tensor, _ p: PackedBytes, _ frame: CompiledProgram.Frame) throws {
        try state.bind(s, to: program, from: 0, in: frame)
        try program.bind(input, at: state.segments.count, in: frame)
        try parameters.bind(p, to: program, from: state.segments.count + 1, in: frame)
    }

    func step(_ s: PackedBytes, input: Tensor, parameters p: PackedBytes) throws -> PackedBytes {
        let frame = forward.makeFrame()
        try bindArguments(forward, s, input, p, frame)
        try forward.run(forward.positions, in: frame)
        return state.read(forward, from: 0, in: frame)
    }

    /// One frame for the whole unroll: the parameters are bound and their loop-invariant
    /// transforms computed once; each step binds the state and the input, runs the rest, and reads the next
    /// state back into the same buffer (no allocation per step beyond the input the caller makes).
    func advance(_ s: PackedBytes, through steps: Range<Int>, parameters p: PackedBytes, inputs: (Int) throws -> Tensor, hashing: (Int) -> Bool,
                 before: (Int) -> Void, after: (Int, StateHash?) throws -> Void) throws -> PackedBytes {
        guard !steps.isEmpty else { return s }
        let frame: CompiledProgram.Frame
        // The executor passes the same parameters object throughout an unroll.
        if let kept = forwardFrame.frame, forwardFrame.parameters === p {
            frame = kept
        } else {
            frame = forward.makeFrame()
            try parameters.bind(p, to: forward, from: state.segments.count + 1, in: frame)
            try forward.run(0..<forwardInvariant, in: frame)
            (forwardFrame.frame, forwardFrame.parameters) = (frame, p)
        }
        // `s` may be a snapshot: the run writes into its own copy.
        let next = s.copy()
        try next.withBase { base in
            for k in steps {
                before(k)
                try state.bind(next, to: forward, from: 0, in: frame)
                try forward.bind(try inputs(k), at: state.segments.count, in: frame)
                try forward.run(perStep, in: frame)
                state.read(forward, from: 0, in: frame, into: base)
                try after(k, hashing(k + 1) ? hash(next) : nil)
            }
        }
        return next
    }

    /// Runs on a pooled record's frame, or on the recorder's work frame with the carried bytes
    /// kept in the record (see ``Recorder``).
    func recordStep(_ s: PackedBytes, input: Tensor, parameters p: PackedBytes, loss: Loss) throws -> RecordedStep<Self> {
        let r = recorder, program = recorder.program, sc = state.segments.count
        let record = try r.takeRecord(parameters: p)
        let next = Recorder.unshared(&record.next) ?? record.keep(state, in: .next)
        if record.frame == nil, r.bindsInPlace, program.runsNatively {
            let frame = try r.prototype(for: p)
            try r.runForward(s, input: input, next: next, carried: record.carried ?? record.keepCarried(r.carriedBytes), in: frame)
            if r.pullbackReadsState { record.state = s }
            return RecordedStep(next: next, loss: try program.scalarOutput(sc, in: frame)) {
                try record.pullback($0)
            }
        }
        let frame = try record.frame ?? r.prototype(for: p)
        try state.bind(s, to: program, from: 0, in: frame)
        try program.bind(input, at: sc, in: frame)
        try program.run(r.forwardRun, in: frame)
        r.fill(next, state, from: 0, in: frame)
        if record.frame == nil {
            r.keepCarried(of: frame, in: record)
            if r.pullbackReadsState { record.state = s }
        }
        return RecordedStep(next: next, loss: try program.scalarOutput(sc, in: frame)) {
            try record.pullback($0)
        }
    }

    func finalLoss(_ s: PackedBytes, loss: Loss) throws -> (value: Double, cotangent: PackedBytes)? { try loss.final(s) }

    /// `total[i] + gradient[i]` per element by the `add` kernel's function
    /// (``Kernels/accumulate(_:_:count:)``), as the tensor form's in-place `add_` computes it.
    /// The first gradient becomes the total and is added into afterwards (each pullback returns
    /// a buffer of its own).
    func accumulate(_ gradient: PackedBytes, into total: inout PackedBytes?) throws {
        guard let sum = total else {
            total = gradient
            return
        }
        try sum.withBase { sum in
            try gradient.withBase { g in
                for segment in parameters.segments {
                    let n = segment.type.elementCount
                    switch segment.type.dtype {
                    case .float64:
                        // The buffers' memory is bound to bytes (`PackedBytes`): rebound to the element type for the call.
                        (sum + segment.offset).withMemoryRebound(to: Double.self, capacity: n) { s in
                            (g + segment.offset).withMemoryRebound(to: Double.self, capacity: n) { Kernels.accumulate(s, $0, count: n) }
                        }
                    case .float32:
                        (sum + segment.offset).withMemoryRebound(to: Float.self, capacity: n) { s in
                            (g + segment.offset).withMemoryRebound(to: Float.self, capacity: n) { Kernels.accumulate(s, $0, count: n) }
                        }
                    default: throw TensorError.unsupportedDType(op: "CompiledStep", dtype: segment.type.dtype, detail: "parameter gradients must be f64 or f32")
                    }
                }
            }
        }
    }

    func serialize(_ s: PackedBytes) throws -> [UInt8] { s.array }

    func deserialize(_ bytes: [UInt8], like template: PackedBytes) throws -> PackedBytes {
        guard bytes.count == state.byteCount else {
            throw PersistenceError.corrupt(path: "<snapshot>", offset: 0, detail: "\(bytes.count) bytes for a packed state of \(state.byteCount)")
        }
        return PackedBytes.from(bytes)
    }

    /// The hash ``TensorStep/hash(_:)`` gives the unpacked state.
    func hash(_ s: PackedBytes) -> StateHash {
        var hasher = StateHasher()
        s.withBase { base in
            for segment in state.segments { hasher.combine(segment.type, bytes: base + segment.offset) }
        }
        return hasher.finalize()
    }

    func byteCount(of s: PackedBytes) -> Int { s.count }
}

/// A packed state, parameter vector or gradient: bytes in one allocation, passed by reference. A
/// buffer is not written after it is handed to the schedule (a run of steps writes into its own
/// copy; a gradient total is the first pullback's own buffer). A class rather than `[UInt8]`:
/// creating an array goes through the runtime's generic metadata lookup, hundreds of
/// instructions per step.
final class PackedBytes: ManagedBuffer<Int, UInt8> {
    /// `count` bytes, zeroed unless `zeroed` is false (for a buffer the caller writes in full
    /// before anything reads it).
    static func make(_ count: Int, zeroed: Bool = true) -> PackedBytes {
        let bytes = unsafeDowncast(create(minimumCapacity: count) { _ in count }, to: PackedBytes.self)
        if zeroed { bytes.withUnsafeMutablePointerToElements { $0.initialize(repeating: 0, count: count) } }
        return bytes
    }

    /// A copy of `array`.
    static func from(_ array: [UInt8]) -> PackedBytes {
        let bytes = make(array.count)
        bytes.withUnsafeMutablePointerToElements { p in
            array.withUnsafeBufferPointer { if let source = $0.baseAddress { p.update(from: source, count: array.count) } }
        }
        return bytes
    }

    /// The byte count (read through the header's pointer: the `header` property is checked for
    /// exclusive access on every read).
    var count: Int { withUnsafeMutablePointerToHeader { $0.pointee } }

    /// Runs `body` with the address of the first byte (valid, and never dereferenced, when empty).
    @inline(__always)
    func withBase<R>(_ body: (UnsafeMutableRawPointer) throws -> R) rethrows -> R {
        try withUnsafeMutablePointerToElements { try body(UnsafeMutableRawPointer($0)) }
    }

    /// Whether both buffers hold the same bytes.
    func hasSameBytes(as other: PackedBytes) -> Bool {
        let n = count
        guard other.count == n else { return false }
        return withBase { a in other.withBase { b in memcmp(a, b, n) == 0 } }
    }

    func copy() -> PackedBytes {
        let other = PackedBytes.make(count)
        withBase { source in other.withBase { $0.copyMemory(from: source, byteCount: count) } }
        return other
    }

    var array: [UInt8] { withUnsafeMutablePointerToElements { Array(UnsafeBufferPointer(start: $0, count: count)) } }
}
