extension Tensor {
    /// `self += other` in place (other broadcasts to self's shape).
    ///
    /// Writes the storage directly when no other tensor value refers to it (a tape's saved
    /// reference does not count); a tape that saved the old contents then fails at backward,
    /// naming this write.
    public mutating func add_(_ other: Tensor) throws {
        try dispatchInPlace(.addInPlace, .none, target: &self, operands: [other])
    }

    /// `self *= other` in place.
    public mutating func mul_(_ other: Tensor) throws {
        try dispatchInPlace(.mulInPlace, .none, target: &self, operands: [other])
    }

    /// `self += factor·other` in place, in one pass (both broadcast to self's shape; rounded after
    /// the product and after the sum, so bitwise `self + factor * other`). An optimizer's update
    /// `w += (−lr)·g` without a temporary.
    public mutating func multiplyAdd_(_ factor: Tensor, _ other: Tensor) throws {
        try dispatchInPlace(.multiplyAddInPlace, .none, target: &self, operands: [factor, other])
    }

    /// Runs `body` with this tensor's elements, row-major, as a mutable buffer of `T` — to refill a
    /// tensor in place (a simulator's input at each step, a batch) instead of making a new one.
    ///
    /// The elements are made this value's own first: they are copied when anything else refers
    /// to the storage — another tensor value, a view, or a tape that saved it — so a computation
    /// that already read the old values keeps them (and never fails at backward because of this
    /// write). Otherwise the write is in place and allocates nothing. Tracked values (those an
    /// interpreter level has tagged) cannot be written this way: the write would bypass
    /// differentiation; nor can a device tensor's.
    ///
    /// - Throws: ``TensorError/dtypeMismatch(op:detail:)`` when `T` is not the element type;
    ///   ``TensorError/invalidArgument(op:detail:)`` when an interpreter level tracks the tensor;
    ///   ``TensorError/deviceMismatch(op:detail:)`` for a tensor on a device.
    @inlinable
    public mutating func withUnsafeMutableScalars<T: TensorScalar, R>(as _: T.Type, _ body: (UnsafeMutableBufferPointer<T>) throws -> R) throws -> R {
        let base = try exclusiveElements(T.dtype, scalarType: T.self)
        return try body(UnsafeMutableBufferPointer(start: base.assumingMemoryBound(to: T.self), count: elementCount))
    }

    /// The first element, after checking `dtype` and making the storage this value's own (the
    /// part of ``withUnsafeMutableScalars(as:_:)`` that does not depend on the element type).
    @usableFromInline
    mutating func exclusiveElements(_ elementType: DType, scalarType: Any.Type) throws -> UnsafeMutableRawPointer {
        let op = "Tensor.withUnsafeMutableScalars"
        guard elementType == dtype else {
            throw TensorError.dtypeMismatch(op: op, detail: "\(scalarType) elements asked of a \(dtype) tensor")
        }
        guard traceTags.isEmpty else {
            throw TensorError.invalidArgument(op: op, detail: "the tensor is tracked by interpreter level \(traceTags.firstLevel); write an untracked copy (`untracked`) instead")
        }
        guard !storage.isOnDevice else {
            throw TensorError.deviceMismatch(op: op, detail: "the tensor is on \(device); its elements are written by operators there (or copy it to the CPU with to(.cpu))")
        }
        makeUnique()
        return rawPointer
    }

    /// Indexed assignment: writes `value` (broadcast) into the block `ranges` on the leading axes.
    public mutating func assign(_ value: Tensor, at ranges: [Range<Int>]) throws {
        let (starts, ends) = try regionBounds(ranges, op: OpCode.assignInPlace.rawValue)
        try dispatchInPlace(.assignInPlace, .region(starts: starts, ends: ends), target: &self, operands: [value])
    }

    /// Indexed assignment of a block given by per-axis starts and ends.
    public mutating func assign(_ value: Tensor, starts: [Int], ends: [Int]) throws {
        try dispatchInPlace(.assignInPlace, .region(starts: starts, ends: ends), target: &self, operands: [value])
    }
}
