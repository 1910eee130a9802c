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
