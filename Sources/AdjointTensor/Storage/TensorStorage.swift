
/// Where a tensor's elements live, or where a compiled function runs: a device and, on the CPU, a
/// pooled aligned block.
///
/// Tensors live on the CPU unless copied to a CUDA GPU (`Tensor.to(.cuda())`, from
/// `AdjointCompiler`); operators then run where their operands are, with kernels generated and
/// compiled at run time. Compiled functions run on a GPU too (`compile(device: .cuda())`).
public struct Device: Hashable, Codable, Sendable, CustomStringConvertible {
    /// Kinds of device.
    public enum Kind: String, Hashable, Codable, Sendable {
        case cpu
        /// An NVIDIA GPU through the CUDA driver (loaded at run time).
        case cuda
    }
    public var kind: Kind
    public var ordinal: Int

    public init(kind: Kind, ordinal: Int) { (self.kind, self.ordinal) = (kind, ordinal) }

    public static let cpu = Device(kind: .cpu, ordinal: 0)
    /// CUDA GPU `ordinal` (only GPU 0 runs anything).
    public static func cuda(_ ordinal: Int = 0) -> Device { Device(kind: .cuda, ordinal: ordinal) }
    public var description: String { ordinal == 0 ? kind.rawValue : "\(kind.rawValue):\(ordinal)" }
}

/// The memory behind one or more tensors.
///
/// Storage is shared by tensor values (copies, views along the first axis, reshapes) and by the
/// values a tape saved for its backward pass. Every one of them is a strong reference, and an
/// in-place write copies first unless the writer's reference is the only one
/// (`isKnownUniquelyReferenced`, see ``Tensor/hasSharedStorage()``): a tape therefore always
/// reads the values it saved, and nothing needs counting beside Swift's own reference count.
///
/// A device tensor's storage holds a block of the device's memory (`deviceMemory`), written
/// once by the operator that made it and never in place (an in-place operator on a device tensor
/// gives the tensor new storage). Its host ``pointer`` is a copy of the elements made on first
/// use, after waiting for the device: reading a device tensor's values through it synchronises.
// @unchecked Sendable: the fields are immutable; the elements are written only by a holder that
// copy-on-write found to be the only reference (or through memory the caller allocated and owns);
// a device storage's host copy is made once, under its lock, and never written after.
public final class TensorStorage: @unchecked Sendable {
    /// The elements in host memory; nil for a device storage (``pointer`` makes its host copy).
    @usableFromInline let host: UnsafeMutableRawPointer?
    /// Bytes of the block holding the elements (in device memory for a device storage).
    public let capacity: Int
    public let elementCount: Int
    public let dtype: DType
    public let device: Device
    /// A CPU storage's memory accounts (``AccountChain``, see ``MemoryAccount``; nil: none), or a
    /// device storage's ``DeviceResidence`` (its memory and host copy): one field, so a storage
    /// object is no larger than before devices (a size class up costs every tensor an allocator
    /// round). Which one it holds is `host == nil`, fixed at creation; the casts below are
    /// `unsafeDowncast`, checked in debug builds, which every test of device tensors runs.
    private let owner: AnyObject?

    private var account: AccountChain? {
        guard host != nil, let owner else { return nil }
        return unsafeDowncast(owner, to: AccountChain.self)
    }

    private var residence: DeviceResidence? {
        guard host == nil, let owner else { return nil }
        return unsafeDowncast(owner, to: DeviceResidence.self)
    }

    /// The device memory holding the elements (nil: they are in host memory).
    package var deviceMemory: (any DeviceMemory)? { residence?.memory }

    /// Whether the elements are in device memory (``deviceMemory`` is set): what the CPU's hot
    /// paths test — a pointer compared with null, where loading the reference may retain it.
    @inlinable package var isOnDevice: Bool { host == nil }

    /// The elements in host memory, for code that only ever sees CPU storage (the kernels, which
    /// dispatch never hands a device operand, and the tape's rank-0 path, never used for device
    /// values): no call and so no retain of the storage around it, where ``pointer``'s copy for a
    /// device storage is a call. Traps for a device storage.
    @inlinable package var hostPointer: UnsafeMutableRawPointer { host! }

    /// The first element in host memory. For a device storage, a copy of the elements made on
    /// the first use (waiting for the device's work on them) and kept: reading it synchronises.
    /// A device that cannot be read stops the process here; `Tensor.to(.cpu)` throws instead.
    @inlinable
    public var pointer: UnsafeMutableRawPointer {
        // Not `??`: its autoclosure would retain the storage on every access.
        if let host { return host }
        return copiedToHost()
    }

    package init(dtype: DType, elementCount: Int, device: Device = .cpu) {
        let bytes = Swift.max(elementCount, 1) * dtype.byteSize
        let block = StoragePool.shared.allocate(byteCount: bytes)
        // A pooled block may have held elements of another type: bind it to this storage's
        // element type, so typed access (``typed(_:)``) is to memory bound to that type.
        dtype.bindElements(block.pointer, capacity: block.capacity / dtype.byteSize)
        self.host = block.pointer
        self.capacity = block.capacity
        self.elementCount = elementCount
        self.dtype = dtype
        self.device = device
        let account = AccountChain.current
        owner = account
        account?.charge(block.capacity)
    }

    /// Storage of `elementCount` elements in `memory`, a block of `capacity` bytes on `device`,
    /// charged to the memory accounts active on the calling thread as a CPU storage is (so a
    /// scope's ``ResourceLimits/memoryQuota`` counts its device tensors too) and credited back
    /// when it goes.
    package init(dtype: DType, elementCount: Int, device: Device, memory: any DeviceMemory, capacity: Int) {
        precondition(device != .cpu && capacity >= elementCount * dtype.byteSize, "device storage of \(elementCount) \(dtype) in \(capacity) bytes on \(device)")
        host = nil
        self.capacity = capacity
        self.elementCount = elementCount
        self.dtype = dtype
        self.device = device
        owner = DeviceResidence(memory, capacity: capacity)
    }

    deinit {
        guard let host else { return }   // a device storage: its residence gives back the host copy
        account?.charge(-capacity)
        StoragePool.shared.deallocate(host, capacity: capacity)
    }

    /// A device storage's host copy (made now if there is none).
    @usableFromInline
    func copiedToHost() -> UnsafeMutableRawPointer {
        guard let residence else { preconditionFailure("a host storage without host memory") }
        let bytes = elementCount * dtype.byteSize
        return residence.hostCopy.withLock { copy in
            if let copy { return copy.pointer }
            let block = StoragePool.shared.allocate(byteCount: Swift.max(bytes, 1))
            dtype.bindElements(block.pointer, capacity: block.capacity / dtype.byteSize)
            do {
                try residence.memory.read(into: block.pointer, offset: 0, bytes: bytes)
            } catch {
                fatalError("reading a tensor on \(device): \(error) (Tensor.to(.cpu) throws this error instead)")
            }
            copy = (block.pointer, block.capacity)
            return block.pointer
        }
    }

    /// Typed view of the elements: `T` is the element type of ``dtype`` (the memory is bound to
    /// it; code that reads the bytes as another type rebinds them for the access,
    /// `withMemoryRebound`).
    @inlinable
    public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        assert(MemoryLayout<T>.size == dtype.byteSize && (T.self as? any TensorScalar.Type)?.dtype ?? dtype == dtype,
               "\(T.self) elements of a \(dtype) storage")
        return pointer.assumingMemoryBound(to: T.self)
    }
}

/// A device storage's memory, the memory accounts its `capacity` bytes are charged to, and the
/// host copy of its elements made on first use (a cache, not charged; given back with it).
// @unchecked Sendable: the memory, accounts and capacity are immutable (the memory Sendable, the
// accounts' counters atomic); the copy is reached under its lock.
private final class DeviceResidence: @unchecked Sendable {
    let memory: any DeviceMemory
    let account: AccountChain?
    let capacity: Int
    let hostCopy = Lock<(pointer: UnsafeMutableRawPointer, capacity: Int)?>(nil)
    init(_ memory: any DeviceMemory, capacity: Int) {
        (self.memory, self.capacity, account) = (memory, capacity, AccountChain.current)
        account?.charge(capacity)
    }
    deinit {
        account?.charge(-capacity)
        if let copy = hostCopy.withLock({ $0 }) { StoragePool.shared.deallocate(copy.pointer, capacity: copy.capacity) }
    }
}

extension DType {
    /// Binds `capacity` elements at `pointer` to this type's Swift element type.
    func bindElements(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        switch self {
        case .float64: pointer.bindMemory(to: Double.self, capacity: capacity)
        case .float32: pointer.bindMemory(to: Float.self, capacity: capacity)
        case .float16: pointer.bindMemory(to: Float16.self, capacity: capacity)
        case .bfloat16: pointer.bindMemory(to: BFloat16.self, capacity: capacity)
        case .int32: pointer.bindMemory(to: Int32.self, capacity: capacity)
        case .int64: pointer.bindMemory(to: Int64.self, capacity: capacity)
        case .bool: pointer.bindMemory(to: Bool.self, capacity: capacity)
        }
    }
}
