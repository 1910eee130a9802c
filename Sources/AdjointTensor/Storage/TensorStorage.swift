
/// Where a tensor's elements live, or where a compiled function runs: a device and, on the CPU, a
/// pooled aligned block.
///
/// Tensors live on the CPU. A CUDA GPU runs compiled functions (`compile(device: .cuda())`): their
/// programs' kernels are generated and compiled at run time, and the tensors they take and return
/// are copied to and from it.
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
    /// CUDA GPU `ordinal` (only GPU 0 runs anything yet).
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
// @unchecked Sendable: the fields are immutable; the elements are written only by a holder that
// copy-on-write found to be the only reference (or through memory the caller allocated and owns).
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    public let elementCount: Int
    public let dtype: DType
    public let device: Device
    /// The memory accounts charged for this storage (see ``MemoryAccount``).
    private let account: AccountChain?

    package init(dtype: DType, elementCount: Int, device: Device = .cpu) {
        let bytes = Swift.max(elementCount, 1) * dtype.byteSize
        let block = StoragePool.shared.allocate(byteCount: bytes)
        // A pooled block may have held elements of another type: bind it to this storage's
        // element type, so typed access (``typed(_:)``) is to memory bound to that type.
        dtype.bindElements(block.pointer, capacity: block.capacity / dtype.byteSize)
        self.pointer = block.pointer
        self.capacity = block.capacity
        self.elementCount = elementCount
        self.dtype = dtype
        self.device = device
        account = AccountChain.current
        account?.charge(block.capacity)
    }

    deinit {
        account?.charge(-capacity)
        StoragePool.shared.deallocate(pointer, capacity: capacity)
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
