import AdjointTensor

/// Why a compiled function cannot run on a device.
public enum DeviceError: Error, Equatable, CustomStringConvertible {
    /// The device cannot be used here: no CUDA driver or NVRTC (both are loaded at run time), or
    /// no such GPU. The reason names what was tried.
    case unavailable(device: Device, reason: String)
    /// The program has no native code, which its device kernels are generated from (a function
    /// compiled with `NativeCode.off`, or without a C compiler).
    case noNativeCode
    /// An instruction with no device form yet (a matmul, an operator the interpreter runs): its
    /// position in the program and what it is.
    case noDeviceForm(instruction: Int, operation: String)

    public var description: String {
        switch self {
        case let .unavailable(device, reason): return "device \(device) is unavailable: \(reason)"
        case .noNativeCode: return "the program has no native code, which is what its device kernels are generated from"
        case let .noDeviceForm(k, operation): return "instruction \(k) (\(operation)) has no device form: matmuls and interpreted operators run on the CPU only"
        }
    }
}

/// The process's devices: a CUDA GPU's memory pool, made on first use (NVRTC and the driver
/// loaded) and kept; a failure is kept too, so every use reports the same error.
package enum DeviceRuntime {
    private static let cuda = Lock<Result<DeviceMemoryPool, DeviceError>?>(nil)

    /// The memory pool (and so the kernel device) of `device`.
    ///
    /// - Throws: ``DeviceError/unavailable(device:reason:)`` for the CPU, a GPU other than 0, or
    ///   where NVRTC or the CUDA driver cannot be loaded.
    package static func pool(for device: Device) throws -> DeviceMemoryPool {
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
/// one-thread kernel (`adjoint_segment_<k>`), each chunked run as a kernel over its
/// elements, and where the run takes in sums or means, a kernel summing each 2¹⁵-element chunk
/// pairwise into its partial and a one-thread kernel combining the partials in ``Summation``'s
/// strict tree (and dividing for a mean) into the frame — so later runs read the result on the
/// device. The results are the CPU's strict-policy results: bit for bit where the arithmetic is
/// IEEE (`+ − × ÷ √`, Adjoint's float32 tanh), within the device math library's ulps elsewhere.
/// Programs with matmuls or interpreted operators throw ``DeviceError/noDeviceForm(instruction:operation:)``.
package final class DeviceProgram {
    package let program: CompiledProgram
    package let pool: DeviceMemoryPool
    package var device: any KernelDevice { pool.device }
    private let module: any KernelModule
    /// Where the program's copies and launches run.
    package let stream: any KernelStream
    /// The launches of one call, in order.
    package let launches: [Launch]
    /// The device memory held: the frame, the reductions' operands and their partials.
    private let blocks: [(address: UInt64, capacity: Int)]
    private var frame: UInt64 { blocks[0].address }

    /// One kernel launch: its name, grid and arguments.
    package struct Launch: Equatable, Sendable {
        package var kernel: String
        package var blocks: Int, threads: Int
        package var arguments: [UInt64]
    }

    /// Threads per block of a chunked run's kernel; chunks per block of its sums kernel.
    package static let threadsPerBlock = 256, chunksPerBlock = 32

    /// Compiles `program`'s kernels for `pool`'s device and puts its frame there; its work runs on
    /// `stream` (nil: a new stream of its own).
    ///
    /// - Throws: ``DeviceError`` for a program without native code or with an instruction that has
    ///   no device form, and the device's errors (compilation, memory).
    package init(_ program: CompiledProgram, pool: DeviceMemoryPool, stream: (any KernelStream)? = nil) throws {
        let device = pool.device
        let stream = try stream ?? device.makeStream()
        guard let native = program.native else { throw DeviceError.noNativeCode }
        let range = program.instructionStart[program.positions.lowerBound]..<program.instructionStart[program.positions.upperBound]
        // The order of the launches: the chunked runs as the CPU runs them, the plain runs without
        // the instructions chunked runs hold (``CompiledProgram/deviceSegments``).
        let segments = program.deviceSegments
        var segmentAt: [Int: Int] = [:]
        for (j, segment) in segments.enumerated() { segmentAt[segment.lowerBound] = j }
        var order: [(chunked: Bool, index: Int)] = []
        var k = range.lowerBound
        while k < range.upperBound {
            let s = Int(native.start[k])
            if s <= -2 {
                order.append((true, -2 - s))
                k = native.chunkedEnd[-2 - s]
            } else if let j = segmentAt[k] {
                order.append((false, j))
                k = segments[j].upperBound
            } else {
                let i = program.instructions[k]
                let operation = i.kind == .fallback ? program.fallbacks[k].op.rawValue : "\(i.kind)"
                throw DeviceError.noDeviceForm(instruction: k, operation: operation)
            }
        }
        guard let source = program.cudaSource(segments: segments) else { throw DeviceError.noNativeCode }
        let module = try device.load(source)
        let scratchBytes = native.runs.indices.map { native.chunkedReductions[$0].count * native.chunkedElements[$0] * 8 }.max() ?? 0
        var blocks: [(address: UInt64, capacity: Int)] = []
        do {
            for bytes in [program.statistics.frameBytes] + (scratchBytes > 0 ? [scratchBytes, native.partialBytes.max() ?? 0] : []) {
                blocks.append(try pool.allocate(bytes))
            }
            // A block comes from work that has run (the pool checks its event). The constants go in
            // on the program's stream, ahead of its launches: a copy on the default stream would
            // not be ordered before a non-blocking stream's work. (From pageable host memory an
            // asynchronous copy has taken the bytes when it returns.)
            try program.constantImage.withUnsafeBytes { image in
                if image.count > 0 { try stream.copy(image.baseAddress!, toDevice: blocks[0].address, bytes: image.count) }
            }
        } catch {
            for block in blocks { pool.release(block.address, capacity: block.capacity) }
            throw error
        }
        let frame = blocks[0].address, scratch = blocks.count > 1 ? blocks[1].address : 0, partials = blocks.count > 2 ? blocks[2].address : 0
        var launches: [Launch] = []
        for (chunked, index) in order {
            guard chunked else {
                launches.append(Launch(kernel: NativeCodeGenerator.functionName(index), blocks: 1, threads: 1, arguments: [frame]))
                continue
            }
            let name = NativeCodeGenerator.chunkedFunctionName(index), n = native.chunkedElements[index]
            launches.append(Launch(kernel: name, blocks: (n + Self.threadsPerBlock - 1) / Self.threadsPerBlock, threads: Self.threadsPerBlock,
                                   arguments: [frame, 0, UInt64(n), 0, scratch]))
            if !native.chunkedReductions[index].isEmpty {
                let chunks = (n + Parallelism.elementChunk - 1) / Parallelism.elementChunk
                launches.append(Launch(kernel: name + "_sums", blocks: (chunks + Self.chunksPerBlock - 1) / Self.chunksPerBlock,
                                       threads: Self.chunksPerBlock, arguments: [scratch, partials]))
                launches.append(Launch(kernel: name + "_combine", blocks: 1, threads: 1, arguments: [partials, frame]))
            }
        }
        (self.program, self.pool, self.module, self.launches, self.blocks, self.stream) = (program, pool, module, launches, blocks, stream)
    }

    deinit {
        // The memory goes back once the work enqueued on the stream has run.
        let pending = try? stream.record()
        if pending == nil { try? stream.synchronize() }
        for block in blocks { pool.release(block.address, capacity: block.capacity, pending: pending) }
    }

    /// Enqueues copies of `arguments` into the device frame on the stream: the tensors must stay
    /// alive until the stream has run them (``callAsFunction(_:)`` waits for it).
    ///
    /// - Throws: `TensorError.invalidArgument(op:detail:)` for another number of arguments,
    ///   `TensorError.shapeMismatch(op:detail:)` naming an argument of another dtype or shape; the
    ///   device's copy errors.
    package func upload(_ arguments: [Tensor]) throws {
        guard arguments.count == program.arguments.count else {
            throw TensorError.invalidArgument(op: "DeviceProgram", detail: "called with \(arguments.count) arguments; the program takes \(program.arguments.count)")
        }
        for (a, value) in arguments.enumerated() {
            let place = program.arguments[a]
            guard value.dtype == place.type.dtype, value.shape == place.type.shape else {
                throw TensorError.shapeMismatch(op: "DeviceProgram", detail: "argument \(a) was compiled as \(place.type), got \(value.valueType)")
            }
        }
        do {
            for (a, value) in arguments.enumerated() {
                let place = program.arguments[a]
                try stream.copy(value.rawPointer, toDevice: frame + UInt64(place.offset), bytes: place.type.byteCount)
            }
        } catch {
            // The copies enqueued read the arguments: they run before the caller may free them.
            try? stream.synchronize()
            throw error
        }
    }

    /// Enqueues every kernel of one call on the stream, in order (``KernelStream/synchronize()`` waits).
    package func launch() throws {
        for l in launches { try module.launch(l.kernel, blocks: l.blocks, threads: l.threads, arguments: l.arguments, on: stream) }
    }

    /// New tensors the outputs are copied into on the stream: to be read once it has run them.
    package func download() throws -> [Tensor] {
        let outputs = program.outputs.map { Tensor(uninitialized: $0.type.shape, dtype: $0.type.dtype) }
        do {
            for (place, t) in zip(program.outputs, outputs) {
                try stream.copy(frame + UInt64(place.offset), toHost: t.rawPointer, bytes: place.type.byteCount)
            }
        } catch {
            // The copies enqueued write the tensors: they run before the tensors are freed.
            try? stream.synchronize()
            throw error
        }
        return outputs
    }

    /// Runs the program on the device: arguments in, every kernel, outputs out, then waits for
    /// the stream.
    package func callAsFunction(_ arguments: [Tensor]) throws -> [Tensor] {
        try withExtendedLifetime(arguments) {
            try upload(arguments)
            do { try launch() } catch {
                try? stream.synchronize()
                throw error
            }
            let outputs = try download()
            try stream.synchronize()
            return outputs
        }
    }
}
