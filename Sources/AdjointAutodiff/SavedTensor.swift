import AdjointTensor

/// A value a tape keeps for its backward pass: a reference to its storage and offset, and its tags
/// at the other interpreter levels (so a backward pass can itself be differentiated).
///
/// The reference is an ordinary strong one, so copy-on-write counts it: an in-place write to the
/// tensor while the tape holds it goes to a copy, and backward reads the values as they were saved.
struct SavedTensor {
    let storage: TensorStorage
    let offset: Int
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
        if tags.count == 1, tags.id(at: level) != nil {
            self.tags = TraceTags()   // the common case: tracked by this level only
        } else {
            var t = tags
            t.remove(level: level)
            self.tags = t
        }
    }

    /// The saved value as a tensor of `shape` — the shape it was saved with, which the tape keeps
    /// as the value's type.
    func tensor(shape: [Int]) -> Tensor {
        var t = Tensor(storage: storage, offset: offset, shape: shape)
        t.traceTags = tags
        return t
    }

    /// The first saved element, as `T` (the saved dtype's element type) — a rank-0 value.
    func scalar<T: TensorScalar>(_: T.Type) -> T { storage.hostPointer.assumingMemoryBound(to: T.self)[offset] }
}
