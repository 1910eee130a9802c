/// The tag an interpreter level puts on a value it tracks: which level, the value's id there, and
/// optionally the level's data for the value (forward mode keeps the tangent here, so it lives
/// exactly as long as the value it belongs to).
public struct TraceTag {
    public var level: UInt32
    public var id: Int32
    public var payload: AnyObject?
    public init(level: UInt32, id: Int32, payload: AnyObject? = nil) {
        self.level = level
        self.id = id
        self.payload = payload
    }
}

/// The levels that track a tensor. Almost always zero or one, so the first is stored inline.
public struct TraceTags {
    @usableFromInline var first: TraceTag?
    @usableFromInline var more: [TraceTag]?

    public init() {}

    @inlinable public var isEmpty: Bool { first == nil }

    /// The id the given level knows this value by.
    @inlinable
    public func id(at level: UInt32) -> Int32? {
        guard let first else { return nil }
        if first.level == level { return first.id }
        if let more { for t in more where t.level == level { return t.id } }
        return nil
    }

    /// The whole tag of the given level (with its payload).
    @inlinable
    public func tag(at level: UInt32) -> TraceTag? {
        guard let first else { return nil }
        if first.level == level { return first }
        if let more { for t in more where t.level == level { return t } }
        return nil
    }

    /// Adds or replaces the tag of `tag.level`.
    public mutating func set(_ tag: TraceTag) {
        guard let f = first else { first = tag; return }
        if f.level == tag.level { first = tag; return }
        if let i = more?.firstIndex(where: { $0.level == tag.level }) { more![i] = tag; return }
        more = (more ?? []) + [tag]
    }

    /// Removes the tag of `level`.
    public mutating func remove(level: UInt32) {
        if first?.level == level {
            first = more?.first
            if more != nil { more!.removeFirst(); if more!.isEmpty { more = nil } }
        } else if let i = more?.firstIndex(where: { $0.level == level }) {
            more!.remove(at: i)
            if more!.isEmpty { more = nil }
        }
    }

    /// All tags.
    public var all: [TraceTag] {
        guard let first else { return [] }
        return [first] + (more ?? [])
    }
}

/// An n-dimensional array with value semantics.
///
/// A tensor is a shape, an element type and a contiguous range of elements inside a
/// ``TensorStorage`` (pooled, 64-byte aligned). Copies share storage until one of them is written in
/// place (copy-on-write). Every operation goes through ``dispatch(_:_:_:)``, where interpreter levels
/// (reverse-mode tape, and later forward mode, profiling, capture) observe it.
public struct Tensor {
    @usableFromInline var buffer: TensorBuffer
    /// Offset of the first element inside the storage, in elements.
    public private(set) var offset: Int
    /// Extent of each axis.
    public private(set) var shape: [Int]
    /// Element type.
    public let dtype: DType
    /// The interpreter levels that track this value (see ``InterpreterLevel``).
    public var traceTags: TraceTags

    /// Wraps existing storage (`offset ..< offset + shape.product` must lie inside it).
    public init(storage: TensorStorage, offset: Int = 0, shape: [Int]) {
        precondition(offset >= 0 && offset + shape.reduce(1, *) <= storage.elementCount || shape.reduce(1, *) == 0,
                     "Tensor(storage:offset:shape:) out of bounds")
        self.buffer = TensorBuffer(storage)
        self.offset = offset
        self.shape = shape
        self.dtype = storage.dtype
        self.traceTags = TraceTags()
    }

    /// A view sharing this tensor's copy-on-write box (used for leading-axis slices and reshapes).
    @usableFromInline
    init(viewOf base: Tensor, offset: Int, shape: [Int]) {
        self.buffer = base.buffer
        self.offset = offset
        self.shape = shape
        self.dtype = base.dtype
        self.traceTags = TraceTags()
    }

    /// Uninitialized contiguous tensor (kernels fill it).
    public init(uninitialized shape: [Int], dtype: DType) {
        self.init(storage: TensorStorage(dtype: dtype, elementCount: shape.reduce(1, *)), shape: shape)
    }

    public var storage: TensorStorage { buffer.storage }
    public var device: Device { buffer.storage.device }
    public var rank: Int { shape.count }
    /// Element type and shape, as the IR describes a value.
    public var valueType: ValueType { ValueType(dtype: dtype, shape: shape) }
    public var elementCount: Int { shape.reduce(1, *) }
    public var isScalar: Bool { elementCount == 1 }

    /// The elements this tensor covers inside its storage.
    public var region: ElementRegion { ElementRegion(offset, offset + elementCount) }

    /// Pointer to the first element, typed.
    @inlinable
    public func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> {
        buffer.storage.typed(T.self) + offset
    }

    /// Raw pointer to the first element.
    public var rawPointer: UnsafeMutableRawPointer {
        buffer.storage.pointer + offset * dtype.byteSize
    }

    /// This value without any interpreter tags: a constant to every level.
    public var untracked: Tensor {
        var t = self
        t.traceTags = TraceTags()
        return t
    }

    /// Whether two tensors share storage.
    public func sharesStorage(with other: Tensor) -> Bool { buffer.storage === other.buffer.storage }

    /// Makes the storage exclusively this value's before an in-place write (copy-on-write).
    /// Returns whether a copy was made.
    @discardableResult
    mutating func makeUnique() -> Bool {
        if isKnownUniquelyReferenced(&buffer) { return false }
        let fresh = Tensor(uninitialized: shape, dtype: dtype)
        fresh.rawPointer.copyMemory(from: rawPointer, byteCount: elementCount * dtype.byteSize)
        buffer = fresh.buffer
        offset = 0
        return true
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

extension Tensor: @unchecked Sendable {}
