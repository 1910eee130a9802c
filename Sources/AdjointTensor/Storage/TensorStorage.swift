import CSwiftRuntime
import Synchronization

/// Where a tensor's elements live: a device and, on the CPU, a pooled aligned block.
public struct Device: Hashable, Codable, Sendable, CustomStringConvertible {
    /// Kinds of device. Only the CPU has kernels today; the field keeps room for accelerators.
    public enum Kind: String, Hashable, Codable, Sendable { case cpu }
    public var kind: Kind
    public var ordinal: Int

    public static let cpu = Device(kind: .cpu, ordinal: 0)
    public var description: String { ordinal == 0 ? kind.rawValue : "\(kind.rawValue):\(ordinal)" }
}

/// A half-open range of element offsets `lower ..< upper` inside one storage.
public struct ElementRegion: Hashable, Sendable, CustomStringConvertible {
    public var lower: Int
    public var upper: Int
    public init(_ lower: Int, _ upper: Int) { self.lower = lower; self.upper = upper }
    public func overlaps(_ other: ElementRegion) -> Bool { lower < other.upper && other.lower < upper }
    public var description: String { "[\(lower), \(upper))" }
}

/// The memory behind one or more tensors, with the mutation history the tape checks.
///
/// Storage is shared by tensor values (copies, views along the first axis, reshapes) and by saved
/// values on a tape. Copy-on-write counts only the first kind (``isShared(_:)``), so a tape holding
/// the storage never forces a copy — and an in-place write to memory the tape still needs is
/// detected at backward instead (``versionConflicts(in:since:)``).
// @unchecked Sendable: the elements are written only by a holder that copy-on-write found exclusive
// (or through a view the caller owns); the bookkeeping other threads touch is atomic (version, save
// state) or behind a lock (the write list).
public final class TensorStorage: @unchecked Sendable {
    /// A write made by an in-place operator.
    public struct Write: Sendable {
        public var version: UInt64
        public var regions: [ElementRegion]
        public var op: String
    }

    public let pointer: UnsafeMutableRawPointer
    public let capacity: Int
    public let elementCount: Int
    public let dtype: DType
    public let device: Device

    /// Incremented by every in-place write; read by tapes (possibly on other threads) to tell
    /// whether a saved value was overwritten. Atomic, so a read racing a write is defined.
    private let versionValue = Atomic<UInt64>(0)
    /// Incremented by every in-place write.
    public var version: UInt64 { versionValue.load(ordering: .acquiring) }
    /// Writes made while some tape held a saved reference; cleared when none does. Behind a lock
    /// (a writer appends while a tape on another thread may release its last save), held inline —
    /// a ``Lock`` would be one more allocation per tensor — and reached only through ``withWrites(_:)``.
    private let writes = Mutex<[Write]>([])

    /// Runs `body` on the write list under its lock, reported to ThreadSanitizer like a ``Lock``'s.
    private func withWrites<R>(_ body: (inout [Write]) -> R) -> R {
        let token = Unmanaged.passUnretained(self).toOpaque()
        return writes.withLock { list in
            ThreadSanitizer.acquire(token)
            defer { ThreadSanitizer.release(token) }
            return body(&list)
        }
    }
    /// Saved references held by tapes (atomic: tapes on several threads may save the same
    /// storage, a shared parameter say): their number in the low 32 bits and, above them, a
    /// generation that every save and release advances, so a reader can tell that no save or
    /// release happened between two loads (``isShared(_:)``).
    private let saveState = Atomic<Int>(0)
    private static let saveMask = (1 << 32) - 1
    private static let generation = 1 << 32
    private var saveCount: Int { saveState.load(ordering: .acquiring) & Self.saveMask }
    /// The memory accounts charged for this storage (see ``MemoryAccount``).
    private let account: AccountChain?

    public init(dtype: DType, elementCount: Int, device: Device = .cpu) {
        let bytes = Swift.max(elementCount, 1) * dtype.byteSize
        let block = StoragePool.shared.allocate(byteCount: bytes)
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

    /// Typed view of the elements.
    @inlinable
    public func typed<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        pointer.assumingMemoryBound(to: T.self)
    }

    /// Records an in-place write of `regions` by `op` and bumps the version.
    package func recordWrite(_ regions: [ElementRegion], op: String) {
        let version = versionValue.wrappingAdd(1, ordering: .acquiringAndReleasing).newValue
        if saveCount > 0 {
            withWrites { $0.append(Write(version: version, regions: regions, op: op)) }
        }
    }

    /// Bumps the version for a write made while nothing but the writer refers to the storage (so
    /// no tape holds a saved reference that would need the write's regions).
    func recordUnsavedWrite() {
        assert(saveCount == 0, "recordUnsavedWrite with \(saveCount) saved references")
        versionValue.wrappingAdd(1, ordering: .acquiringAndReleasing)
    }

    /// Called when a tape saves a reference to this storage, after taking its strong reference.
    package func retainSave() { saveState.wrappingAdd(Self.generation + 1, ordering: .acquiringAndReleasing) }

    /// Called when a tape drops a saved reference, before releasing its strong reference.
    package func releaseSave() {
        let state = saveState.wrappingAdd(Self.generation - 1, ordering: .acquiringAndReleasing).newValue
        if state & Self.saveMask == 0 {
            withWrites { if !$0.isEmpty { $0.removeAll(keepingCapacity: false) } }
        }
    }

    /// The first write after `version` that touched `region`, if any.
    public func versionConflicts(in region: ElementRegion, since version: UInt64) -> Write? {
        guard self.version != version else { return nil }
        return withWrites { writes in
            writes.first { $0.version > version && $0.regions.contains(where: { $0.overlaps(region) }) }
        }
    }
}

extension TensorStorage {
    /// Whether anything besides the tensor value holding `storage` refers to it (another tensor, a
    /// view, a held `TensorStorage` reference) — an in-place write through that value must copy
    /// first. References a tape holds to saved values (those between ``retainSave()`` and
    /// ``releaseSave()``) do not count.
    ///
    /// Without saves this is `isKnownUniquelyReferenced`. With saves, the strong reference count
    /// (`swift_retainCount`, the Swift runtime's entry point behind the standard library's
    /// `_getRetainCount`) is compared with 1 + the save count. A tape takes its strong reference
    /// before counting the save and uncounts it before releasing, so the count of saves never
    /// exceeds the references they hold; and the save state is read before and after the strong
    /// count, with a generation every save and release advances, so an answer of `false` means
    /// no save came or went meanwhile. A race with another thread's tape can therefore only cause
    /// an unneeded copy. `storage` is `inout` so that asking adds no reference.
    public static func isShared(_ storage: inout TensorStorage) -> Bool {
        if isKnownUniquelyReferenced(&storage) { return false }
        let before = storage.saveState.load(ordering: .acquiring)
        let saves = before & saveMask
        guard saves > 0 else { return true }
        let strong = swift_retainCount(Unmanaged.passUnretained(storage).toOpaque())
        guard storage.saveState.load(ordering: .acquiring) == before else { return true }
        return strong != 1 + saves
    }
}
