/// Values keyed by step index, kept sorted by step in one array: what an unroll stores (snapshots,
/// recorded steps) is added and removed mostly at the end — checkpoint schedules store states in
/// step order and release them last first — so a lookup is a binary search and an insertion or
/// removal moves nothing in the common case. Cheaper than a `Dictionary<Int, _>`, whose every
/// access hashes the key (about 200 instructions per snapshot operation of a compiled step).
@usableFromInline
struct StepTable<Value> {
    @usableFromInline var entries: [(step: Int, value: Value)] = []

    @inlinable init(capacity: Int = 0) { entries.reserveCapacity(capacity) }

    @inlinable var count: Int { entries.count }

    /// The position of `step`, or where it would be inserted.
    @inlinable func position(of step: Int) -> (index: Int, found: Bool) {
        // The last entry first: the usual case.
        if let last = entries.last {
            if last.step == step { return (entries.count - 1, true) }
            if last.step < step { return (entries.count, false) }
        } else {
            return (0, false)
        }
        var (low, high) = (0, entries.count - 1)
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].step < step { low = middle + 1 } else { high = middle }
        }
        return (low, entries[low].step == step)
    }

    @inlinable subscript(step: Int) -> Value? {
        let (index, found) = position(of: step)
        return found ? entries[index].value : nil
    }

    /// Adds or replaces the value of `step`.
    @inlinable mutating func set(_ value: Value, at step: Int) {
        let (index, found) = position(of: step)
        if found {
            entries[index].value = value
        } else if index == entries.count {
            entries.append((step, value))
        } else {
            entries.insert((step, value), at: index)
        }
    }

    /// Removes and returns the value of `step`, if any.
    @inlinable mutating func remove(_ step: Int) -> Value? {
        let (index, found) = position(of: step)
        guard found else { return nil }
        return index == entries.count - 1 ? entries.removeLast().value : entries.remove(at: index).value
    }

    @inlinable mutating func removeAll() { entries.removeAll(keepingCapacity: true) }
}
