import AdjointTensor

/// Why a compiled function cannot run on a device.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    /// The device cannot be used here: no CUDA driver or NVRTC (both are loaded at run time), or
    /// no such GPU. The reason names what was tried.
    case unavailable(device: Device, reason: String)
    /// An instruction with no device form: one that is not a valid call of its operator (every
    /// operator the CPU's kernels take has a device form), as a graph read from a forged file may
    /// hold. The program is refused before anything runs; the CPU's interpreter throws its own
    /// error when it reaches the instruction. Its position in the program and what it is.
    case noDeviceForm(instruction: Int, operation: String)

    public var description: String {
        switch self {
        case let .unavailable(device, reason): return "device \(device) is unavailable: \(reason)"
        case let .noDeviceForm(k, operation): return "instruction \(k) (\(operation)) has no device form"
        }
    }
}

/// The process's devices: a CUDA GPU's memory pool and tensors, made on first use (NVRTC and the
/// driver loaded) and kept; a failure is kept too, so every use reports the same error. Tests and
/// the GPU check's emulation install a device of their own under another ordinal.
package enum DeviceRuntime {
    private static let cuda = Lock<Result<DeviceMemoryPool, DeviceError>?>(nil)
    private static let tensors = Lock<[Device: DeviceTensors]>([:])

    /// Makes `pool`'s device the process's `device` (replacing one installed before; never
    /// GPU 0 once it was used) and returns its tensors.
    package static func install(_ pool: DeviceMemoryPool, as device: Device) -> DeviceTensors {
        let made = DeviceTensors(device: device, pool: pool)
        tensors.withLock { $0[device] = made }
        DeviceBackends.register(made)
        return made
    }

    /// The tensors of `device` (registered as its ``DeviceBackend``).
    ///
    /// - Throws: as ``pool(for:)``.
    package static func tensors(for device: Device) throws -> DeviceTensors {
        if let installed = tensors.withLock({ $0[device] }) { return installed }
        let pool = try pool(for: device)
        return tensors.withLock { installed in
            if let earlier = installed[device] { return earlier }
            let made = DeviceTensors(device: device, pool: pool)
            installed[device] = made
            DeviceBackends.register(made)
            return made
        }
    }

    /// The memory pool (and so the kernel device) of `device`.
    ///
    /// - Throws: ``DeviceError/unavailable(device:reason:)`` for the CPU, a GPU other than 0, or
    ///   where NVRTC or the CUDA driver cannot be loaded.
    package static func pool(for device: Device) throws -> DeviceMemoryPool {
        if let installed = tensors.withLock({ $0[device] }) { return installed.pool }
        guard device.kind == .cuda else { throw DeviceError.unavailable(device: device, reason: "compiled functions run on the CPU without a device") }
        guard device.ordinal == 0 else { throw DeviceError.unavailable(device: device, reason: "only GPU 0 is used") }
        let result = cuda.withLock { cached -> Result<DeviceMemoryPool, DeviceError> in
            if let cached { return cached }
            let made: Result<DeviceMemoryPool, DeviceError>
            do {
                let nvrtc = try NVRTC.load(), driver = try CUDADriver.load()
                made = .success(DeviceMemoryPool(device: CUDAKernelDevice(nvrtc: nvrtc, driver: driver)))
            } catch {
                made = .failure(.unavailable(device: device, reason: "\(error)"))
            }
            cached = made
            return made
        }
        return try result.get()
    }
}

/// A compiled program run whole on a device: its frame lives in device memory from a
/// ``DeviceMemoryPool`` (the constants put there once), each call copies the arguments in, runs
/// every instruction there and copies the outputs back — all of it on the program's stream, in
/// order and asynchronously to the host, until the call waits for the stream at its end.
///
/// The instructions run as the native code's runs do on the CPU, in program order: each plain
/// run (without the chunked runs' instructions: ``CompiledProgram/deviceSegments``) as a
/// kernel one block of threads runs (`adjoint_segment_<k>`: each instruction's elements dealt
/// out over the threads, a barrier between instructions), each chunked run as a kernel over its
/// elements, and where the run takes in sums or means, a kernel summing each 2¹⁵-element chunk
/// pairwise into its partial and a one-thread kernel combining the partials in ``Summation``'s
/// strict tree (and dividing for a mean) into the frame — so later runs read the result on the
/// device. A sum, mean, maximum, minimum or log-sum-exp over axes that no run holds is a kernel
/// of its own, one thread per output element, in the CPU's strict order
/// (`NativeCodeGenerator.cudaReduction(_:direct:)`), over axes that are not one run too (read
/// through strides in the order the CPU's permuted copy has), and a sum or mean along a long
/// contiguous axis two kernels that split each row's pairwise tree over threads
/// (`NativeCodeGenerator.sumSplit(_:)`); so is an elementwise instruction no run holds (a broadcast too large for a plain run), one thread per element, its index tables
/// copied to the device with the program, or, when they are compact, their rules in its source
/// (`NativeCodeGenerator.cudaElementwise(_:direct:)`); so is a layout operator on elements the
/// planner does not alias or gather (integers, bools, 16-bit floats), one thread per element
/// copied as a word; so is a comparison or a `where` that the CPU
/// interprets, broadcasting through its operands' strides, a softmax or log-softmax, one
/// thread per line, a cross-entropy, one thread per example, a mean squared error, a split sum
/// (`NativeCodeGenerator.sumSplit(_:)`), a one-hot encoding, a gather with an index
/// tensor, a scatter-add (its base copied into its output first, one device copy), a cast
/// between float64, float32, float16, bfloat16, int64, int32 and bool, and an `argmax`
/// (`NativeCodeGenerator.cudaInterpreted(_:_:direct:)`) — the index operators
/// and the casts to an integer type after a one-block kernel that checks their operand, whose
/// status words a call reads back to throw the CPU's error.
/// Each matmul is one GEMM, or one batched GEMM, through ``KernelDevice/gemm(_:on:)``
/// (cuBLAS on a GPU) on the frame's regions. The results are the CPU's strict-policy results: bit
/// for bit where the arithmetic is IEEE (`+ − × ÷ √`, Adjoint's float32 tanh), within the device
/// math library's ulps elsewhere, and within rounding for matrix products (cuBLAS accumulates in
/// an order of its own). A custom operator's call runs on the host in its place in the order:
/// the stream waits for the work before it, its operands are copied out, its Swift forward runs
/// and its result is copied in (``Step/host(_:)``). Every operator the CPU's kernels take has a
/// device form; a program with an instruction that is not one of their valid calls (from a
/// forged graph) throws ``DeviceError/noDeviceForm(instruction:operation:)``.
package final class DeviceProgram {
    package let program: CompiledProgram
    package let pool: DeviceMemoryPool
    package var device: any KernelDevice { pool.device }
    /// The program's kernels (nil: it has none, only matrix products).
    private let module: (any KernelModule)?
    /// Where the program's copies and launches run.
    package let stream: any KernelStream
    /// The work of one call, in order (none where the program runs ``direct``).
    package let steps: [Step]
    /// The device memory held: the frame (or, with a frame per call, the constants' image), then
    /// (where the program has them) the reductions' operands, their partials, the index checks'
    /// status words, the batched products' address arrays, the elementwise kernels' index tables
    /// and the split sums' partials.
    private let blocks: [(address: UInt64, capacity: Int)]
    /// Whether each call takes a frame of its own from the pool (and gives it back behind its
    /// work) instead of the program holding one: the steps' frame addresses are then offsets,
    /// rebased at each launch (``Launch/frameArguments``, ``GEMM``'s operands, the batched
    /// products' address arrays, written per call).
    package let framePerCall: Bool
    /// The constants' image on the device (with a frame per call; 0: none), copied into each frame.
    private let constantsAddress: UInt64
    /// The batched products (instruction, address array), whose arrays a call with a frame of its
    /// own writes.
    private let batches: [(instruction: Int, array: UInt64)]
    /// The checks (`NativeCodeGenerator.deviceCheck(_:)`), in program order: the instruction, its
    /// operator and what it checks. Check `c` writes its three status words at
    /// `statusAddress + 24·c`.
    private let checks: [(instruction: Int, op: OpCode, check: DeviceCheck)]
    private let statusAddress: UInt64
    /// The split sums' partials (``NativeCodeGenerator/sumSplit(_:)``; 0: none), which the
    /// program holds: its calls run one after another on its stream.
    private let sumScratch: UInt64
    /// The frame the program holds (0: a frame per call).
    private let residentFrame: UInt64
    /// Where every instruction of the program reads whole arguments (or constants) and writes a
    /// whole output, and every other output is a view of an argument (an operator on device
    /// tensors that is a matrix product, elementwise arithmetic, broadcasting or not, a
    /// reduction, a layout operator or an interpreted operator, its check first; a reshape): the
    /// plan, which ``callResident(_:on:)`` runs on the arguments' device blocks into new output
    /// blocks (a view: a view of its argument's storage), with no frame and no copies
    /// (``callAsFunction(_:)`` on blocks it copies the arguments into). The module then holds the
    /// instructions' direct kernels alone, and there are no ``steps``.
    private let direct: DirectPlan?

    /// A program run where its operands and results are: its instructions, and the outputs that
    /// are views of arguments (a reshape's, a contiguous slice's: the planner's aliases).
    private struct DirectPlan {
        var steps: [Direct]
        var views: [View]
        var instructions: [Int] { steps.map(\.instruction) }
    }

    /// Output `output`: argument `argument`'s elements from `elementOffset` on.
    private struct View { let output: Int, argument: Int, elementOffset: Int }

    /// An instruction run where its operands and result are (``direct``).
    private struct Direct {
        /// Where an operand is: argument `j`, or the constants' image at an offset.
        enum Place { case argument(Int), constant(Int) }
        let instruction: Int
        let operands: [Place]
        let output: Int
        /// The threads its kernel's launch runs (none for a product, which is a GEMM).
        let threads: Int
    }

    /// One step of a call: a generated kernel, or a matrix product (cuBLAS on a GPU).
    package enum Step: Equatable, Sendable {
        case kernel(Launch)
        case gemm(GEMM)
        /// A custom operator's call, run on the host (``runOnHost(_:frame:)``): instruction `k`.
        case host(Int)
        /// A copy of `bytes` bytes within the frame, from offset `source` to `destination`.
        case copy(source: Int, destination: Int, bytes: Int)
    }

    /// One kernel launch: its name, grid and arguments.
    package struct Launch: Equatable, Sendable {
        package var kernel: String
        package var blocks: Int, threads: Int
        package var arguments: [UInt64]
        /// The arguments that are addresses in the frame (bit `i`: argument `i`), to which a launch
        /// adds the frame's base where the program takes a frame per call.
        package var frameArguments = 1
    }

    /// The kernel launches among the steps.
    package var launches: [Launch] { steps.compactMap { if case let .kernel(l) = $0 { l } else { nil } } }

    /// Threads per block of a chunked run's kernel; chunks per block of its sums kernel.
    package static let threadsPerBlock = 256, chunksPerBlock = 32

    /// Compiles `program`'s kernels for `pool`'s device and puts its frame there — or, with
    /// `framePerCall`, takes one from the pool for each call and gives it back behind the call's
    /// work, so a program kept for later holds no frame (operators on device tensors, one program
    /// per operator and thread); its work runs on `stream` (nil: a new stream of its own).
    ///
    /// - Throws: ``DeviceError/noDeviceForm(instruction:operation:)`` for an instruction that has no
    ///   device form, and the device's errors (compilation, memory).
    package init(_ program: CompiledProgram, pool: DeviceMemoryPool, stream: (any KernelStream)? = nil, framePerCall: Bool = false) throws {
        let device = pool.device
        let stream = try stream ?? device.makeStream()
        let range = program.instructionStart[program.positions.lowerBound]..<program.instructionStart[program.positions.upperBound]
        // The runs' kernels come from the native code where there is some (a C compiler, and not
        // `NativeCode.off`); without it, each instruction is a kernel of its own.
        let native = program.native
        // A program that runs direct needs none of the frame's kernels.
        let direct = framePerCall ? Self.directInstructions(program, range) : nil
        // The order of the work: the chunked runs as the CPU runs them, the plain runs without
        // the instructions chunked runs hold (``CompiledProgram/deviceSegments``), and the
        // matmuls, reductions over axes, elementwise instructions that no run holds, and the
        // interpreted instructions that have device kernels.
        let segments = program.deviceSegments
        var segmentAt: [Int: Int] = [:]
        for (j, segment) in segments.enumerated() { segmentAt[segment.lowerBound] = j }
        enum Work { case chunked(Int), segment(Int), matmul(Int), reduce(Int), elementwise(Int), interpreted(Int), host(Int) }
        var order: [Work] = []
        var k = direct == nil ? range.lowerBound : range.upperBound
        while k < range.upperBound {
            let s = native.map { Int($0.start[k]) } ?? -1, i = program.instructions[k]
            if let native, s <= -2 {
                order.append(.chunked(-2 - s))
                k = native.chunkedEnd[-2 - s]
            } else if let j = segmentAt[k] {
                order.append(.segment(j))
                k = segments[j].upperBound
            } else if i.kind == .matmul, program.fallbacks[k].inputs.allSatisfy({ $0.table < 0 }) {
                order.append(.matmul(k))
                k += 1
            } else if NativeCodeGenerator.hasReductionKernel(i), program.fallbacks[k].inputs.allSatisfy({ $0.table < 0 }) {
                order.append(.reduce(k))
                k += 1
            } else if NativeCodeGenerator.hasElementwiseKernel(i) {
                order.append(.elementwise(k))
                k += 1
            } else if i.kind == .fallback, NativeCodeGenerator.interpretedKernel(program.fallbacks[k], k) != nil {
                order.append(.interpreted(k))
                k += 1
            } else if i.kind == .fallback, program.fallbacks[k].op == .customCall, program.fallbacks[k].inputs.allSatisfy({ $0.table < 0 }) {
                // (Gathers fold only into binary operators: a call's operands are in the frame.)
                order.append(.host(k))
                k += 1
            } else {
                let operation = i.kind == .fallback ? program.fallbacks[k].op.rawValue : "\(i.kind)"
                throw DeviceError.noDeviceForm(instruction: k, operation: operation)
            }
        }
        let reductions = order.compactMap { work -> Int? in if case let .reduce(k) = work { k } else { nil } }
        let elementwise = order.compactMap { work -> Int? in if case let .elementwise(k) = work { k } else { nil } }
        let interpreted = order.compactMap { work -> Int? in if case let .interpreted(k) = work { k } else { nil } }
        let checks = (direct?.instructions.filter { Self.runsInterpreted(program, $0) } ?? interpreted).compactMap { k in
            NativeCodeGenerator.deviceCheck(program.fallbacks[k]).map { (instruction: k, op: program.fallbacks[k].op, check: $0) }
        }
        // A program of matmuls alone has no kernels to compile.
        let module = try (direct.map { direct in program.cudaSource(direct: direct.instructions.filter { program.instructions[$0].kind != .matmul }) }
            ?? program.cudaSource(segments: segments, reductions: reductions, elementwise: elementwise, interpreted: interpreted))
            .map { try device.load($0) }
        // The elementwise kernels' index tables, one after another (8 bytes an entry).
        var tableAt: [Int: Int] = [:], tableEntries = 0
        for k in elementwise {
            tableAt[k] = tableEntries * 8
            tableEntries += NativeCodeGenerator.tableOperands(program.instructions[k]) * program.instructions[k].n
        }
        let scratchBytes = native.flatMap { native in native.runs.indices.map { native.chunkedReductions[$0].count * native.chunkedElements[$0] * 8 }.max() } ?? 0
        // Batched products read their operands' addresses from device memory: one array image for all.
        let products = direct?.instructions.filter { program.instructions[$0].kind == .matmul }
            ?? order.compactMap { work -> Int? in if case let .matmul(k) = work { k } else { nil } }
        let batched = products.filter { program.products[program.instructions[$0].product].jobs.count > 1 }
        let arrayBytes = batched.reduce(0) { $0 + program.products[program.instructions[$1].product].jobs.count * 24 }
        var blocks: [(address: UInt64, capacity: Int)] = []
        var arrays: [UInt64] = []
        // With a frame per call the steps' frame addresses are offsets (a frame at 0).
        var frame: UInt64 = 0, constantsAddress: UInt64 = 0, scratch: UInt64 = 0, partials: UInt64 = 0
        var statusAddress: UInt64 = 0, arrayBase: UInt64 = 0, tableBase: UInt64 = 0, sumScratch: UInt64 = 0
        // The split sums' partials (one split sum runs at a time on the stream: one block for all).
        let sumScratchBytes = (direct?.instructions ?? (reductions + interpreted)).compactMap { k -> Int? in
            let i = program.instructions[k]
            return Self.runsInterpreted(program, k) ? NativeCodeGenerator.sumSplit(program.fallbacks[k])?.scratchBytes(outer: 1)
                                       : NativeCodeGenerator.sumSplit(i)?.scratchBytes(outer: i.outer)
        }.max() ?? 0
        do {
            func take(_ bytes: Int) throws -> UInt64 {
                let block = try pool.allocate(bytes, on: stream)
                blocks.append(block)
                return block.address
            }
            let image = program.constantImage.count
            if framePerCall { constantsAddress = image > 0 ? try take(image) : 0 } else { frame = try take(program.statistics.frameBytes) }
            if scratchBytes > 0 { (scratch, partials) = (try take(scratchBytes), try take(native?.partialBytes.max() ?? 0)) }
            if !checks.isEmpty { statusAddress = try take(checks.count * 24) }
            if arrayBytes > 0 { arrayBase = try take(arrayBytes) }
            if tableEntries > 0 { tableBase = try take(tableEntries * 8) }
            if sumScratchBytes > 0 { sumScratch = try take(sumScratchBytes) }
            // A block's last use has run, or is on this stream and runs first (the pool checks its
            // event and stream). The constants go in
            // on the program's stream, ahead of its launches: a copy on the default stream would
            // not be ordered before a non-blocking stream's work. (From pageable host memory an
            // asynchronous copy has taken the bytes when it returns.)
            try program.constantImage.withUnsafeBytes { image in
                if image.count > 0 { try stream.copy(image.baseAddress!, toDevice: framePerCall ? constantsAddress : frame, bytes: image.count) }
            }
            for k in elementwise {
                let i = program.instructions[k], count = NativeCodeGenerator.tableOperands(i) * i.n
                guard count > 0 else { continue }
                let slice = UnsafeBufferPointer(rebasing: program.tables[i.table..<(i.table + count)])
                try stream.copy(UnsafeRawPointer(slice.baseAddress!), toDevice: tableBase + UInt64(tableAt[k]!), bytes: count * 8)
            }
            var at = arrayBase
            for k in batched {
                arrays.append(at)
                at += UInt64(program.products[program.instructions[k].product].jobs.count * 24)
                // With a frame per call each call writes them (`withFrame`).
                if !framePerCall { try Self.writeArrays(program, k, frame: frame, at: arrays.last!, on: stream) }
            }
        } catch {
            try? stream.synchronize()
            for block in blocks { pool.release(block.address, capacity: block.capacity) }
            throw error
        }
        var steps: [Step] = []
        var nextArray = 0
        for work in order {
            switch work {
            case let .host(k):
                steps.append(.host(k))
            case let .segment(index):
                steps.append(.kernel(Launch(kernel: NativeCodeGenerator.functionName(index), blocks: 1, threads: NativeCodeGenerator.blockThreads, arguments: [frame])))
            case let .elementwise(k):
                let n = program.instructions[k].n, tables = tableEntries > 0 ? tableBase + UInt64(tableAt[k]!) : 0
                guard n > 0 else { continue }
                steps.append(.kernel(Launch(kernel: NativeCodeGenerator.elementwiseName(k), blocks: (n + Self.threadsPerBlock - 1) / Self.threadsPerBlock,
                                            threads: Self.threadsPerBlock, arguments: [frame, tables])))
            case let .interpreted(k):
                if let c = checks.firstIndex(where: { $0.instruction == k }) {
                    steps.append(.kernel(Launch(kernel: NativeCodeGenerator.checkName(k), blocks: 1, threads: NativeCodeGenerator.blockThreads,
                                                arguments: [frame, statusAddress + UInt64(24 * c)])))
                }
                if let (source, destination, bytes) = NativeCodeGenerator.deviceCopyBefore(program.fallbacks[k]) {
                    steps.append(.copy(source: source, destination: destination, bytes: bytes))
                }
                let (name, n) = NativeCodeGenerator.interpretedKernel(program.fallbacks[k], k)!
                if let split = NativeCodeGenerator.sumSplit(program.fallbacks[k]) {
                    steps += Self.splitLaunches(name, split, outer: 1, scratch: sumScratch, frame: frame).map { .kernel($0) }
                    continue
                }
                guard n > 0 else { continue }
                steps.append(.kernel(Launch(kernel: name, blocks: (n + Self.threadsPerBlock - 1) / Self.threadsPerBlock,
                                            threads: Self.threadsPerBlock, arguments: [frame])))
            case let .reduce(k):
                let outputs = program.instructions[k].outer * program.instructions[k].inner
                guard outputs > 0 else { continue }
                if let split = NativeCodeGenerator.sumSplit(program.instructions[k]) {
                    steps += Self.splitLaunches(NativeCodeGenerator.reductionName(k), split, outer: outputs, scratch: sumScratch, frame: frame).map { .kernel($0) }
                    continue
                }
                steps.append(.kernel(Launch(kernel: NativeCodeGenerator.reductionName(k), blocks: (outputs + Self.threadsPerBlock - 1) / Self.threadsPerBlock,
                                            threads: Self.threadsPerBlock, arguments: [frame])))
            case let .matmul(k):
                let i = program.instructions[k], plan = program.products[i.product]
                guard plan.shape.reduce(1, *) > 0 else { continue }   // an empty product writes nothing
                var array: UInt64 = 0
                if plan.jobs.count > 1 { array = arrays[nextArray]; nextArray += 1 }
                steps.append(.gemm(Self.columnMajor(plan, float64: i.float64, a: frame + UInt64(i.a), b: frame + UInt64(i.b), c: frame + UInt64(i.y), arrays: array)))
            case let .chunked(index):
                guard let native else { continue }   // chunked runs come from the native code
                let name = NativeCodeGenerator.chunkedFunctionName(index), n = native.chunkedElements[index]
                steps.append(.kernel(Launch(kernel: name, blocks: (n + Self.threadsPerBlock - 1) / Self.threadsPerBlock, threads: Self.threadsPerBlock,
                                            arguments: [frame, 0, UInt64(n), 0, scratch])))
                if !native.chunkedReductions[index].isEmpty {
                    let chunks = (n + Parallelism.elementChunk - 1) / Parallelism.elementChunk
                    steps.append(.kernel(Launch(kernel: name + "_sums", blocks: (chunks + Self.chunksPerBlock - 1) / Self.chunksPerBlock,
                                                threads: Self.chunksPerBlock, arguments: [scratch, partials], frameArguments: 0)))
                    steps.append(.kernel(Launch(kernel: name + "_combine", blocks: 1, threads: 1, arguments: [partials, frame], frameArguments: 2)))
                }
            }
        }
        (self.program, self.pool, self.module, self.steps, self.blocks, self.stream) = (program, pool, module, steps, blocks, stream)
        (self.checks, self.statusAddress, self.residentFrame, self.framePerCall) = (checks, statusAddress, frame, framePerCall)
        (self.constantsAddress, self.batches, self.sumScratch) = (constantsAddress, zip(batched, arrays).map { ($0, $1) }, sumScratch)
        self.direct = direct
    }

    /// The column-major product cuBLAS computes for `plan`'s row-major one, with operands at
    /// device addresses `a`, `b` and result at `c`. Row-major `C = op(A)·op(B)` is column-major
    /// `Cᵀ = op(B)ᵀ·op(A)ᵀ`, and a row-major matrix read column-major with the same leading
    /// dimension is its transpose: so the operands swap places, each keeps its transposition, and
    /// the leading dimensions are the row-major ones (`k` or `n`, `m` or `k`, `n`). A plan of
    /// several products (a batch) reads its addresses from `arrays` (``batchAddresses(_:float64:a:b:c:)``).
    package static func columnMajor(_ plan: Kernels.MatmulPlan, float64: Bool, a: UInt64, b: UInt64, c: UInt64, arrays: UInt64) -> GEMM {
        let size = UInt64(float64 ? 8 : 4), job = plan.jobs[0]
        let rows = plan.jobs.count == 1 ? job.m : plan.m
        return GEMM(float64: float64, transposeA: plan.tb, transposeB: plan.ta, m: plan.n, n: rows, k: plan.k,
                    lda: Swift.max(1, plan.tb ? plan.k : plan.n), ldb: Swift.max(1, plan.ta ? rows : plan.k), ldc: Swift.max(1, plan.n),
                    a: plan.jobs.count == 1 ? b + UInt64(job.b) * size : 0, b: plan.jobs.count == 1 ? a + UInt64(job.a) * size : 0,
                    c: plan.jobs.count == 1 ? c + UInt64(job.c) * size : 0,
                    batch: plan.jobs.count, arrays: plan.jobs.count == 1 ? 0 : arrays)
    }

    /// The plan of a program each of whose instructions is a matrix product, elementwise
    /// arithmetic (its tables, if any, a broadcast's), a reduction, or an operator with a direct
    /// interpreted kernel (at most three operands; a layout operator the planner made a gather
    /// too), reading whole arguments (or constants) and writing a whole output, each output
    /// written by one of them or a view of an argument (nil otherwise).
    private static func directInstructions(_ program: CompiledProgram, _ range: Range<Int>) -> DirectPlan? {
        let constants = program.constantImage.count
        func place(_ offset: Int) -> Direct.Place? {
            if let j = program.arguments.firstIndex(where: { $0.offset == offset }) { return .argument(j) }
            return offset < constants ? .constant(offset) : nil
        }
        var result: [Direct] = []
        for k in range {
            let i = program.instructions[k], f = program.fallbacks[k]
            let offsets: [Int], threads: Int
            switch i.kind {
            case .matmul: (offsets, threads) = ([i.a, i.b], 0)
            case .unary: (offsets, threads) = ([i.a], i.n)
            case .binary: (offsets, threads) = ([i.a, i.b], i.n)
            case .multiplyAdd: (offsets, threads) = ([i.a, i.b, i.c], i.n)
            case .reduce where NativeCodeGenerator.hasReductionKernel(i) && i.table < 0: (offsets, threads) = ([i.a], i.outer * i.inner)
            case _ where runsInterpreted(program, k) && NativeCodeGenerator.hasDirectKernel(f):
                (offsets, threads) = (f.inputs.map(\.offset), NativeCodeGenerator.interpretedKernel(f, k)!.threads)
            default: return nil
            }
            // Tables only from broadcasts (no folded gathers, no accumulation in place): the
            // direct kernel walks the operands' broadcast strides instead.
            guard i.table < 0 || (i.accumulator < 0 && i.kind != .matmul), f.inputs.allSatisfy({ $0.table < 0 }),
                  [.matmul, .reduce, .fallback, .gather].contains(i.kind) || NativeCodeGenerator.hasElementwiseKernel(i),
                  let o = program.outputs.firstIndex(where: { $0.offset == (i.kind == .fallback ? f.output.offset : i.y) }) else { return nil }
            let operands = offsets.compactMap(place)
            // A product's operands are arguments: a batch's address arrays are written per call.
            guard operands.count == offsets.count, i.kind != .matmul || operands.allSatisfy({ if case .argument = $0 { true } else { false } }) else { return nil }
            result.append(Direct(instruction: k, operands: operands, output: o, threads: threads))
        }
        // Every output an instruction's own (none written twice) or an argument's elements.
        guard Set(result.map(\.output)).count == result.count else { return nil }
        var views: [View] = []
        for (o, output) in program.outputs.enumerated() where !result.contains(where: { $0.output == o }) {
            let size = output.type.dtype.byteSize
            guard let j = program.arguments.firstIndex(where: { argument in
                argument.type.dtype == output.type.dtype && output.offset >= argument.offset
                    && output.offset + output.type.byteCount <= argument.offset + argument.type.byteCount && (output.offset - argument.offset) % size == 0
            }) else { return nil }
            views.append(View(output: o, argument: j, elementOffset: (output.offset - program.arguments[j].offset) / size))
        }
        return DirectPlan(steps: result, views: views)
    }

    /// Whether instruction `k` runs as the kernel of the operator it comes from
    /// (`NativeCodeGenerator.cudaInterpreted(_:_:direct:)`): one the CPU interprets, or — run
    /// direct — a layout operator the planner turned into a gather (its layout kernel copies the
    /// same elements, as words).
    private static func runsInterpreted(_ program: CompiledProgram, _ k: Int) -> Bool {
        program.instructions[k].kind == .fallback || (program.instructions[k].kind == .gather && program.fallbacks[k].op.family == .layout)
    }

    /// The launches of split sum `name` (`NativeCodeGenerator.splitSumKernels`) over `outer` rows
    /// with its partials at `scratch`: its leaves (none for an empty sum), then their combination —
    /// on the frame at `frame`, or (`direct`: the operands' three pointers and the result's) on
    /// those addresses.
    private static func splitLaunches(_ name: String, _ split: NativeCodeGenerator.SumSplit, outer: Int, scratch: UInt64,
                                      frame: UInt64 = 0, direct: [UInt64]? = nil) -> [Launch] {
        let leaves = split.threads(outer: outer)
        var launches: [Launch] = []
        if leaves > 0 {
            launches.append(Launch(kernel: name + "_leaves", blocks: (leaves + threadsPerBlock - 1) / threadsPerBlock, threads: threadsPerBlock,
                                   arguments: direct.map { Array($0.prefix(3)) + [scratch] } ?? [frame, scratch], frameArguments: direct == nil ? 1 : 0))
        }
        launches.append(Launch(kernel: name + "_combine", blocks: (outer + threadsPerBlock - 1) / threadsPerBlock, threads: threadsPerBlock,
                               arguments: [scratch, direct?[3] ?? frame], frameArguments: direct == nil ? 2 : 0))
        return launches
    }

    /// Enqueues the address arrays of batched product `k` (instruction) with the frame at `frame`.
    private static func writeArrays(_ program: CompiledProgram, _ k: Int, frame: UInt64, at array: UInt64, on stream: any KernelStream) throws {
        let i = program.instructions[k]
        try writeArrays(program, k, a: frame + UInt64(i.a), b: frame + UInt64(i.b), c: frame + UInt64(i.y), at: array, on: stream)
    }

    /// Enqueues the address arrays of batched product `k` with its operands at `a` and `b` and its
    /// result at `c`.
    private static func writeArrays(_ program: CompiledProgram, _ k: Int, a: UInt64, b: UInt64, c: UInt64, at array: UInt64, on stream: any KernelStream) throws {
        let i = program.instructions[k]
        let addresses = batchAddresses(program.products[i.product], float64: i.float64, a: a, b: b, c: c)
        // From pageable host memory the copy has taken the bytes when it returns.
        try addresses.withUnsafeBytes { try stream.copy($0.baseAddress!, toDevice: array, bytes: $0.count) }
    }

    /// A batched plan's address arrays, in ``GEMM/arrays``'s layout: cuBLAS's A (the row-major
    /// product's b), B (its a) and C, one address per product of the batch each.
    package static func batchAddresses(_ plan: Kernels.MatmulPlan, float64: Bool, a: UInt64, b: UInt64, c: UInt64) -> [UInt64] {
        let size = UInt64(float64 ? 8 : 4)
        return plan.jobs.map { b + UInt64($0.b) * size } + plan.jobs.map { a + UInt64($0.a) * size } + plan.jobs.map { c + UInt64($0.c) * size }
    }

    deinit {
        // The memory goes back once the work enqueued on the stream has run.
        let pending = try? stream.record()
        if pending == nil { try? stream.synchronize() }
        for block in blocks { pool.release(block.address, capacity: block.capacity, pending: pending, stream: stream) }
    }

    /// Enqueues copies of `arguments` into the device frame on the stream: the tensors must stay
    /// alive until the stream has run them (``callAsFunction(_:)`` waits for it).
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for another number of arguments,
    ///   `TensorError.shapeMismatch(op:detail:)` naming an argument of another dtype or shape; the
    ///   device's copy errors.
    package func upload(_ arguments: [Tensor]) throws {
        try upload(arguments, frame: try resident())
    }

    private func upload(_ arguments: [Tensor], frame: UInt64) throws {
        try checkArguments(arguments)
        try enqueuing {
            for (a, value) in arguments.enumerated() {
                let place = program.arguments[a]
                try stream.copy(value.rawPointer, toDevice: frame + UInt64(place.offset), bytes: place.type.byteCount)
            }
        }
    }

    /// The frame the program holds.
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` where it takes a frame per call instead.
    private func resident() throws -> UInt64 {
        guard !framePerCall else {
            throw TensorError.invalidArgument(op: "DeviceProgram", detail: "the program takes a frame per call: it holds none to copy into or out of")
        }
        return residentFrame
    }

    /// `body` with the call's frame: the program's, or one taken from the pool on the stream and
    /// given back behind the work `body` enqueued (the pool hands it out again at once to work on
    /// the same stream, to others once that work has run); its constants copied in first.
    private func withFrame<T>(_ body: (UInt64) throws -> T) throws -> T {
        guard framePerCall else { return try body(residentFrame) }
        let block = try pool.allocate(program.statistics.frameBytes, on: stream)
        defer {
            let pending = try? stream.record()
            if pending == nil { try? stream.synchronize() }
            pool.release(block.address, capacity: block.capacity, pending: pending, stream: stream)
        }
        let image = program.constantImage.count
        if image > 0 { try stream.copy(device: constantsAddress, toDevice: block.address, bytes: image) }
        for (k, array) in batches { try Self.writeArrays(program, k, frame: block.address, at: array, on: stream) }
        return try body(block.address)
    }

    /// Runs `body`, which enqueues work on the stream; where it throws, waits for the work it had
    /// enqueued before the error goes on — that work reads or writes host memory (arguments,
    /// outputs, status words) the caller may free once the error reaches it.
    private func enqueuing<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch {
            try? stream.synchronize()
            throw error
        }
    }

    /// Throws unless `arguments` are the program's in number, dtypes and shapes.
    private func checkArguments(_ arguments: [Tensor]) throws {
        guard arguments.count == program.arguments.count else {
            throw TensorError.invalidArgument(op: "DeviceProgram", detail: "called with \(arguments.count) arguments; the program takes \(program.arguments.count)")
        }
        for (a, value) in arguments.enumerated() {
            let place = program.arguments[a]
            guard value.dtype == place.type.dtype, value.shape == place.type.shape else {
                throw TensorError.shapeMismatch(op: "DeviceProgram", detail: "argument \(a) was compiled as \(place.type), got \(value.valueType)")
            }
        }
    }

    /// Runs the program on arguments on its device (``DeviceTensors``) — or in host memory,
    /// copied in — and leaves the outputs there: each in a block of its own, written on the
    /// program's stream, which a read of them waits for. Nothing waits for the stream here unless
    /// the program checks indices (the check's status is read back to throw the CPU's error).
    ///
    /// - Throws: `TensorError.deviceMismatch(op:detail:)` for an argument on another device; as
    ///   ``callAsFunction(_:)`` does otherwise.
    package func callResident(_ arguments: [Tensor], on tensors: DeviceTensors) throws -> [Tensor] {
        try checkArguments(arguments)
        guard tensors.pool === pool else {
            throw TensorError.deviceMismatch(op: "DeviceProgram", detail: "the program runs on \(device.name), its arguments' device is another")
        }
        if let direct {
            return try withExtendedLifetime(arguments) { try enqueuing { try runDirect(direct, arguments, on: tensors) } }
        }
        return try withExtendedLifetime(arguments) {
            try enqueuing { try withFrame { frame in
                var outputs: [Tensor] = []
                for (a, value) in arguments.enumerated() {
                    let place = program.arguments[a], destination = frame + UInt64(place.offset), bytes = place.type.byteCount
                    guard bytes > 0 else { continue }
                    if let memory = value.storage.deviceMemory {
                        guard let block = memory as? DeviceBlock, block.tensors === tensors else {
                            throw TensorError.deviceMismatch(op: "DeviceProgram", detail: "argument \(a) is on \(value.device), the program on \(tensors.device)")
                        }
                        try block.use(on: stream)
                        try stream.copy(device: value.deviceAddress!, toDevice: destination, bytes: bytes)
                    } else {
                        try stream.copy(value.rawPointer, toDevice: destination, bytes: bytes)
                    }
                }
                try launch(frame: frame)
                for place in program.outputs {
                    let bytes = place.type.byteCount, block = try DeviceBlock(bytes: bytes, stream: stream, tensors: tensors)
                    if bytes > 0 { try stream.copy(device: frame + UInt64(place.offset), toDevice: block.address, bytes: bytes) }
                    outputs.append(block.tensor(place.type))
                }
                try throwFailedChecks()
                return outputs
            } }
        }
    }

    /// A program of ``direct`` instructions: each reads its operands where they are on the device
    /// and writes a new block that becomes its output — no frame, no copies but a host
    /// argument's (a CPU scalar's), copied into a block of its own; an output that is a view of an
    /// argument is a view of its storage, as the CPU's reshape is.
    private func runDirect(_ direct: DirectPlan, _ arguments: [Tensor], on tensors: DeviceTensors) throws -> [Tensor] {
        var resident: [Tensor] = []
        for (a, value) in arguments.enumerated() {
            guard let memory = value.storage.deviceMemory else {
                // Given back when its tensor goes, behind the work enqueued on the stream.
                let block = try DeviceBlock(bytes: program.arguments[a].type.byteCount, stream: stream, tensors: tensors)
                try copyIn(value, to: block.address, argument: a)
                resident.append(block.tensor(program.arguments[a].type))
                continue
            }
            guard let block = memory as? DeviceBlock, block.tensors === tensors else {
                throw TensorError.deviceMismatch(op: "DeviceProgram", detail: "argument \(a) is on \(value.device), the program on \(tensors.device)")
            }
            try block.use(on: stream)
            resident.append(value)
        }
        var outputs = [Tensor?](repeating: nil, count: program.outputs.count), addresses = [UInt64](repeating: 0, count: program.outputs.count)
        for step in direct.steps {
            let block = try DeviceBlock(bytes: program.outputs[step.output].type.byteCount, stream: stream, tensors: tensors)
            (outputs[step.output], addresses[step.output]) = (block.tensor(program.outputs[step.output].type), block.address)
        }
        for view in direct.views {
            let t = resident[view.argument]
            outputs[view.output] = Tensor(storage: t.storage, offset: t.offset + view.elementOffset, shape: program.outputs[view.output].type.shape)
        }
        try enqueueDirect(direct.steps, arguments: resident.map { $0.deviceAddress! }, outputs: addresses)
        try throwFailedChecks()
        return withExtendedLifetime(resident) { outputs.map { $0! } }
    }

    /// Where the program checks indices or values: waits for the stream and throws the CPU's
    /// error for the first check that failed.
    private func throwFailedChecks() throws {
        guard let status = try downloadStatus() else { return }
        try stream.synchronize()
        try Self.throwFailedCheck(status, checks)
    }

    /// Enqueues a copy of host argument `a` (`value`) to device address `address`.
    private func copyIn(_ value: Tensor, to address: UInt64, argument a: Int) throws {
        let bytes = program.arguments[a].type.byteCount
        // From pageable host memory the copy has taken the bytes when it returns.
        if bytes > 0 { try stream.copy(value.rawPointer, toDevice: address, bytes: bytes) }
    }

    /// Enqueues the ``direct`` instructions on the arguments at `arguments` (device addresses),
    /// each writing its output at its address in `outputs`.
    private func enqueueDirect(_ direct: [Direct], arguments: [UInt64], outputs: [UInt64]) throws {
        for step in direct {
            let i = program.instructions[step.instruction], result = outputs[step.output]
            let operands = step.operands.map { p -> UInt64 in
                switch p {
                case let .argument(j): arguments[j]
                case let .constant(offset): constantsAddress + UInt64(offset)
                }
            }
            if i.kind == .matmul {
                let plan = program.products[i.product]
                guard plan.shape.reduce(1, *) > 0 else { continue }   // an empty product writes nothing
                var array: UInt64 = 0
                if let batch = batches.first(where: { $0.instruction == step.instruction }) {
                    array = batch.array
                    try Self.writeArrays(program, step.instruction, a: operands[0], b: operands[1], c: result, at: array, on: stream)
                }
                try device.gemm(Self.columnMajor(plan, float64: i.float64, a: operands[0], b: operands[1], c: result, arrays: array), on: stream)
            } else if step.threads > 0 {
                guard let module else { throw KernelDeviceError.noKernel(NativeCodeGenerator.directName(step.instruction)) }
                if let c = checks.firstIndex(where: { $0.instruction == step.instruction }) {
                    // The check kernel reads the operand it checks at its `base`.
                    let operand: Int
                    switch checks[c].check {
                    case let .indices(checked, _, _): operand = checked
                    case .castValues: operand = 0
                    }
                    try module.launch(NativeCodeGenerator.checkName(step.instruction), blocks: 1, threads: NativeCodeGenerator.blockThreads,
                                      arguments: [operands[operand], statusAddress + UInt64(24 * c)], on: stream)
                }
                if Self.runsInterpreted(program, step.instruction), let (_, _, bytes) = NativeCodeGenerator.deviceCopyBefore(program.fallbacks[step.instruction]) {
                    try stream.copy(device: operands[0], toDevice: result, bytes: bytes)
                }
                let pointers = operands + [UInt64](repeating: 0, count: 3 - operands.count) + [result]
                let interpreted = Self.runsInterpreted(program, step.instruction)
                if let split = interpreted ? NativeCodeGenerator.sumSplit(program.fallbacks[step.instruction]) : NativeCodeGenerator.sumSplit(i) {
                    for l in Self.splitLaunches(NativeCodeGenerator.directName(step.instruction), split, outer: interpreted ? 1 : i.outer,
                                                scratch: sumScratch, direct: pointers) {
                        try module.launch(l.kernel, blocks: l.blocks, threads: l.threads, arguments: l.arguments, on: stream)
                    }
                    continue
                }
                try module.launch(NativeCodeGenerator.directName(step.instruction), blocks: (step.threads + Self.threadsPerBlock - 1) / Self.threadsPerBlock,
                                  threads: Self.threadsPerBlock, arguments: pointers, on: stream)
            }
        }
    }

    /// ``callAsFunction(_:)`` for a program of ``direct`` instructions: the arguments copied into
    /// blocks from the pool, the instructions run on them into blocks of their own, the outputs
    /// (a view's from its argument's block) copied back; the blocks given back behind that work.
    private func callDirect(_ direct: DirectPlan, _ arguments: [Tensor]) throws -> [Tensor] {
        try checkArguments(arguments)
        var blocks: [(address: UInt64, capacity: Int)] = []
        defer {
            let pending = try? stream.record()
            if pending == nil { try? stream.synchronize() }
            for block in blocks { pool.release(block.address, capacity: block.capacity, pending: pending, stream: stream) }
        }
        let outputs = program.outputs.map { Tensor(uninitialized: $0.type.shape, dtype: $0.type.dtype) }
        try enqueuing {
            for (a, value) in arguments.enumerated() {
                blocks.append(try pool.allocate(program.arguments[a].type.byteCount, on: stream))
                try copyIn(value, to: blocks.last!.address, argument: a)
            }
            var results = [UInt64](repeating: 0, count: program.outputs.count)
            for step in direct.steps {
                blocks.append(try pool.allocate(program.outputs[step.output].type.byteCount, on: stream))
                results[step.output] = blocks.last!.address
            }
            for view in direct.views {
                results[view.output] = blocks[view.argument].address + UInt64(view.elementOffset * program.outputs[view.output].type.dtype.byteSize)
            }
            try enqueueDirect(direct.steps, arguments: blocks.prefix(arguments.count).map(\.address), outputs: results)
            for ((place, t), address) in zip(zip(program.outputs, outputs), results) where place.type.byteCount > 0 {
                try stream.copy(address, toHost: t.rawPointer, bytes: place.type.byteCount)
            }
            try throwFailedChecks()
            try stream.synchronize()
        }
        return outputs
    }

    /// Enqueues every step of one call on the stream, in order (``KernelStream/synchronize()`` waits).
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for a program that takes a frame per
    ///   call; the device's errors.
    package func launch() throws {
        try launch(frame: try resident())
    }

    /// Enqueues every step with the frame at `frame`: the steps' frame addresses are rebased by it
    /// where the program takes a frame per call (they are offsets then), used as they are otherwise.
    private func launch(frame: UInt64) throws {
        let shift = framePerCall ? frame : 0
        for step in steps {
            switch step {
            case var .kernel(l):
                // Kernel steps come from the module's source: a program without one has none.
                guard let module else { throw KernelDeviceError.noKernel(l.kernel) }
                if shift != 0 { for j in l.arguments.indices where l.frameArguments & (1 << j) != 0 { l.arguments[j] += shift } }
                try module.launch(l.kernel, blocks: l.blocks, threads: l.threads, arguments: l.arguments, on: stream)
            case var .gemm(product):
                // A batch reads its addresses from its arrays, written for this frame.
                if shift != 0, product.batch == 1 { (product.a, product.b, product.c) = (product.a + shift, product.b + shift, product.c + shift) }
                try device.gemm(product, on: stream)
            case let .host(k): try runOnHost(k, frame: frame)
            case let .copy(source, destination, bytes):
                try stream.copy(device: frame + UInt64(source), toDevice: frame + UInt64(destination), bytes: bytes)
            }
        }
    }

    /// A custom operator's call inside the program (its forward is Swift code, which only the host
    /// runs): its operands copied out of the frame once the work before them has run, the
    /// operator run on them through the CPU's dispatch (``CompiledProgram/runFallback(_:on:)``),
    /// its result copied into the frame on the stream, ahead of the work after it.
    private func runOnHost(_ k: Int, frame: UInt64) throws {
        let f = program.fallbacks[k]
        let inputs = f.inputs.map { Tensor(uninitialized: $0.type.shape, dtype: $0.type.dtype) }
        for (operand, t) in zip(f.inputs, inputs) where operand.type.byteCount > 0 {
            try stream.copy(frame + UInt64(operand.offset), toHost: t.rawPointer, bytes: operand.type.byteCount)
        }
        try stream.synchronize()
        let output = try program.runFallback(k, on: inputs)
        // From pageable host memory the copy has taken the bytes when it returns.
        if f.output.type.byteCount > 0 {
            try withExtendedLifetime(output) { try stream.copy(output.rawPointer, toDevice: frame + UInt64(f.output.offset), bytes: f.output.type.byteCount) }
        }
    }

    /// New tensors the outputs are copied into on the stream: to be read once it has run them.
    package func download() throws -> [Tensor] {
        try download(frame: try resident())
    }

    private func download(frame: UInt64) throws -> [Tensor] {
        let outputs = program.outputs.map { Tensor(uninitialized: $0.type.shape, dtype: $0.type.dtype) }
        try enqueuing {
            for (place, t) in zip(program.outputs, outputs) {
                try stream.copy(frame + UInt64(place.offset), toHost: t.rawPointer, bytes: place.type.byteCount)
            }
        }
        return outputs
    }

    /// Runs the program on the device: arguments in, every kernel, outputs out, then waits for
    /// the stream.
    ///
    /// - Throws: the CPU's `TensorError.indexOutOfRange(op:index:bound:position:)` where an index
    ///   check found a label or an index out of range (the first in program order); the device's
    ///   errors.
    package func callAsFunction(_ arguments: [Tensor]) throws -> [Tensor] {
        if let direct { return try withExtendedLifetime(arguments) { try callDirect(direct, arguments) } }
        return try withExtendedLifetime(arguments) {
            let outputs = try withFrame { frame in
                try upload(arguments, frame: frame)
                try enqueuing { try launch(frame: frame) }
                return try download(frame: frame)
            }
            let status = try downloadStatus()
            try stream.synchronize()
            try Self.throwFailedCheck(status, checks)
            return outputs
        }
    }

    /// A new tensor the index checks' status words are copied into on the stream (nil: the
    /// program has no checks): to be read once it has run the copy.
    package func downloadStatus() throws -> Tensor? {
        guard !checks.isEmpty else { return nil }
        let status = Tensor(uninitialized: [checks.count * 3], dtype: .int64)
        try enqueuing { try stream.copy(statusAddress, toHost: status.rawPointer, bytes: checks.count * 24) }
        return status
    }

    /// Throws the CPU's error for the first check (in program order) that failed: what
    /// `Kernels.readIndices` throws for an index out of range, what `Kernels.cast` throws for a
    /// value its integer target cannot hold.
    static func throwFailedCheck(_ status: Tensor?, _ checks: [(instruction: Int, op: OpCode, check: DeviceCheck)]) throws {
        guard let status else { return }
        let words = status.scalars(as: Int64.self)
        for (c, check) in checks.enumerated() where words[3 * c] != 0 {
            let (position, value) = (words[3 * c + 1], words[3 * c + 2])
            switch check.check {
            case let .indices(_, bound, axis):
                throw TensorError.indexOutOfRange(op: check.op.rawValue, index: Int(value), bound: bound, position: "indices element \(position) (axis \(axis))")
            case let .castValues(from, to):
                let detail = from == .int64 ? "element \(position) = \(value) does not fit i32"
                                            : "element \(position) = \(Double(bitPattern: UInt64(bitPattern: value))) cannot convert to \(to)"
                throw TensorError.invalidValue(op: check.op.rawValue, detail: detail)
            }
        }
    }
}
