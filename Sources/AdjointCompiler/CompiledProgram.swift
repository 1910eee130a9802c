import AdjointTensor
import AdjointIR
import Synchronization
import AdjointIO

/// A graph compiled to run in preallocated memory: every value has a fixed place in a *frame*, one
/// block of memory per execution, and operators write their results there.
///
/// Compilation plans the memory once. Each value gets a byte offset in the frame; values whose
/// lifetimes do not overlap share space. Layout operators (reshape, slice, transpose, broadcast,
/// concat, stack, pad) become either nothing — an alias into their input, when the result is a
/// contiguous run of one input (a reshape, a leading-axis slice) — or a gather through an index
/// table computed at compile time by running the operator itself on encoded indices; a gather
/// padded with zeros whose value one binary operator reads is folded into that reader, which reads
/// through the table (``Statistics/foldedGathers``). Elementwise
/// operators, `multiplyAdd`, matmul and reductions over a run of axes call the same kernel loops as
/// `dispatch(_:_:_:)`, so results are bitwise those of the interpreted graph. Anything else
/// (comparisons, casts, indexing with index tensors, custom operators, non-float dtypes) runs through
/// the ordinary kernels on temporary tensors and is copied into the frame: correct, not
/// allocation-free; ``Statistics/fallbacks`` counts these.
///
/// In steady state, running a compiled program allocates nothing per operation: a frame comes from
/// the program's cache (or, the first time, from `StoragePool`), and only binding arguments and
/// reading outputs touch tensors. A program may run on several threads at once, each with its own
/// frame.
///
/// A program can run in segments (`run(_:in:)` with a range of positions): compiled with a
/// `boundary`, every value computed before the boundary and read after it is kept until the end,
/// so the part after the boundary (a backward pass, say) can be run again on the same frame —
/// with new arguments bound — and reads the same saved values.
///
/// Gathers and broadcasting operands read through index tables (one `Int` per element, built at
/// compile time) in serial loops: compiled programs are made for many small operators (a
/// simulator's step); a program of a few huge broadcasts is better run through `dispatch`.
///
/// Mixed precision and `ExecutionPolicy.float64Debug` change how arithmetic rounds; under either,
/// arithmetic operators run through the ordinary kernels so the results still match `dispatch`.
// @unchecked Sendable: immutable after initialization except the cache of free frames, behind a
// `Lock`; every run uses a frame of its own.
public final class CompiledProgram: @unchecked Sendable {
    /// What compilation made of the graph.
    public struct Statistics: Equatable, Sendable, CustomStringConvertible {
        /// Operators in the compiled order.
        public var operations: Int
        /// Layout operators that became aliases (no work at run time).
        public var aliases: Int
        /// Layout operators that became index-table gathers.
        public var gathers: Int
        /// Gathers whose one reader, a binary operator, reads through their table instead (no
        /// instruction, no memory).
        public var foldedGathers: Int
        /// Operators run through the ordinary kernels on temporary tensors (they allocate).
        public var fallbacks: Int
        /// Bytes of one frame (captures, arguments and every live value at the peak).
        public var frameBytes: Int
        /// Instructions compiled to machine code (``NativeCode``); the rest are interpreted.
        public var nativeInstructions = 0
        /// Of those, instructions fused into chunked runs: large elementwise instructions computed
        /// element by element in one loop, in chunks over the worker threads.
        public var chunkedInstructions = 0
        /// Additions of a folded gather into a sum that dies there, done in the sum's memory:
        /// native code writes only the elements the gather supplies (the backward pass of slicing).
        public var accumulationsInPlace = 0

        public var description: String {
            "\(operations) operations (\(aliases) aliases, \(gathers) gathers, \(foldedGathers) gathers folded into their reader, \(fallbacks) through temporary tensors), frame \(frameBytes) B"
                + (accumulationsInPlace > 0 ? ", \(accumulationsInPlace) accumulations in place" : "")
                + (nativeInstructions > 0 ? ", \(nativeInstructions) instructions as native code" : "")
                + (chunkedInstructions > 0 ? " (\(chunkedInstructions) in chunked runs)" : "")
        }
    }

    /// One operand of an instruction: where it lives and what it is. An operand folded from a
    /// gather has no place of its own (`offset` -1) but a table in ``tables`` (its elements'
    /// absolute offsets, -1 for zero padding) from `table`.
    struct Operand {
        var offset: Int
        var type: ValueType
        /// A folded gather's table (absolute element offsets, -1 = zero), or -1.
        var table = -1
        /// Whether that table is an ``AffineTable`` (its ``AffineTable/width`` numbers), not one entry per element.
        var compact = false

        /// Entry `k` of the table in `tables`.
        func entry(_ k: Int, in tables: UnsafeBufferPointer<Int>) -> Int {
            compact ? AffineTable(tables.baseAddress! + table).entry(k) : tables[table + k]
        }
    }

    struct Fallback {
        var op: OpCode
        var attributes: Attributes
        var inputs: [Operand]
        var output: Operand
    }

    /// The compiled instructions, in order (aliases have none). This and `tables` are memory the
    /// program owns rather than arrays: a run reads them through pointers, where an array property
    /// would be retained and released on every run.
    let instructions: UnsafeBufferPointer<Instruction>
    /// Index tables of gathers and broadcasting operands.
    let tables: UnsafeBufferPointer<Int>
    /// For each instruction, how to run it through the ordinary kernels.
    let fallbacks: [Fallback]
    /// The GEMM jobs of matmul instructions.
    let products: [Kernels.MatmulPlan]
    /// `instructionStart[p]`: the first instruction at order position `p` or later (one extra
    /// entry at the end).
    let instructionStart: [Int]
    /// `prefixEnds[p]`: the end of the frame bytes that the captures, the arguments and the values
    /// of positions before `p` occupy (see ``copyPrefix(before:from:into:)``).
    let prefixEnds: [Int]
    /// A region of the frame that a value computed before a boundary (or an argument) occupies and
    /// a position after the boundary reads.
    struct Crossing { var offset: Int; var bytes: Int; var computedAt: Int; var argument: Int? }
    /// Per boundary (every one has an entry), its crossings by offset.
    let crossings: [Int: [Crossing]]
    let arguments: [Operand]
    let outputs: [Operand]
    /// Byte offset and byte count per argument and per output, apart from their types: the
    /// per-step binding path reads these without touching a shape array (no retain/release).
    let argumentPlaces: UnsafeBufferPointer<(offset: Int, bytes: Int)>
    let outputPlaces: UnsafeBufferPointer<(offset: Int, bytes: Int)>
    /// The captures' bytes, copied to the start of every new frame.
    let constantImage: [UInt8]
    public let statistics: Statistics
    /// Distinct for every program made in this process (what a ``PreparedRun`` checks it belongs to).
    let serial = CompiledProgram.serials.wrappingAdd(1, ordering: .relaxed).oldValue
    private static let serials = Atomic<Int>(0)
    /// Whether any instruction reads the reduction policy.
    let hasReductions: Bool
    /// Machine code for runs of instructions, when compiled with ``NativeCode``.
    let native: NativeSegments?
    /// Why native code was not made under ``NativeCode/automatic`` (nil when it was, or was not asked for).
    public let nativeCodeFailure: String?

    /// A reduction a chunked run takes in: its result's offset and type, whether it is a mean
    /// (the sum divided by `extent`, as the kernel does), and where its partials start.
    struct FusedReduction { let y: Int, float64: Bool, mean: Bool, extent: Int, partials: Int }

    /// Runs of instructions as loaded machine code (tables in memory of its own, like `instructions`).
    final class NativeSegments {
        let library: NativeLibrary
        let functions: UnsafeBufferPointer<NativeLibrary.Segment>
        /// Per instruction: the run starting there (`k` a plain run, `-2 - k` a chunked run), or -1.
        let start: UnsafeBufferPointer<Int32>
        /// Per run: the instruction after it.
        let end: UnsafeBufferPointer<Int>
        /// Chunked runs: their functions, the instruction after each, and the elements of each.
        let chunked: UnsafeBufferPointer<NativeLibrary.ChunkedSegment>
        let chunkedEnd: UnsafeBufferPointer<Int>
        /// Chunked runs: the instruction a range must reach for the run to run natively (a later
        /// run recomputes values it then does not store: `NativeCodeGenerator.Fusion.reach`).
        let chunkedReach: UnsafeBufferPointer<Int>
        let chunkedElements: UnsafeBufferPointer<Int>
        /// Chunked runs: their fused reductions (`NativeCodeGenerator.fusedReductions(_:)`) and
        /// the bytes of partials they need; whether any run has one.
        let chunkedReductions: [[FusedReduction]]
        let partialBytes: [Int]
        let fusesReductions: Bool
        /// What the generator was given besides the instructions and tables, to print the runs
        /// again (``CompiledProgram/cudaSource()``): the chunked runs, the splits, the last readers.
        let runs: [Range<Int>], splits: Set<Int>, lastReaders: [Int]
        /// The plain runs (`functions`' instructions), for their device kernels.
        let segments: [Range<Int>]
        /// Arguments and outputs only chunked runs touch, which a whole-program call binds in
        /// place (see `CompiledProgram.boundRegions(_:chunked:generator:)`).
        let bound: [BoundRegion]
        /// Matmul instructions reading or writing a bound region: per operand (a, b, y) its frame
        /// offset, and the bound slot holding it with its offset in the region (slot -1: none).
        let boundMatmuls: [Int: (a: BoundPlace, b: BoundPlace, y: BoundPlace)]
        typealias BoundPlace = (offset: Int, slot: Int, delta: Int)

        init(library: NativeLibrary, functions: [NativeLibrary.Segment], start: [Int32], end: [Int],
             chunked: [NativeLibrary.ChunkedSegment], chunkedEnd: [Int], chunkedReach: [Int], bound: [BoundRegion],
             instructions: [Instruction], chunkedElements: [Int], chunkedReductions: [[FusedReduction]],
             runs: [Range<Int>], segments: [Range<Int>], splits: Set<Int>, lastReaders: [Int]) {
            self.bound = bound
            self.segments = segments
            (self.runs, self.splits, self.lastReaders) = (runs, splits, lastReaders)
            self.chunkedReductions = chunkedReductions
            partialBytes = zip(chunkedReductions, chunkedElements).map { reductions, n in
                reductions.count * 8 * ((n + Parallelism.elementChunk - 1) / Parallelism.elementChunk)
            }
            fusesReductions = chunkedReductions.contains { !$0.isEmpty }
            func place(_ offset: Int) -> BoundPlace {
                guard let j = bound.firstIndex(where: { $0.offset <= offset && offset < $0.offset + $0.bytes }) else { return (offset, -1, 0) }
                return (offset, j, offset - bound[j].offset)
            }
            var matmuls: [Int: (a: BoundPlace, b: BoundPlace, y: BoundPlace)] = [:]
            for (k, i) in instructions.enumerated() where i.kind == .matmul {
                let places = (a: place(i.a), b: place(i.b), y: place(i.y))
                if places.a.slot >= 0 || places.b.slot >= 0 || places.y.slot >= 0 { matmuls[k] = places }
            }
            boundMatmuls = matmuls
            self.library = library
            self.functions = UnsafeBufferPointer(owning: functions)
            self.start = UnsafeBufferPointer(owning: start)
            self.end = UnsafeBufferPointer(owning: end)
            self.chunked = UnsafeBufferPointer(owning: chunked)
            self.chunkedEnd = UnsafeBufferPointer(owning: chunkedEnd)
            self.chunkedReach = UnsafeBufferPointer(owning: chunkedReach)
            self.chunkedElements = UnsafeBufferPointer(owning: chunkedElements)
        }

        deinit {
            functions.deallocate()
            start.deallocate()
            end.deallocate()
            chunked.deallocate()
            chunkedEnd.deallocate()
            chunkedReach.deallocate()
            chunkedElements.deallocate()
        }
    }

    private let cache = Lock<[FreeFrame]>([])

    /// A frame's memory waiting for reuse. `@unchecked Sendable`: the program owns the block and
    /// hands it to one frame at a time, under `cache`'s lock.
    struct FreeFrame: @unchecked Sendable {
        let base: UnsafeMutableRawPointer
        let capacity: Int
    }
    /// Frames kept for reuse after they are released.
    static let cachedFrameLimit = 32

    /// Compiles `graph` with its captures' values.
    ///
    /// - Parameters:
    ///   - graph: The graph, verified.
    ///   - captures: The values of the graph's captured inputs.
    ///   - order: The node indices to run, in order (default: all, in graph order). Nodes not
    ///     listed are not run; every node's inputs must be computed earlier in `order` or be graph
    ///     inputs.
    ///   - boundary: A position in `order` after which the program may be re-run (see the type's
    ///     discussion).
    ///   - native: Whether to compile runs of arithmetic instructions to machine code with the
    ///     system's C compiler (see ``NativeCode``); results are the same bit for bit.
    /// - Throws: `TensorError` for a capture that is missing or has the wrong type, a node with
    ///   other than one output, or an order that reads a value before it is computed;
    ///   ``NativeCodeError`` (or `PersistenceError` for the library cache) under
    ///   ``NativeCode/required`` when machine code cannot be made.
    package convenience init(_ graph: Graph, captures: [ValueID: Tensor], order: [Int]? = nil, boundary: Int? = nil,
                            native: NativeCode = .off) throws {
        try self.init(graph, captures: captures, order: order, boundaries: boundary.map { [$0] } ?? [], native: native)
    }

    /// Compiles `graph` with several boundaries: the part after each can be re-run on its own
    /// (``init(_:captures:order:boundary:native:)`` is the one-boundary case). `outputsApart`:
    /// the outputs get bytes no other value has (`ProgramPlanner.outputsApart`), so that a caller
    /// may have runs write them in place.
    package convenience init(_ graph: Graph, captures: [ValueID: Tensor], order: [Int]?, boundaries: [Int], native: NativeCode = .off,
                             outputsApart: Bool = false) throws {
        var planner = ProgramPlanner(graph: graph, captures: captures, order: order ?? Array(graph.nodes.indices), boundaries: boundaries)
        planner.outputsApart = outputsApart
        try self.init(planning: planner, native: native)
    }

    init(planning planner: ProgramPlanner, native mode: NativeCode = .off) throws {
        let plan = try planner.plan()
        // Everything that can throw comes first: the memory owned below is freed by `deinit`, which
        // does not run for an initializer that throws.
        var statistics = plan.statistics
        var native: NativeSegments?, failure: String?
        if mode != .off {
            do {
                var generator = NativeCodeGenerator(instructions: plan.instructions, tables: plan.tables, lastReaders: plan.lastReaders)
                // A run may not cross a boundary: the part after it is run on its own.
                let splits = Set(planner.boundaries.map { plan.instructionStart[$0] })
                let segments = generator.segments(splits: splits), chunked = generator.chunkedSegments(splits: splits)
                if !segments.isEmpty || !chunked.isEmpty, let compiler = try mode.resolve() {
                    let fusion = generator.fusion(chunked, splits: splits)
                    let bound = Self.boundRegions(plan, chunked: chunked, generator: generator)
                    generator.bound = bound.map { ($0.offset, $0.bytes) }
                    let library = try compiler.library(generator.source(segments, chunked: chunked, fusion: fusion))
                    // Plain runs by their index, chunked runs as -2 - their index (the two never
                    // share an instruction: chunked instructions are larger than plain ones may be).
                    var start = [Int32](repeating: -1, count: plan.instructions.count)
                    for (k, segment) in segments.enumerated() { start[segment.lowerBound] = Int32(k) }
                    for (k, run) in chunked.enumerated() { start[run.lowerBound] = Int32(-2 - k) }
                    native = NativeSegments(library: library, functions: try segments.indices.map { try library.function(NativeCodeGenerator.functionName($0)) },
                                            start: start, end: segments.map(\.upperBound),
                                            chunked: try chunked.indices.map { try library.chunkedFunction(NativeCodeGenerator.chunkedFunctionName($0)) },
                                            chunkedEnd: chunked.map(\.upperBound), chunkedReach: fusion.reach, bound: bound,
                                            instructions: plan.instructions,
                                            chunkedElements: chunked.map { plan.instructions[$0.lowerBound].n },
                                            chunkedReductions: chunked.map { run in
                                                generator.fusedReductions(run).map { r in
                                                    let i = plan.instructions[r.instruction]
                                                    return FusedReduction(y: i.y, float64: i.float64, mean: i.op == .mean, extent: i.extent, partials: r.partials)
                                                }
                                            },
                                            runs: chunked, segments: segments, splits: splits, lastReaders: plan.lastReaders)
                    statistics.nativeInstructions = (segments + chunked).reduce(0) { $0 + $1.count }
                    statistics.chunkedInstructions = chunked.reduce(0) { $0 + $1.count }
                }
            } catch {
                if mode != .automatic { throw error }
                failure = "\(error)"
            }
        }
        instructions = UnsafeBufferPointer(owning: plan.instructions)
        tables = UnsafeBufferPointer(owning: plan.tables)
        fallbacks = plan.fallbacks
        products = plan.products
        instructionStart = plan.instructionStart
        prefixEnds = plan.prefixEnds
        crossings = plan.crossings
        arguments = plan.arguments
        outputs = plan.outputs
        argumentPlaces = UnsafeBufferPointer(owning: plan.arguments.map { ($0.offset, $0.type.byteCount) })
        outputPlaces = UnsafeBufferPointer(owning: plan.outputs.map { ($0.offset, $0.type.byteCount) })
        constantImage = plan.constantImage
        hasReductions = plan.instructions.contains { $0.kind == .reduce }
        self.native = native
        self.nativeCodeFailure = failure
        self.statistics = statistics
    }

    deinit {
        for frame in cache.withLock({ $0 }) { StoragePool.shared.deallocate(frame.base, capacity: frame.capacity) }
        instructions.deallocate()
        tables.deallocate()
        argumentPlaces.deallocate()
        outputPlaces.deallocate()
    }

    /// Positions in the compiled order (`run(_:in:)` takes a range of them).
    public var positions: Range<Int> { 0..<(instructionStart.count - 1) }
    /// The graph's argument inputs, in order.
    public var argumentTypes: [ValueType] { arguments.map(\.type) }
    /// The graph's outputs, in order.
    public var outputTypes: [ValueType] { outputs.map(\.type) }

    /// Memory for one execution. Returned to the program when released.
    // @unchecked Sendable: a frame is used by one run at a time; passing it to another thread hands
    // it over.
    public final class Frame: @unchecked Sendable {
        let program: CompiledProgram
        let base: UnsafeMutableRawPointer
        let capacity: Int

        init(program: CompiledProgram, base: UnsafeMutableRawPointer, capacity: Int) {
            self.program = program
            self.base = base
            self.capacity = capacity
        }

        deinit { program.recycle(base, capacity) }
    }

    /// A frame with the captures in place (from the cache when one is free).
    public func makeFrame() -> Frame {
        if let free = cache.withLock({ $0.popLast() }) { return Frame(program: self, base: free.base, capacity: free.capacity) }
        let (p, capacity) = StoragePool.shared.allocate(byteCount: Swift.max(statistics.frameBytes, 1))
        constantImage.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return Frame(program: self, base: p, capacity: capacity)
    }

    func recycle(_ p: UnsafeMutableRawPointer, _ capacity: Int) {
        let kept = cache.withLock { frames -> Bool in
            guard frames.count < Self.cachedFrameLimit else { return false }
            frames.append(FreeFrame(base: p, capacity: capacity))
            return true
        }
        if !kept { StoragePool.shared.deallocate(p, capacity: capacity) }
    }

    /// Copies `values` into arguments `first ..< first + values.count` of `frame`.
    ///
    /// - Throws: `TensorError.shapeMismatch(op:detail:)` naming the argument when a value's
    ///   dtype or shape differs from the compiled one.
    public func bind(_ values: [Tensor], from first: Int = 0, in frame: Frame) throws {
        guard first >= 0, first + values.count <= arguments.count else {
            throw TensorError.invalidArgument(op: "CompiledProgram.bind", detail: "arguments \(first)..<\(first + values.count) of a program with \(arguments.count)")
        }
        for (k, value) in values.enumerated() { try bind(value, at: first + k, in: frame) }
    }

    /// Copies `value` into argument `index` of `frame`.
    ///
    /// - Throws: `TensorError.shapeMismatch(op:detail:)` naming the argument when the value's
    ///   dtype or shape differs from the compiled one.
    public func bind(_ value: Tensor, at index: Int, in frame: Frame) throws {
        guard arguments.indices.contains(index) else {
            throw TensorError.invalidArgument(op: "CompiledProgram.bind", detail: "argument \(index) of a program with \(arguments.count)")
        }
        let argument = arguments[index]
        guard value.dtype == argument.type.dtype, value.shape == argument.type.shape else {
            throw TensorError.shapeMismatch(op: "CompiledProgram.bind", detail: "argument \(index) was compiled as \(argument.type), got \(value.valueType)")
        }
        (frame.base + argument.offset).copyMemory(from: value.rawPointer, byteCount: argument.type.byteCount)
    }

    /// Copies an argument's bytes (exactly its compiled size) from `source` into argument `index`.
    package func bind(bytes source: UnsafeRawPointer, count: Int, at index: Int, in frame: Frame) throws {
        guard argumentPlaces.indices.contains(index), argumentPlaces[index].bytes == count else {
            throw TensorError.shapeMismatch(op: "CompiledProgram.bind", detail: "\(count) bytes for argument \(index) of \(arguments.count)"
                                            + (arguments.indices.contains(index) ? " (compiled as \(arguments[index].type))" : ""))
        }
        (frame.base + argumentPlaces[index].offset).copyMemory(from: source, byteCount: count)
    }

    /// Copies `count` bytes from `source`, the arguments `range` laid out back to back in order,
    /// into those arguments (one call for a packed collection of tensors).
    ///
    /// - Throws: `TensorError.shapeMismatch(op:detail:)` when `count` is not the arguments'
    ///   total size, `TensorError.invalidArgument(op:detail:)` for a range outside the arguments.
    package func bind(packed source: UnsafeRawPointer, count: Int, arguments range: Range<Int>, in frame: Frame) throws {
        guard range.lowerBound >= 0, range.upperBound <= argumentPlaces.count else {
            throw TensorError.invalidArgument(op: "CompiledProgram.bind", detail: "arguments \(range) of a program with \(argumentPlaces.count)")
        }
        var offset = 0
        for place in argumentPlaces[range] { offset += place.bytes }
        guard offset == count else {
            throw TensorError.shapeMismatch(op: "CompiledProgram.bind", detail: "\(count) bytes for arguments \(range), which take \(offset)")
        }
        offset = 0
        for place in argumentPlaces[range] {
            Self.copy(place.bytes, from: source + offset, to: frame.base + place.offset)
            offset += place.bytes
        }
    }

    /// Copies `count` bytes: a single float64 or float32 (the elements of small states) without a
    /// call to `memcpy`.
    @inline(__always)
    static func copy(_ count: Int, from source: UnsafeRawPointer, to destination: UnsafeMutableRawPointer) {
        switch count {
        case 8: destination.storeBytes(of: source.loadUnaligned(as: UInt64.self), as: UInt64.self)
        case 4: destination.storeBytes(of: source.loadUnaligned(as: UInt32.self), as: UInt32.self)
        default: destination.copyMemory(from: source, byteCount: count)
        }
    }

    /// Copies outputs `range` out of `frame` to `destination`, back to back in order.
    package func copyOutputs(_ range: Range<Int>, packedTo destination: UnsafeMutableRawPointer, in frame: Frame) {
        precondition(range.lowerBound >= 0 && range.upperBound <= outputPlaces.count, "outputs \(range) of a program with \(outputPlaces.count)")
        var offset = 0
        for place in outputPlaces[range] {
            Self.copy(place.bytes, from: frame.base + place.offset, to: destination + offset)
            offset += place.bytes
        }
    }

    /// Copies output `index`'s bytes out of `frame` to `destination`.
    package func copyOutput(_ index: Int, to destination: UnsafeMutableRawPointer, in frame: Frame) {
        precondition(outputPlaces.indices.contains(index), "output \(index) of a program with \(outputPlaces.count)")
        let place = outputPlaces[index]
        destination.copyMemory(from: frame.base + place.offset, byteCount: place.bytes)
    }

    /// Copies into `destination` what the positions from `position` on read of `source` that was
    /// there before them: the arguments and every value computed at a position before `position`
    /// (the captures are the same in every frame and are not copied). A frame that ran positions
    /// `0..<position` thereby prepares another to run from `position` on with the same results,
    /// bit for bit, without running them again. Everything live across `position` lies in the
    /// frame's first ``prefixByteCount(before:)`` bytes; bytes there that later positions reuse are
    /// copied too and overwritten before they are read.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for a frame of another program or a
    ///   position outside `0...positions.count`.
    package func copyPrefix(before position: Int, from source: Frame, into destination: Frame) throws {
        guard source.program === self, destination.program === self else {
            throw TensorError.invalidArgument(op: "CompiledProgram.copyPrefix", detail: "a frame belongs to another program")
        }
        // The captures come first and are the same in every frame.
        let start = constantImage.count, end = try prefixByteCount(before: position)
        guard source !== destination, end > start else { return }
        (destination.base + start).copyMemory(from: source.base + start, byteCount: end - start)
    }

    /// The end of the frame bytes ``copyPrefix(before:from:into:)`` copies for `position` (it
    /// starts after the captures).
    package func prefixByteCount(before position: Int) throws -> Int {
        guard prefixEnds.indices.contains(position) else {
            throw TensorError.invalidArgument(op: "CompiledProgram.copyPrefix", detail: "position \(position) outside 0...\(prefixEnds.count - 1)")
        }
        return prefixEnds[position]
    }

    /// The frame bytes a run from `boundary` on reads that a run of `start..<boundary` wrote or
    /// that `arguments` were bound to: the regions of the values those positions compute and later
    /// positions read, and of the listed arguments that later positions read, as
    /// `(offset, bytes)`, sorted, adjacent ones merged. With them, the other arguments the run
    /// reads (``reads(argument:after:)``), the captures and the frame's first
    /// ``prefixByteCount(before:)`` bytes for `start`, a frame holds everything a run from
    /// `boundary` reads before writing it: a caller can keep these bytes of each run of
    /// `start..<boundary` and put them back into one frame to run from `boundary` on, with the
    /// same results bit for bit, instead of keeping a frame per run.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` when `boundary` is not one of the
    ///   program's boundaries, `start` is after it, or an argument index is out of range.
    package func carriedRegions(from start: Int, across boundary: Int, arguments chosen: [Int]) throws -> [(offset: Int, bytes: Int)] {
        let op = "CompiledProgram.carriedRegions"
        let crossing = try crossings(at: boundary, op: op)
        guard (0...boundary).contains(start) else { throw TensorError.invalidArgument(op: op, detail: "start \(start) outside 0...\(boundary)") }
        for k in chosen where !arguments.indices.contains(k) {
            throw TensorError.invalidArgument(op: op, detail: "argument \(k) of \(arguments.count)")
        }
        let regions = crossing.filter { c in c.argument.map(chosen.contains) ?? (c.computedAt >= start) }.map { (offset: $0.offset, bytes: $0.bytes) }
        var merged: [(offset: Int, bytes: Int)] = []
        for r in regions.sorted(by: { $0.offset < $1.offset }) where r.bytes > 0 {
            if let last = merged.last, r.offset <= last.offset + last.bytes {
                merged[merged.count - 1].bytes = Swift.max(last.bytes, r.offset + r.bytes - last.offset)
            } else {
                merged.append(r)
            }
        }
        return merged
    }

    /// Whether a position from `boundary` on reads argument `index`.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` when `boundary` is not one of the
    ///   program's boundaries or `index` is out of range.
    package func reads(argument index: Int, after boundary: Int) throws -> Bool {
        let op = "CompiledProgram.reads"
        guard arguments.indices.contains(index) else { throw TensorError.invalidArgument(op: op, detail: "argument \(index) of \(arguments.count)") }
        return try crossings(at: boundary, op: op).contains { $0.argument == index }
    }

    private func crossings(at boundary: Int, op: String) throws -> [Crossing] {
        guard let crossing = crossings[boundary] else {
            throw TensorError.invalidArgument(op: op, detail: "\(boundary) is not a boundary of this program (\(crossings.keys.sorted()))")
        }
        return crossing
    }

    /// Copies `regions` of `frame` (from ``carriedRegions(from:across:arguments:)``), one after
    /// another, to `destination`, which has room for their total.
    package func copy(_ regions: [(offset: Int, bytes: Int)], of frame: Frame, to destination: UnsafeMutableRawPointer) {
        precondition(frame.program === self, "a frame of another program")
        var at = 0
        for region in regions {
            (destination + at).copyMemory(from: frame.base + region.offset, byteCount: region.bytes)
            at += region.bytes
        }
    }

    /// Copies the bytes at `source`, one region after another, back into `regions` of `frame`
    /// (the inverse of ``copy(_:of:to:)``).
    package func copy(_ regions: [(offset: Int, bytes: Int)], from source: UnsafeRawPointer, into frame: Frame) {
        precondition(frame.program === self, "a frame of another program")
        var at = 0
        for region in regions {
            (frame.base + region.offset).copyMemory(from: source + at, byteCount: region.bytes)
            at += region.bytes
        }
    }

    /// Sets arguments `range` of `frame` to zero.
    package func bindZeros(_ range: Range<Int>, in frame: Frame) {
        for argument in arguments[range] { (frame.base + argument.offset).initializeMemory(as: UInt8.self, repeating: 0, count: argument.type.byteCount) }
    }

    /// Output `index` of the graph as a new tensor (a copy out of `frame`).
    public func output(_ index: Int, in frame: Frame) -> Tensor {
        let operand = outputs[index]
        let t = Tensor(uninitialized: operand.type.shape, dtype: operand.type.dtype)
        t.rawPointer.copyMemory(from: frame.base + operand.offset, byteCount: operand.type.byteCount)
        return t
    }

    /// Output `index` of the graph, a single float64 or float32 element, as a `Double`.
    public func scalarOutput(_ index: Int, in frame: Frame) throws -> Double {
        let operand = outputs[index]
        guard operand.type.shape.reduce(1, *) == 1, operand.type.dtype.isComputeFloat else {
            throw TensorError.invalidArgument(op: "CompiledProgram.scalarOutput", detail: "output \(index) is \(operand.type), not one float")
        }
        let p = frame.base + operand.offset
        return operand.type.dtype == .float64 ? p.load(as: Double.self) : Double(p.load(as: Float.self))
    }

    /// Runs the operators at `positions` of the compiled order on `frame`.
    ///
    /// Interpreter levels (recording, anomaly checks, timers, resource limits) do not see these
    /// operators: a compiled program is already the recorded form.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for a frame of another program or
    ///   positions outside ``positions``, and whatever an operator run through the ordinary kernels throws.
    public func run(_ positions: Range<Int>, in frame: Frame) throws {
        guard frame.program === self else {
            throw TensorError.invalidArgument(op: "CompiledProgram.run", detail: "the frame belongs to another program")
        }
        guard positions.lowerBound >= 0, positions.upperBound < instructionStart.count else {
            throw TensorError.invalidArgument(op: "CompiledProgram.run", detail: "positions \(positions) outside 0..<\(instructionStart.count - 1)")
        }
        try execute(instructionStart[positions.lowerBound]..<instructionStart[positions.upperBound], frame.base)
    }

    /// Positions prepared to be run again and again — the per-step part of an unrolled step: their
    /// instructions are looked up once, and when one machine-code function covers them all, a run
    /// of them is that one call (under the thread's plain arithmetic; otherwise the instructions
    /// run as `run(_:in:)` runs them).
    package struct PreparedRun: Sendable {
        /// The positions prepared.
        package let positions: Range<Int>
        let program: Int
        let instructions: Range<Int>
        let function: NativeLibrary.Segment?
    }

    /// `positions` prepared for `run(_:in:)-(PreparedRun,_)`.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for positions outside ``positions``.
    package func prepare(_ positions: Range<Int>) throws -> PreparedRun {
        guard positions.lowerBound >= 0, positions.upperBound < instructionStart.count else {
            throw TensorError.invalidArgument(op: "CompiledProgram.prepare", detail: "positions \(positions) outside 0..<\(instructionStart.count - 1)")
        }
        let instructions = instructionStart[positions.lowerBound]..<instructionStart[positions.upperBound]
        var function: NativeLibrary.Segment?
        if let native, !instructions.isEmpty {
            let s = Int(native.start[instructions.lowerBound])
            if s >= 0, native.end[s] == instructions.upperBound { function = native.functions[s] }
        }
        return PreparedRun(positions: positions, program: serial, instructions: instructions, function: function)
    }

    /// Runs prepared positions on `frame`: the same as ``run(_:in:)-(Range<Int>,_)`` with `prepared.positions`.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for a frame or prepared positions of
    ///   another program, and whatever an operator run through the ordinary kernels throws.
    package func run(_ prepared: PreparedRun, in frame: Frame) throws {
        guard frame.program === self, prepared.program == serial else {
            throw TensorError.invalidArgument(op: "CompiledProgram.run", detail: frame.program === self ? "the prepared positions belong to another program"
                                                                                                        : "the frame belongs to another program")
        }
        if let function = prepared.function, NumericSettings.arithmeticIsPlain {
            function(frame.base)
            return
        }
        try execute(prepared.instructions, frame.base)
    }

    /// Binds `arguments`, runs the whole program and returns its outputs.
    ///
    /// With native code, an argument or output that only chunked runs read or write is not
    /// copied: the runs read the argument's memory and write a new output tensor's memory in
    /// place of the frame's region.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` unless there is one tensor per
    ///   argument, `TensorError.shapeMismatch(op:detail:)` naming an argument of another dtype or
    ///   shape, and whatever an operator run through the ordinary kernels throws.
    public func callAsFunction(_ arguments: [Tensor]) throws -> [Tensor] {
        guard arguments.count == self.arguments.count else {
            throw TensorError.invalidArgument(op: "CompiledProgram", detail: "called with \(arguments.count) arguments; the program takes \(self.arguments.count)")
        }
        let frame = makeFrame()
        guard let native, !native.bound.isEmpty, runsNatively else {
            try bind(arguments, in: frame)
            try run(positions, in: frame)
            return outputs.indices.map { output($0, in: frame) }
        }
        var result = [Tensor?](repeating: nil, count: outputs.count)
        try withUnsafeTemporaryAllocation(of: UnsafeMutableRawPointer?.self, capacity: native.bound.count) { pointers in
            pointers.initialize(repeating: nil)
            for (j, region) in native.bound.enumerated() {
                if let a = region.argument {
                    let argument = self.arguments[a]
                    guard arguments[a].dtype == argument.type.dtype, arguments[a].shape == argument.type.shape else {
                        throw TensorError.shapeMismatch(op: "CompiledProgram.bind", detail: "argument \(a) was compiled as \(argument.type), got \(arguments[a].valueType)")
                    }
                    pointers[j] = arguments[a].rawPointer
                } else if let o = region.output {
                    let t = Tensor(uninitialized: outputs[o].type.shape, dtype: outputs[o].type.dtype)
                    pointers[j] = t.rawPointer
                    result[o] = t
                }
            }
            for (k, value) in arguments.enumerated() where !native.bound.contains(where: { $0.argument == k }) {
                try bind(value, at: k, in: frame)
            }
            try withExtendedLifetime(arguments) {
                try execute(instructionStart[positions.lowerBound]..<instructionStart[positions.upperBound], frame.base,
                            bound: UnsafePointer(pointers.baseAddress!))
            }
        }
        return outputs.indices.map { result[$0] ?? output($0, in: frame) }
    }

    /// The program's chunked runs as CUDA C++ kernels (`NativeCodeGenerator.cudaSource(segments:chunked:fusion:reductions:)`),
    /// for ``NVRTC``; nil without kernels. `segments`: plain runs too, as
    /// one-block kernels (what `DeviceProgram` runs: ``deviceSegments``); `reductions`:
    /// reductions over axes no run holds, a kernel each; `elementwise`: elementwise instructions
    /// no run holds, a kernel each; `interpreted`: instructions the CPU interprets that have a
    /// device kernel (`NativeCodeGenerator.interpretedKernel(_:_:)`), a kernel each, with its index
    /// check where it has one.
    package func cudaSource(segments: [Range<Int>] = [], reductions: [Int] = [], elementwise: [Int] = [], interpreted: [Int] = []) -> String? {
        // Kernels of single instructions need no native runs (a program may have none).
        let runs = native?.runs ?? []
        guard !runs.isEmpty || !segments.isEmpty || !reductions.isEmpty || !elementwise.isEmpty || !interpreted.isEmpty else { return nil }
        let generator = kernelGenerator
        return generator.cudaSource(segments: segments, chunked: runs, fusion: generator.fusion(runs, splits: native?.splits ?? []),
                                    reductions: reductions, elementwise: elementwise)
            + interpreted.map { NativeCodeGenerator.cudaInterpreted(fallbacks[$0], $0) }.joined()
    }

    /// The kernels of instructions `direct` on their operands' and result's addresses
    /// (`adjoint_direct_<k>`, for a program run with no frame), and nothing else (nil: none):
    /// elementwise ones without folded gathers, broadcasting through strides
    /// (`NativeCodeGenerator.cudaElementwise(_:direct:broadcast:shape:)`), reductions
    /// (`NativeCodeGenerator.cudaReduction(_:direct:)`) and interpreted ones, or layout operators
    /// the planner made gathers, as their operators' kernels
    /// (`NativeCodeGenerator.cudaInterpreted(_:_:direct:)`). (A direct kernel's helper functions
    /// have the names of its frame form's, so the two forms are separate sources.)
    package func cudaSource(direct: [Int]) -> String? {
        guard !direct.isEmpty else { return nil }
        let generator = kernelGenerator
        return NativeCodeGenerator.cudaPrelude + direct.map { k in
            switch instructions[k].kind {
            case .reduce: generator.cudaReduction(k, direct: true)
            case .fallback, .gather: NativeCodeGenerator.cudaInterpreted(fallbacks[k], k, direct: true)
            default: generator.cudaElementwise(k, direct: true, broadcast: fallbacks[k].inputs.map(\.type.shape), shape: fallbacks[k].output.type.shape)
            }
        }.joined()
    }

    /// A code generator over the program's instructions and tables.
    private var kernelGenerator: NativeCodeGenerator {
        var generator = NativeCodeGenerator(instructions: Array(instructions), tables: Array(tables), lastReaders: native?.lastReaders ?? [])
        generator.bound = native?.bound.map { ($0.offset, $0.bytes) } ?? []
        return generator
    }

    /// The plain runs with the instructions of chunked runs taken out: what runs between the
    /// chunked runs when the whole program runs in order. (A plain run may hold a chunked run's
    /// last instructions — a fused reduction is a plain instruction too — and the CPU, entering
    /// it there, interprets the rest one by one; a device has no interpreter, so it gets each
    /// remainder as a run of its own.)
    package var deviceSegments: [Range<Int>] {
        guard let native else { return [] }
        var inRun = [Bool](repeating: false, count: instructions.count)
        for run in native.runs { for k in run { inRun[k] = true } }
        var result: [Range<Int>] = []
        for segment in native.segments {
            var start: Int?
            for k in segment {
                if inRun[k] { if let s = start { result.append(s..<k); start = nil } }
                else if start == nil { start = k }
            }
            if let s = start { result.append(s..<segment.upperBound) }
        }
        return result.sorted { $0.lowerBound < $1.lowerBound }
    }

    /// Whether the chunked runs' machine code runs under the current settings: arithmetic is
    /// plain (no float64 debugging, no mixed-precision storage) and, where runs take in
    /// reductions, the determinism policy is ``DeterminismPolicy/strict`` (whose blocks and tree
    /// they sum in). Otherwise the interpreter runs the program, reading everything in the frame.
    package var runsNatively: Bool {
        guard let native else { return false }
        return NumericSettings.arithmeticIsPlain && (!native.fusesReductions || ExecutionPolicy.current.determinism == .strict)
    }

    /// How many pointers ``run(_:in:bound:)`` takes (0 without native code or bound regions).
    package var boundCount: Int { native?.bound.count ?? 0 }

    /// The pointer slot of argument `index` or of output `index`, when the generated code reads
    /// and writes it through a pointer a caller may pass (nil: only in the frame).
    package func boundSlot(argument index: Int) -> Int? { native?.bound.firstIndex { $0.argument == index } }
    package func boundSlot(output index: Int) -> Int? { native?.bound.firstIndex { $0.output == index } }

    /// Runs prepared positions with `bound` (``boundCount`` pointers) in place of the regions the
    /// generated code reads and writes through them (null: the frame's). Only where the native
    /// runs run (``runsNatively``): otherwise the interpreter reads the frame, and the caller
    /// binds by copying.
    package func run(_ prepared: PreparedRun, in frame: Frame, bound: UnsafePointer<UnsafeMutableRawPointer?>) throws {
        guard frame.program === self, prepared.program == serial else {
            throw TensorError.invalidArgument(op: "CompiledProgram.run", detail: frame.program === self ? "the prepared positions belong to another program"
                                                                                                        : "the frame belongs to another program")
        }
        precondition(runsNatively, "bound pointers under settings the native runs step aside for")
        try execute(prepared.instructions, frame.base, bound: bound)
    }

    /// An argument or output that only chunked runs touch: bound in place of its frame region.
    struct BoundRegion {
        var offset: Int, bytes: Int
        var argument: Int?, output: Int?
    }

    /// The arguments and outputs whose frame regions no instruction outside `chunked` reads or
    /// writes (through its operands, tables included) but matmuls (which the executor hands the
    /// bound addresses), that no chunked instruction or matmul writes (for arguments) or reads or
    /// writes beyond their bounds (an output that is part of a value), and
    /// that overlap no capture, no other argument or output: a call may hand
    /// the chunked runs a tensor's memory for them instead of copying (the generated code reads
    /// and writes them through `bound[j]` when it is not null).
    static func boundRegions(_ plan: ProgramPlanner.Plan, chunked: [Range<Int>], generator: NativeCodeGenerator) -> [BoundRegion] {
        var inRun = [Bool](repeating: false, count: plan.instructions.count)
        for run in chunked { for k in run { inRun[k] = true } }
        func bytes(_ operand: Operand) -> Range<Int> {
            guard operand.table >= 0 else { return operand.offset..<(operand.offset + operand.type.byteCount) }
            let size = operand.type.dtype.byteSize, n = operand.type.elementCount
            let read: ClosedRange<Int>?
            if operand.compact {
                read = AffineTable(plan.tables[operand.table..<(operand.table + AffineTable.width)]).readRange(count: n)
            } else {
                let entries = plan.tables[operand.table..<(operand.table + n)].filter { $0 >= 0 }
                read = entries.min().flatMap { low in entries.max().map { low...$0 } }
            }
            guard let read else { return 0..<0 }
            return (read.lowerBound * size)..<((read.upperBound + 1) * size)
        }
        // What instructions outside the runs touch, what the runs write, and what they read or
        // write (each through a pointer to the start of the region).
        var touched: [Range<Int>] = [0..<plan.constantImage.count], written: [Range<Int>] = [], accessed: [Range<Int>] = []
        for k in plan.instructions.indices {
            if inRun[k], plan.instructions[k].kind == .reduce {
                // A fused reduction: `execute` writes its result to the frame after the run.
                accessed += generator.reads(plan.instructions[k]).map { $0.offset..<($0.offset + $0.bytes) }
                touched.append(plan.instructions[k].y..<(plan.instructions[k].y + (plan.instructions[k].float64 ? 8 : 4)))
            } else if inRun[k] {
                let w = NativeCodeGenerator.write(plan.instructions[k])
                written.append(w.offset..<(w.offset + w.bytes))
                accessed += (generator.reads(plan.instructions[k]).flatMap(\.footprint) + [w]).map { $0.offset..<($0.offset + $0.bytes) }
            } else if plan.instructions[k].kind == .matmul, plan.fallbacks[k].inputs.allSatisfy({ $0.table < 0 }) {
                // A matmul takes each operand by its start address (``execute`` resolves bound ones).
                let operands = plan.fallbacks[k].inputs.map(bytes), y = bytes(plan.fallbacks[k].output)
                written.append(y)
                accessed += operands + [y]
            } else {
                touched += plan.fallbacks[k].inputs.map(bytes) + [bytes(plan.fallbacks[k].output)]
            }
        }
        let candidates = plan.arguments.enumerated().map { BoundRegion(offset: $1.offset, bytes: $1.type.byteCount, argument: $0, output: nil) }
            + plan.outputs.enumerated().map { BoundRegion(offset: $1.offset, bytes: $1.type.byteCount, argument: nil, output: $0) }
        return candidates.enumerated().filter { j, c in
            let range = c.offset..<(c.offset + c.bytes)
            guard !range.isEmpty, !touched.contains(where: { $0.overlaps(range) }) else { return false }
            // A run reaching into the region from outside it (a value the region is part of)
            // would read or write the frame there.
            if accessed.contains(where: { $0.overlaps(range) && !($0.lowerBound >= range.lowerBound && $0.upperBound <= range.upperBound) }) { return false }
            if c.argument != nil, written.contains(where: { $0.overlaps(range) }) { return false }
            return !candidates.enumerated().contains { i, other in i != j && (other.offset..<(other.offset + other.bytes)).overlaps(range) }
        }.map(\.element)
    }
}

extension UnsafeBufferPointer {
    /// A copy of `array` in new memory, which the caller deallocates (the elements are trivial).
    init(owning array: [Element]) {
        precondition(_isPOD(Element.self), "UnsafeBufferPointer(owning:) holds trivial elements only")
        let memory = UnsafeMutableBufferPointer<Element>.allocate(capacity: Swift.max(array.count, 1))
        _ = memory.initialize(from: array)
        self.init(start: memory.baseAddress, count: array.count)
    }
}
