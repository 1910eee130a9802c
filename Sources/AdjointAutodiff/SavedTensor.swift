import AdjointTensor

/// A value a tape keeps for its backward pass: the storage region, the version it had, and its tags
/// at the other interpreter levels (so a backward pass can itself be differentiated).
///
/// The storage reference is counted as a save (``TensorStorage/retainSave()``), which copy-on-write
/// does not count as sharing: saving never forces a copy, and an in-place write to the saved region
/// is caught by ``verify(op:node:input:shape:)``.
struct SavedTensor {
    let storage: TensorStorage
    let offset: Int
    let version: UInt64
    let tags: TraceTags

    init(_ tensor: borrowing Tensor, dropping level: UInt32) {
        self.init(storage: tensor.storage, offset: tensor.offset, tags: tensor.traceTags, dropping: level)
    }

    /// The tensor at `tensor`, read field by field (loading the whole value would copy it).
    init(at tensor: UnsafePointer<Tensor>, dropping level: UInt32) {
        self.init(storage: tensor.pointee.storage, offset: tensor.pointee.offset, tags: tensor.pointee.traceTags, dropping: level)
    }

    private init(storage: TensorStorage, offset: Int, tags: TraceTags, dropping level: UInt32) {
        self.storage = storage
        self.offset = offset
        version = storage.version
        if tags.count == 1, tags.id(at: level) != nil {
            self.tags = TraceTags()   // the common case: tracked by this level only
        } else {
            var t = tags
            t.remove(level: level)
            self.tags = t
        }
        storage.retainSave()
    }

    func release() { storage.releaseSave() }

    /// The saved value as a tensor of `shape` — the shape it was saved with, which the tape keeps
    /// as the value's type (callers ``verify(op:node:input:shape:)`` first).
    func tensor(shape: [Int]) -> Tensor {
        var t = Tensor(storage: storage, offset: offset, shape: shape)
        t.traceTags = tags
        return t
    }

    /// The first saved element, as `T` (the saved dtype's element type) — a rank-0 value.
    func scalar<T: TensorScalar>(_: T.Type) -> T { storage.typed(T.self)[offset] }

    /// Throws ``AutodiffError/savedTensorModified`` if an in-place write touched the saved region
    /// since it was saved. `input` is the input index, or -1 for the output (used in the message).
    func verify(op: OpCode, node: Int, input: Int, shape: [Int]) throws {
        if storage.version != version {
            let region = ElementRegion(offset, offset + shape.reduce(1, *))
            if let write = storage.versionConflicts(in: region, since: version) {
                throw AutodiffError.savedTensorModified(op: op, node: node, input: input < 0 ? "the output" : "input \(input)",
                                                        shape: shape, savedVersion: version,
                                                        currentVersion: storage.version, writer: write.op)
            }
        }
    }
}
