/// Memory on an accelerator that a device tensor's ``TensorStorage`` owns: a block from the
/// device's caching allocator, given back when the storage goes.
///
/// What the device writes into it (the operator that made the tensor) may still be running: the
/// memory knows the work to wait for, and ``read(into:offset:bytes:)`` waits for it.
package protocol DeviceMemory: AnyObject, Sendable {
    /// The device address of the block's first byte.
    var address: UInt64 { get }
    /// The backend that allocated the block and runs operators on it.
    var backend: any DeviceBackend { get }
    /// Copies `bytes` bytes from `offset` bytes into the block to host memory, once the work that
    /// writes them has run; returns when the copy is done.
    func read(into destination: UnsafeMutableRawPointer, offset: Int, bytes: Int) throws
}

/// Runs operators on one device's tensors (`AdjointCompiler`'s CUDA backend): what
/// ``dispatch(_:_:_:)`` calls instead of a CPU kernel when an operand lives on a device.
package protocol DeviceBackend: AnyObject, Sendable {
    /// The device whose tensors this backend holds.
    var device: Device { get }
    /// Runs `op` on `inputs` (at least one on this device; rank-0 CPU tensors are taken as
    /// scalars) and returns its result on this device, asynchronously: reading it waits.
    /// An in-place operator returns the target's new value.
    ///
    /// - Throws: ``TensorError/deviceMismatch(op:detail:)`` for an operand on another device (or
    ///   a CPU tensor that is not a scalar); the CPU kernel's errors for invalid operands; the
    ///   device's errors.
    func execute(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor
    /// A copy of the CPU tensor `tensor` on this device.
    func upload(_ tensor: Tensor) throws -> Tensor
}

/// The device backends loaded in this process, by device (each registers itself when it is made).
package enum DeviceBackends {
    private static let loaded = Lock<[Device: any DeviceBackend]>([:])

    package static func register(_ backend: any DeviceBackend) {
        loaded.withLock { $0[backend.device] = backend }
    }

    /// The backend of `device`.
    ///
    /// - Throws: ``TensorError/deviceUnavailable(device:reason:)`` where none is loaded.
    package static func backend(for device: Device) throws -> any DeviceBackend {
        guard let backend = loaded.withLock({ $0[device] }) else {
            throw TensorError.deviceUnavailable(device: device, reason: "no backend is loaded for it (Tensor.to(_:) loads CUDA's)")
        }
        return backend
    }
}

extension Tensor {
    /// The backend of the first operand on a device (nil: all are on the CPU). The operands are
    /// read in place, by index: a `for … in` would copy (retain and release) each tensor on every
    /// CPU operator's dispatch.
    @inline(__always)
    package static func deviceBackend(_ operands: [Tensor]) -> (any DeviceBackend)? {
        for i in operands.indices where operands[i].storage.isOnDevice { return operands[i].storage.deviceMemory!.backend }
        return nil
    }

    /// This tensor on `device`, for a result Swift code made from `device`'s operands (a custom
    /// operator's forward or derivative): itself where it is there or `device` is the CPU, a copy
    /// of a CPU tensor made with raw loops (its backend's upload).
    ///
    /// - Throws: ``TensorError/deviceMismatch(op:detail:)`` for a tensor on another device;
    ///   ``TensorError/invalidArgument(op:detail:)`` for a CPU tensor an interpreter level tracks
    ///   (a copy is not recorded, so its derivative would be lost).
    package func resident(on device: Device, for op: String) throws -> Tensor {
        if device == .cpu || self.device == device { return self }
        guard !storage.isOnDevice else {
            throw TensorError.deviceMismatch(op: op, detail: "the result is on \(self.device), the operands on \(device)")
        }
        guard traceTags.isEmpty else {
            throw TensorError.invalidArgument(op: op, detail: "the result was made on the CPU from \(device) operands and a tape, a forward-mode level or a trace tracks it; a copy to \(device) would lose its derivative: compute it with tensor operators on the operands")
        }
        return try DeviceBackends.backend(for: device).upload(self)
    }

    /// The device address of the first element (nil: the tensor is on the CPU).
    package var deviceAddress: UInt64? {
        storage.deviceMemory.map { $0.address + UInt64(offset * dtype.byteSize) }
    }

    /// `shape` filled with `value` on `device`: on a device, the scalar copied there and
    /// broadcast by its backend.
    ///
    /// - Throws: as ``full(_:_:dtype:)``; ``TensorError/deviceUnavailable(device:reason:)`` for a
    ///   device whose backend is not loaded (copying a tensor there with `Tensor.to(_:)` loads it).
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float64, on device: Device) throws -> Tensor {
        let host = try Tensor.full(device == .cpu ? shape : [], value, dtype: dtype)
        guard device != .cpu else { return host }
        let scalar = try DeviceBackends.backend(for: device).upload(host)
        return shape.isEmpty ? scalar : try scalar.broadcast(to: shape)
    }

    /// Zeros on `device` (see ``full(_:_:dtype:on:)``).
    public static func zeros(_ shape: [Int], dtype: DType = .float64, on device: Device) throws -> Tensor {
        try full(shape, 0, dtype: dtype, on: device)
    }

    /// Ones on `device` (see ``full(_:_:dtype:on:)``).
    public static func ones(_ shape: [Int], dtype: DType = .float64, on device: Device) throws -> Tensor {
        try full(shape, 1, dtype: dtype, on: device)
    }
}
