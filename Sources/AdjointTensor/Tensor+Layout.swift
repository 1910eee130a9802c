extension Tensor {
    /// Same elements in a new shape (one dimension may be -1); shares storage.
    public func reshaped(_ shape: [Int]) throws -> Tensor { try dispatch1(.reshape, .shape(shape), [self]) }

    /// Axes reordered: result axis `i` is input axis `permutation[i]`.
    public func transposed(_ permutation: [Int]) throws -> Tensor {
        try dispatch1(.transpose, .permutation(permutation), [self])
    }

    /// The last two axes swapped.
    public func transposed() throws -> Tensor {
        guard rank >= 2 else { throw TensorError.invalidArgument(op: OpCode.transpose.rawValue, detail: "needs rank ≥ 2, shape is \(shapeText(shape))") }
        var p = Array(0..<rank)
        p.swapAt(rank - 1, rank - 2)
        return try transposed(p)
    }

    public func broadcast(to shape: [Int]) throws -> Tensor { try dispatch1(.broadcastTo, .shape(shape), [self]) }

    /// The block `starts[i] ..< ends[i]` on every axis.
    public func slice(starts: [Int], ends: [Int]) throws -> Tensor {
        try dispatch1(.slice, .region(starts: starts, ends: ends), [self])
    }

    /// `ranges` on the leading axes; whole extents on the rest. A negative bound counts from the
    /// end of its axis (`-1` is the last element), as in NumPy.
    public func slice(_ ranges: [Range<Int>]) throws -> Tensor {
        let (starts, ends) = try regionBounds(ranges, op: OpCode.slice.rawValue)
        return try slice(starts: starts, ends: ends)
    }

    /// The region of `ranges` on the leading axes, negative bounds counted from the end.
    func regionBounds(_ ranges: [Range<Int>], op: String) throws -> ([Int], [Int]) {
        guard ranges.count <= rank else {
            throw TensorError.invalidArgument(op: op, detail: "\(ranges.count) ranges for a tensor of rank \(rank), shape \(shapeText(shape))")
        }
        var starts = [Int](repeating: 0, count: rank), ends = shape
        for (axis, r) in ranges.enumerated() {
            let n = shape[axis]
            starts[axis] = r.lowerBound < 0 ? r.lowerBound + n : r.lowerBound
            ends[axis] = r.upperBound < 0 ? r.upperBound + n : r.upperBound
            guard 0 <= starts[axis], starts[axis] <= ends[axis], ends[axis] <= n else {
                throw TensorError.sliceOutOfBounds(op: op, shape: shape, axis: axis, requested: "\(r.lowerBound)..<\(r.upperBound)")
            }
        }
        return (starts, ends)
    }

    /// The tensors joined along an existing `axis` (to join rank-0 tensors or add an axis, use
    /// ``stack(_:axis:)``).
    public static func concat(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        try dispatch1(.concat, .axis(axis), tensors)
    }

    public static func stack(_ tensors: [Tensor], axis: Int = 0) throws -> Tensor {
        try dispatch1(.stack, .axis(axis), tensors)
    }

    /// Pads with `value`: `low[i]` elements before and `high[i]` after axis `i`.
    public func padded(low: [Int], high: [Int], value: Double = 0) throws -> Tensor {
        try dispatch1(.pad, .pad(low: low, high: high, value: value), [self])
    }

    // MARK: Indexing
    /// `take(self, indices, axis)` (index-select): integer `indices` of any shape.
    public func gather(_ indices: Tensor, axis: Int = 0) throws -> Tensor {
        try dispatch1(.gather, .axis(axis), [self, indices])
    }

    /// `self` with `updates` added at `indices` along `axis`; repeated indices accumulate.
    public func scatterAdd(_ indices: Tensor, _ updates: Tensor, axis: Int = 0) throws -> Tensor {
        try dispatch1(.scatterAdd, .axis(axis), [self, indices, updates])
    }

    /// One-hot encoding of integer indices along a new last axis.
    public func oneHot(depth: Int, dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.oneHot, .oneHot(depth: depth, dtype: dtype), [self])
    }
}
