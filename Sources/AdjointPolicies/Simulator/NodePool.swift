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

/// Entries grouped by access count, each group newest first: what LFU eviction needs — the least
/// frequent entry, the oldest among equals — in O(1) per access (the minimum count moves up only
/// when its group empties, scanning the counts in between).
struct FrequencyLists {
    var pool = NodePool()
    var buckets: [Int32: NodeList] = [:]
    var minimum: Int32 = 1
    var maximum: Int32 = 1

    /// A new entry with count `count` (1 for a new object; more for one whose count was kept).
    mutating func insert(id: UInt64, size: Int64, count: Int32 = 1) -> Int32 {
        let wasEmpty = (buckets[minimum]?.count ?? 0) == 0
        let n = pool.allocate(id: id, size: size)
        pool.counters[Int(n)] = count
        pool.pushHead(n, &buckets[count, default: NodeList()])
        if wasEmpty || count < minimum { minimum = count }
        maximum = Swift.max(maximum, count)
        return n
    }

    /// One more access of `n`: it moves to the next count's group, as its newest. Counts stop at
    /// `Int32.max` (an object requested that often stays in the top group, as its newest).
    mutating func touch(_ n: Int32) {
        let f = pool.counters[Int(n)]
        guard f < Int32.max else { pool.moveToHead(n, &buckets[f, default: NodeList()]); return }
        pool.unlink(n, &buckets[f, default: NodeList()])
        pool.counters[Int(n)] = f + 1
        maximum = Swift.max(maximum, f + 1)
        pool.pushHead(n, &buckets[f + 1, default: NodeList()])
        if minimum == f, buckets[f]!.count == 0 { raiseMinimum() }
    }

    /// The least frequent entry, the oldest among equals (the lists must not be empty).
    var victim: Int32 { buckets[minimum]!.tail }

    /// The least frequent entry, the newest among equals (the lists must not be empty).
    var newestOfLeastFrequent: Int32 { buckets[minimum]!.head }

    /// Removes `n` and frees its slot.
    mutating func remove(_ n: Int32) {
        let f = pool.counters[Int(n)]
        pool.unlink(n, &buckets[f]!)
        pool.release(n)
        if f == minimum, buckets[f]!.count == 0 { raiseMinimum() }
    }

    private mutating func raiseMinimum() {
        var f = minimum + 1
        while f <= maximum {
            if let list = buckets[f], list.count > 0 { minimum = f; return }
            f += 1
        }
    }
}
