/// Cache entries in arrays, linked into intrusive doubly linked lists by index: no allocation per
/// request once the pool has grown to the cache's size.
struct NodePool {
    var ids: [UInt64] = []
    var sizes: [Int64] = []
    /// Policy-specific small state: a frequency, a visited bit, a list tag.
    var counters: [Int32] = []
    var tags: [UInt8] = []
    var next: [Int32] = []     // toward the tail (older)
    var previous: [Int32] = [] // toward the head (newer)
    private var free: [Int32] = []

    mutating func allocate(id: UInt64, size: Int64, tag: UInt8 = 0) -> Int32 {
        if let n = free.popLast() {
            let i = Int(n)
            ids[i] = id; sizes[i] = size; counters[i] = 0; tags[i] = tag; next[i] = -1; previous[i] = -1
            return n
        }
        ids.append(id); sizes.append(size); counters.append(0); tags.append(tag); next.append(-1); previous.append(-1)
        return Int32(ids.count - 1)
    }

    mutating func release(_ n: Int32) { free.append(n) }

    /// Inserts `n` at the head (newest end) of `list`.
    mutating func pushHead(_ n: Int32, _ list: inout NodeList) {
        let i = Int(n)
        previous[i] = -1
        next[i] = list.head
        if list.head >= 0 { previous[Int(list.head)] = n } else { list.tail = n }
        list.head = n
        list.count += 1
        list.bytes += sizes[i]
    }

    /// Unlinks `n` from `list`.
    mutating func unlink(_ n: Int32, _ list: inout NodeList) {
        let i = Int(n)
        let p = previous[i], q = next[i]
        if p >= 0 { next[Int(p)] = q } else { list.head = q }
        if q >= 0 { previous[Int(q)] = p } else { list.tail = p }
        previous[i] = -1
        next[i] = -1
        list.count -= 1
        list.bytes -= sizes[i]
    }

    /// Moves `n` (in `list`) to the head.
    mutating func moveToHead(_ n: Int32, _ list: inout NodeList) {
        guard list.head != n else { return }
        unlink(n, &list)
        pushHead(n, &list)
    }
}

/// The ends and totals of one list of a ``NodePool``; head is the newest entry, tail the oldest.
struct NodeList {
    var head: Int32 = -1
    var tail: Int32 = -1
    var count = 0
    var bytes: Int64 = 0
}
