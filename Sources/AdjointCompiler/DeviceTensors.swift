import AdjointAutodiff
import AdjointIR
import AdjointTensor

/// Tensors on one device (a CUDA GPU, or the host emulation in tests): the ``DeviceBackend`` that
/// ``dispatch(_:_:_:)`` hands an operator to when an operand lives there.
///
/// An operator runs as a compiled program of that one operator (``DeviceProgram``), made the
/// first time its signature — operator, attributes, operand types — comes up on a thread and kept
/// for the next call (at most ``maximumPrograms`` a thread, the least recently used going first):
/// so an eager operator runs the same generated kernels, or cuBLAS GEMMs, as a compiled function
/// does, bitwise the CPU's results where those are (see ``DeviceProgram``). The program is made by
/// tracing the operator on placeholder operands on the CPU (which also checks the operands as the
/// CPU kernel does, with its errors). A kept program holds no frame: a call takes one from the
/// device's caching allocator (``DeviceMemoryPool``; the one the thread's previous call gave back),
/// copies the operands into it, runs the program, copies the result into a block of its own and
/// gives the frame back behind that work — except that nearly every operator (a matrix product,
/// elementwise arithmetic, broadcasting or not, a reduction, a layout operator, an interpreted
/// operator of at most three operands) reads its operands where they are and writes its result's
/// block directly, and a reshape, or a slice of whole rows, is a view of its operand's storage
/// — all on the calling thread's stream, without waiting for it.
///
/// Each thread has a stream of its own on the device: its operators run in order, asynchronously
/// to the host. A tensor made on one thread's stream and used on another's makes the second wait
/// for the first (an event) before it reads it. Reading values waits (`Tensor.to(.cpu)`,
/// `scalars(as:)`, `item()`); so does an operator that checks indices (a gather, a scatter-add, a
/// one-hot encoding, a cross-entropy), which reads its check's status back to throw the CPU's error.
// @unchecked Sendable: the pool is thread-safe; each thread reaches only its own `ThreadState`.
package final class DeviceTensors: DeviceBackend, @unchecked Sendable {
    package let device: Device
    package let pool: DeviceMemoryPool
    private let threads = ThreadLocal { ThreadState() }

    /// Operator programs kept per thread.
    package static let maximumPrograms = 256

    /// One thread's stream and operator programs.
    private final class ThreadState {
        var stream: (any KernelStream)?
        var programs: [OperatorSignature: (program: DeviceProgram, lastUse: UInt64)] = [:]
        var uses: UInt64 = 0
    }

    /// What an operator's program depends on.
    private struct OperatorSignature: Hashable {
        var op: OpCode
        var attributes: Attributes
        var types: [ValueType]
    }

    package init(device: Device, pool: DeviceMemoryPool) { (self.device, self.pool) = (device, pool) }

    /// The calling thread's stream on the device (made on its first use).
    package func stream() throws -> any KernelStream {
        let state = threads.value
        if let stream = state.stream { return stream }
        let stream = try pool.device.makeStream()
        state.stream = stream
        return stream
    }

    /// How many operator programs the calling thread keeps.
    package var programCount: Int { threads.value.programs.count }

    package func execute(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        for (k, t) in inputs.enumerated() {
            if let memory = t.storage.deviceMemory {
                guard memory.backend === self else {
                    throw TensorError.deviceMismatch(op: op.rawValue, detail: "operand \(k) is on \(t.device), another operand on \(device)")
                }
            } else if t.rank != 0 {
                throw TensorError.deviceMismatch(op: op.rawValue, detail: "operand \(k) (\(t.valueType)) is on the CPU, another operand on \(device): copy it there with Tensor.to(_:) (only scalars, rank 0, go with any device)")
            }
        }
        return try program(op, attributes, inputs.map(\.valueType)).callResident(inputs, on: self)[0]
    }

    /// The program of one operator on operands of `types`, on the calling thread's stream.
    private func program(_ op: OpCode, _ attributes: Attributes, _ types: [ValueType]) throws -> DeviceProgram {
        let state = threads.value, signature = OperatorSignature(op: op, attributes: attributes, types: types)
        state.uses += 1
        if let index = state.programs.index(forKey: signature) {
            state.programs.values[index].lastUse = state.uses
            return state.programs.values[index].program
        }
        // Placeholder operands: ones, or zeros for integers and booleans (a valid index or label).
        let placeholders = try types.map { t in
            try Tensor.full(t.shape, t.dtype.isFloatingPoint ? 1 : 0, dtype: t.dtype)
        }
        let (bundle, _) = try traceGraph({ [try Self.functionalForm(op, attributes, $0)] }, at: placeholders)
        let compiled = try bundle.compiledWithOutputsApart(order: bundle.graph.nodesReachingOutputs, native: .off)
        let program = try DeviceProgram(compiled, pool: pool, stream: try stream(), framePerCall: true)
        if state.programs.count >= Self.maximumPrograms,
           let oldest = state.programs.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            state.programs[oldest] = nil
        }
        state.programs[signature] = (program, state.uses)
        return program
    }

    /// `op` on `operands`, an in-place operator as the new value of its target (`operands[0]`,
    /// which `dispatchInPlace` checked the others against): the same arithmetic, in the same order.
    static func functionalForm(_ op: OpCode, _ attributes: Attributes, _ operands: [Tensor]) throws -> Tensor {
        switch (op, attributes) {
        case (.addInPlace, _): return try operands[0] + operands[1]
        case (.mulInPlace, _): return try operands[0] * operands[1]
        case (.multiplyAddInPlace, _): return try operands[1].multiplied(by: operands[2], adding: operands[0])
        case let (.assignInPlace, .region(starts, ends)):
            // The target where a mask of the region is false, the value (broadcast, padded) where it is true.
            let target = operands[0], region = zip(starts, ends).map { $1 - $0 }
            let high = zip(target.shape, ends).map { $0 - $1 }
            let mask = try Tensor.full(region, 1, dtype: .bool).padded(low: starts, high: high)
            let value = try operands[1].broadcast(to: region).padded(low: starts, high: high)
            return try Tensor.select(mask, value, target)
        default: return try dispatch(op, attributes, operands)[0]
        }
    }

    package func upload(_ tensor: Tensor) throws -> Tensor {
        precondition(tensor.storage.deviceMemory == nil, "upload of a device tensor")
        let stream = try stream(), bytes = tensor.elementCount * tensor.dtype.byteSize
        let block = try DeviceBlock(bytes: bytes, stream: stream, tensors: self)
        // From pageable host memory the copy has taken the bytes when it returns.
        if bytes > 0 { try withExtendedLifetime(tensor) { try stream.copy(tensor.rawPointer, toDevice: block.address, bytes: bytes) } }
        return block.tensor(tensor.valueType)
    }

    /// A CPU copy of the device tensor `tensor`, once the work writing it has run.
    package func download(_ tensor: Tensor) throws -> Tensor {
        guard let memory = tensor.storage.deviceMemory else { return tensor }
        let copy = Tensor(uninitialized: tensor.shape, dtype: tensor.dtype)
        try memory.read(into: copy.rawPointer, offset: tensor.offset * tensor.dtype.byteSize, bytes: tensor.elementCount * tensor.dtype.byteSize)
        return copy
    }
}

/// A block of device memory that a device tensor's storage owns: allocated from its device's
/// ``DeviceMemoryPool`` and written on one stream (the thread's that made the tensor).
///
/// Another stream that reads it first waits for the writing stream (``use(on:)``); the block goes
/// back to the pool when the storage goes, with an event after the writing stream's work then (the
/// pool hands it out again once that has run, or at once for work on the same stream, which runs
/// after it) — after waiting for any other stream that read it.
// @unchecked Sendable: immutable but for the readers' list, reached under its lock.
final class DeviceBlock: DeviceMemory, @unchecked Sendable {
    let address: UInt64
    let capacity: Int
    let tensors: DeviceTensors
    /// The stream whose work writes the block.
    let stream: any KernelStream
    /// Other streams that read the block.
    private let readers = Lock<[Reader]>([])
    /// A stream in the readers' list (@unchecked Sendable: a device's streams take work from any
    /// thread — the driver's are thread-safe, the emulation's run it at once).
    private struct Reader: @unchecked Sendable { let stream: any KernelStream }

    var backend: any DeviceBackend { tensors }

    /// A block of at least `bytes` bytes, to be written on `stream`.
    init(bytes: Int, stream: any KernelStream, tensors: DeviceTensors) throws {
        (address, capacity) = try tensors.pool.allocate(bytes, on: stream)
        (self.stream, self.tensors) = (stream, tensors)
    }

    deinit {
        for reader in readers.withLock({ $0 }) { try? reader.stream.synchronize() }
        let pending = try? stream.record()
        if pending == nil { try? stream.synchronize() }
        tensors.pool.release(address, capacity: capacity, pending: pending, stream: stream)
    }

    /// A tensor of `type` over the block.
    func tensor(_ type: ValueType) -> Tensor {
        Tensor(storage: TensorStorage(dtype: type.dtype, elementCount: type.elementCount, device: tensors.device, memory: self, capacity: capacity),
               shape: type.shape)
    }

    /// Makes later work on `other` wait for the work writing the block, and the block's release
    /// wait for `other`'s work.
    func use(on other: any KernelStream) throws {
        guard other !== stream else { return }
        try other.wait(try stream.record())
        readers.withLock { readers in
            if !readers.contains(where: { $0.stream === other }) { readers.append(Reader(stream: other)) }
        }
    }

    func read(into destination: UnsafeMutableRawPointer, offset: Int, bytes: Int) throws {
        guard bytes > 0 else { return }
        try stream.copy(address + UInt64(offset), toHost: destination, bytes: bytes)
        try stream.synchronize()
    }
}

extension Tensor {
    /// This tensor on `device`: itself if it is there, else a copy.
    ///
    /// A copy to a GPU (`Device.cuda(_:)`) loads the CUDA driver and NVRTC on first use; the
    /// copy is enqueued on the calling thread's stream, and operators on the result run there
    /// (see `Documentation/GPU.md`). A copy to the CPU waits for the device's work on the tensor.
    /// A copy is not recorded by a tape or a trace: move tensors before differentiating.
    ///
    /// - Throws: `DeviceError.unavailable(device:reason:)` where the device cannot be used;
    ///   `TensorError.invalidArgument(op:detail:)` for a tensor a tape, a forward-mode level or a
    ///   trace tracks (its derivative would be lost); the device's errors.
    public func to(_ device: Device) throws -> Tensor {
        if device == self.device { return self }
        guard traceTags.isEmpty else {
            throw TensorError.invalidArgument(op: "Tensor.to", detail: "the tensor is tracked by an interpreter level (a tape, a forward-mode level or a trace), which does not record copies between devices: copy it to \(device) before differentiating or tracing")
        }
        let host = try (storage.deviceMemory?.backend as? DeviceTensors)?.download(self) ?? self
        if device == .cpu { return host }
        return try DeviceRuntime.tensors(for: device).upload(host)
    }
}

extension Device {
    /// Waits until the work the calling thread enqueued on this device has run (its stream).
    ///
    /// - Throws: `DeviceError.unavailable(device:reason:)` where the device cannot be used; the
    ///   device's errors (a kernel that failed asynchronously reports here).
    public func synchronize() throws {
        guard self != .cpu else { return }
        try DeviceRuntime.tensors(for: self).stream().synchronize()
    }

    /// The counters of this device's caching allocator (live, peak, allocations, those that
    /// reached the device, cached bytes), as `StoragePool.shared.statistics` gives the CPU's.
    ///
    /// - Throws: `DeviceError.unavailable(device:reason:)` where the device cannot be used.
    public func memoryStatistics() throws -> StoragePool.Statistics {
        guard self != .cpu else { return StoragePool.shared.statistics }
        return try DeviceRuntime.pool(for: self).statistics
    }
}

/// A point in the calling thread's work on a device: whether the work enqueued before it has run,
/// waiting for it, and the device's time between two events.
public final class DeviceEvent: @unchecked Sendable {
    // @unchecked Sendable: an immutable event handle, whose calls are thread-safe.
    private let event: any KernelEvent
    public let device: Device

    /// An event after the work the calling thread has enqueued on `device` so far.
    ///
    /// - Throws: `DeviceError.unavailable(device:reason:)` (the CPU has no events); the device's errors.
    public init(recordedOn device: Device) throws {
        guard device != .cpu else { throw DeviceError.unavailable(device: device, reason: "the CPU runs operators as they are called; it has no events") }
        self.device = device
        event = try DeviceRuntime.tensors(for: device).stream().record()
    }

    /// Whether the work before the event has run.
    public func isComplete() throws -> Bool { try event.isComplete() }
    /// Waits until the work before the event has run.
    public func synchronize() throws { try event.synchronize() }
    /// The device's milliseconds from `start` to this event (both complete).
    public func milliseconds(since start: DeviceEvent) throws -> Double { try event.milliseconds(since: start.event) }
}
