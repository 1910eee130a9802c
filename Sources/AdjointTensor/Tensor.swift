/// The tag an interpreter level puts on a value it tracks: which level, the value's id there, and
/// optionally the level's data for the value (forward mode keeps the tangent here, so it lives
/// exactly as long as the value it belongs to).
@usableFromInline
package struct TraceTag {
    /// The level's ``InterpreterLevel/levelID`` (never 0: ``TraceTags`` ignores a level-0 tag).
    package var level: UInt32
    package var id: Int32
    package var payload: AnyObject?
    package init(level: UInt32, id: Int32, payload: AnyObject? = nil) {
        self.level = level
        self.id = id
        self.payload = payload
    }
}

/// The levels that track a tensor. Almost always zero or one, so the first tag's level and id are
/// stored inline and a tensor copy counts one reference here: the first tag's payload, or — with
/// several tags — a shared immutable list of all of them.
package struct TraceTags {
    /// The first tag's level (0: no tags; level ids start at 1) and id.
    @usableFromInline var firstLevel: UInt32 = 0
    @usableFromInline var firstID: Int32 = 0
    /// With one tag, its payload; with several (`isList`), a ``TraceTagList`` holding them all.
    @usableFromInline var extra: AnyObject?
    @usableFromInline var isList = false

    package init() {}

    @inlinable package var isEmpty: Bool { firstLevel == 0 }

    /// The number of levels tracking the value.
    @inlinable package var count: Int { firstLevel == 0 ? 0 : isList ? list.tags.count : 1 }

    /// The id the given level knows this value by.
    @inlinable
    package func id(at level: UInt32) -> Int32? {
        if firstLevel == level, level != 0 { return firstID }
        guard isList else { return nil }
        return list.tags.first(where: { $0.level == level })?.id
    }

    /// The whole tag of the given level (with its payload).
    @inlinable
    package func tag(at level: UInt32) -> TraceTag? {
        guard level != 0, firstLevel != 0 else { return nil }
        if isList { return list.tags.first(where: { $0.level == level }) }
        return firstLevel == level ? TraceTag(level: firstLevel, id: firstID, payload: extra) : nil
    }

    @usableFromInline var list: TraceTagList { unsafeDowncast(extra!, to: TraceTagList.self) }

    /// Adds or replaces the tag of `tag.level`.
    package mutating func set(_ tag: TraceTag) {
        if firstLevel == 0 || (!isList && firstLevel == tag.level) {
            (firstLevel, firstID, extra) = (tag.level, tag.id, tag.payload)
            return
        }
        var tags = all
        if let i = tags.firstIndex(where: { $0.level == tag.level }) { tags[i] = tag } else { tags.append(tag) }
        self = TraceTags(tags)
    }

    /// Removes the tag of `level`.
    package mutating func remove(level: UInt32) {
        guard level != 0, firstLevel != 0 else { return }
        if !isList {
            if firstLevel == level { self = TraceTags() }
            return
        }
        let tags = list.tags
        guard tags.contains(where: { $0.level == level }) else { return }
        self = TraceTags(tags.filter { $0.level != level })
    }

    /// All tags.
    package var all: [TraceTag] {
        if firstLevel == 0 { return [] }
        return isList ? list.tags : [TraceTag(level: firstLevel, id: firstID, payload: extra)]
    }

    /// Tags holding exactly `tags` (levels distinct).
    init(_ tags: [TraceTag]) {
        guard let first = tags.first else { return }
        (firstLevel, firstID) = (first.level, first.id)
        if tags.count == 1 {
            extra = first.payload
        } else {
            extra = TraceTagList(tags)
            isList = true
        }
    }
}

/// Several tags of one tensor (immutable: a change makes a new list, so copies never see it).
@usableFromInline
final class TraceTagList {
    @usableFromInline let tags: [TraceTag]
    init(_ tags: [TraceTag]) { self.tags = tags }
}

/// An n-dimensional array with value semantics.
///
/// A tensor is a shape, an element type and a contiguous range of elements inside a
/// ``TensorStorage`` (pooled, 64-byte aligned). Copies — and a tape's saved values — share storage
/// until one of them is written in place (copy-on-write, see ``hasSharedStorage()``). Every
/// operation goes through ``dispatch(_:_:_:)``, where interpreter levels (reverse-mode tape, forward
/// mode, profiling, capture) observe it.
public struct Tensor {
    /// The memory this value's elements lie in (shared with copies and views of it).
    public private(set) var storage: TensorStorage
    /// Offset of the first element inside the storage, in elements.
    public private(set) var offset: Int
    /// Extent of each axis.
    public private(set) var shape: [Int]
    /// Element type.
    public let dtype: DType
    /// The interpreter levels that track this value (see ``InterpreterLevel``).
    package var traceTags: TraceTags

    /// Wraps existing storage (`offset ..< offset + shape.product` must lie inside it).
    package init(storage: TensorStorage, offset: Int = 0, shape: [Int]) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= storage.elementCount || shape.reduce(1, *) == 0,
                     "Tensor(storage:offset:shape:) out of bounds")
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.dtype = storage.dtype
        self.traceTags = TraceTags()
    }

    /// A view sharing this tensor's storage (used for leading-axis slices and reshapes).
    @usableFromInline
    init(viewOf base: Tensor, offset: Int, shape: [Int]) {
        self.storage = base.storage
        self.offset = offset
        self.shape = shape
        self.dtype = base.dtype
        self.traceTags = TraceTags()
    }

    /// Uninitialized contiguous tensor (kernels fill it).
    public init(uninitialized shape: [Int], dtype: DType) {
        self.init(storage: TensorStorage(dtype: dtype, elementCount: shape.reduce(1, *)), shape: shape)
    }

    public var device: Device { storage.device }
    public var rank: Int { shape.count }
    /// Element type and shape, as the IR describes a value.
    public var valueType: ValueType { ValueType(dtype: dtype, shape: shape) }
    public var elementCount: Int { shape.reduce(1, *) }
    public var isScalar: Bool { elementCount == 1 }

    /// Pointer to the first element, typed (for a device tensor, in the host copy of its
    /// elements: see ``TensorStorage/pointer``).
    @inlinable
    public func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        storage.typed(T.self) + offset
    }

    /// Raw pointer to the first element (for a device tensor, in the host copy of its elements:
    /// see ``TensorStorage/pointer``).
    public var rawPointer: UnsafeMutableRawPointer {
        storage.pointer + offset * dtype.byteSize
    }

    /// The first element in host memory, typed, for code that only sees CPU tensors (the CPU
    /// kernels): ``TensorStorage/hostPointer``.
    @inlinable
    package func elements<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        storage.hostPointer.assumingMemoryBound(to: T.self) + offset
    }

    /// ``elements(_:)`` untyped.
    package var hostRawPointer: UnsafeMutableRawPointer {
        storage.hostPointer + offset * dtype.byteSize
    }

    /// This value without any interpreter tags: a constant to every level.
    public var untracked: Tensor {
        var t = self
        t.traceTags = TraceTags()
        return t
    }

    /// Whether two tensors share storage.
    public func sharesStorage(with other: Tensor) -> Bool { storage === other.storage }

    /// Whether an in-place write to this value would copy first: anything else refers to its
    /// storage — another tensor value, a view, a tape's saved value, a held `TensorStorage`.
    /// `mutating` only so that asking adds no reference.
    public mutating func hasSharedStorage() -> Bool { !isKnownUniquelyReferenced(&storage) }

    /// Makes the storage referred to by this value alone before an in-place write (copy-on-write):
    /// copies the elements into new storage when anything else refers to it. Returns whether a
    /// copy was made.
    @discardableResult
    mutating func makeUnique() -> Bool {
        if isKnownUniquelyReferenced(&storage) { return false }
        moveToOwnStorage()
        return true
    }

    /// Takes `value`'s elements (same shape and dtype) as this value's, keeping its tags: what an
    /// in-place operator on a device tensor does.
    mutating func replaceStorage(with value: Tensor) {
        precondition(value.shape == shape && value.dtype == dtype, "replaceStorage: \(value.valueType) for \(valueType)")
        (storage, offset) = (value.storage, value.offset)
    }

    /// Copies the elements into new storage of their own.
    private mutating func moveToOwnStorage() {
        let fresh = Tensor(uninitialized: shape, dtype: dtype)
        fresh.rawPointer.copyMemory(from: rawPointer, byteCount: elementCount * dtype.byteSize)
        (storage, offset) = (fresh.storage, 0)
    }

    /// Reinterprets the shape without touching data (callers check element counts).
    func withShape(_ newShape: [Int]) -> Tensor {
        Tensor(viewOf: self, offset: offset, shape: newShape)
    }

    /// A leading-axis element range as a view sharing storage.
    func leadingView(elementOffset: Int, shape newShape: [Int]) -> Tensor {
        Tensor(viewOf: self, offset: offset + elementOffset, shape: newShape)
    }
}

// @unchecked Sendable: a value (shape, offset, dtype) over a `TensorStorage` (see there) and trace
// tags whose payload objects are written only by the level that owns them, on its thread.
extension Tensor: @unchecked Sendable {}
