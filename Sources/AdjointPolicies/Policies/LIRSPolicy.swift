/// LIRS (Jiang and Zhang, SIGMETRICS '02), with libCacheSim's structure and parameters: objects
/// of low inter-reference recency (LIR) hold 99 % of the cache, resident objects of high
/// inter-reference recency (HIR) the other 1 % (at least one object's worth). Stack S orders
/// LIR, resident HIR and non-resident HIR objects by recency and is pruned so that its oldest entry
/// is LIR; queue Q holds the resident HIR objects, the next to leave. An HIR object requested again
/// while still in S has a reuse distance shorter than the oldest LIR object's, and becomes LIR,
/// demoting that one to Q. S is kept under twice the cache size by forgetting the oldest
/// non-resident entries (list NH).
///
/// As in libCacheSim, an object larger than the HIR part (1 % of the cache) is not admitted unless
/// S remembers it, and a hit on an HIR object found only in Q makes room in the LIR part first.
public struct LIRSPolicy: CachePolicy {
    public var name: String { "LIRS" }
    public let capacity: Int64
    /// Bytes (or objects) of LIR and resident HIR objects.
    public var occupied: Int64 { lirBytes + hirBytes }
    /// The HIR part (1 % of the cache, at least 1) and the LIR part (the rest).
    public let hirLimit: Int64, lirLimit: Int64
    var lirBytes: Int64 = 0, hirBytes: Int64 = 0
    var s = IndexedList(), q = IndexedList(), nh = IndexedList()

    static let lir: UInt8 = 1, resident: UInt8 = 2

    public init(capacity: Int64) {
        self.capacity = capacity
        hirLimit = Swift.max(1, Int64(0.01 * Double(capacity)))
        lirLimit = capacity - hirLimit
    }

    func isLIR(_ n: Int32) -> Bool { s.pool.tags[Int(n)] & Self.lir != 0 }
    func isResident(_ n: Int32) -> Bool { s.pool.tags[Int(n)] & Self.resident != 0 }

    public mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool {
        let hit = find(request)
        if !hit, admitting, admit(request) {
            while occupied + request.size > capacity {
                let before = (lirBytes, hirBytes, q.list.count, s.list.count)
                evict(request)
                if (lirBytes, hirBytes, q.list.count, s.list.count) == before { break }   // nothing left to move (libCacheSim would spin)
            }
            if occupied + request.size <= capacity { insert(request) }
        }
        limitStack()
        return hit
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        let inS = s.index[request.id], inQ = q.index[request.id]
        if let n = inS { s.moveToHead(n) }
        if let n = inQ { q.moveToHead(n) }
        if let n = inS {
            if isLIR(n) { prune(); return true }
            guard isResident(n) else { return false }
            // A resident HIR object in S: it becomes LIR.
            if let m = inQ { hirBytes -= q.pool.sizes[Int(m)]; q.remove(m) }
            let size = s.pool.sizes[Int(n)]
            while lirBytes + size > lirLimit, demoteLIR() {}
            s.pool.tags[Int(n)] = Self.lir | Self.resident
            lirBytes += size
            return true
        }
        guard let m = inQ else { return false }
        // A resident HIR object in Q only: it enters S, still HIR.
        let size = q.pool.sizes[Int(m)]
        while lirBytes + size > lirLimit, demoteLIR() {}
        if let n = s.index[request.id] { s.pool.tags[Int(n)] = Self.resident; s.moveToHead(n) }
        else { s.insert(request.id, size: size, tag: Self.resident) }
        return true
    }

    /// libCacheSim's `can_insert`, which makes room as it decides.
    mutating func admit(_ request: CacheRequest) -> Bool {
        guard request.size <= capacity else { return false }
        if let n = s.index[request.id] {   // a non-resident HIR object in S
            let size = s.pool.sizes[Int(n)]
            while lirBytes + size > lirLimit, demoteLIR() {}
            if let k = nh.index[request.id] { nh.remove(k) }
            return true
        }
        guard request.size <= lirLimit, request.size <= hirLimit else { return false }
        if lirBytes + request.size > lirLimit, hirBytes + request.size > hirLimit {
            while hirBytes + request.size > hirLimit, evictHIR() {}
        }
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        if let n = s.index[request.id], !isLIR(n), !isResident(n) {
            while hirBytes >= hirLimit, evictHIR() {}
            demoteLIR()
        } else if s.index[request.id] == nil, q.index[request.id] == nil,
                  lirBytes + request.size > lirLimit, hirBytes + request.size > hirLimit {
            evictHIR()
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        if let n = s.index[request.id] {
            guard !isLIR(n), !isResident(n) else { return }
            s.pool.tags[Int(n)] = Self.lir | Self.resident
            lirBytes += s.pool.sizes[Int(n)]
            return
        }
        guard q.index[request.id] == nil else { return }
        if lirBytes + request.size <= lirLimit {
            s.insert(request.id, size: request.size, tag: Self.lir | Self.resident)
            lirBytes += request.size
        } else {
            s.insert(request.id, size: request.size, tag: Self.resident)
            q.insert(request.id, size: request.size, tag: 0)
            hirBytes += request.size
        }
    }

    /// Removes HIR entries from the bottom of S until an LIR entry is there (or S holds one entry).
    mutating func prune() {
        while s.list.tail >= 0, s.list.tail != s.list.head, !isLIR(s.list.tail) {
            let n = s.list.tail
            if !isResident(n), let k = nh.index[s.pool.ids[Int(n)]] { nh.remove(k) }
            s.remove(n)
        }
    }

    /// Moves the LIR object at the bottom of S to Q (if it fits there), then prunes; false if S is empty.
    @discardableResult
    mutating func demoteLIR() -> Bool {
        let n = s.list.tail
        guard n >= 0 else { return false }
        let id = s.pool.ids[Int(n)], size = s.pool.sizes[Int(n)]
        lirBytes -= size
        s.remove(n)
        if size <= hirLimit {
            while hirBytes + size > hirLimit, evictHIR() {}
            q.insert(id, size: size, tag: 0)
            hirBytes += size
        }
        prune()
        return true
    }

    /// Evicts the oldest resident HIR object; S remembers it as non-resident. False if Q is empty.
    @discardableResult
    mutating func evictHIR() -> Bool {
        let m = q.list.tail
        guard m >= 0 else { return false }
        let id = q.pool.ids[Int(m)]
        hirBytes -= q.pool.sizes[Int(m)]
        q.remove(m)
        if let n = s.index[id] {
            s.pool.tags[Int(n)] &= ~Self.resident
            nh.insert(id, size: s.pool.sizes[Int(n)], tag: 0)
        }
        return true
    }

    /// Keeps S under twice the cache size by forgetting the oldest non-resident objects.
    mutating func limitStack() {
        while s.list.bytes - capacity > capacity, nh.list.tail >= 0 {   // (2 × capacity could overflow)
            let k = nh.list.tail
            if let n = s.index[nh.pool.ids[Int(k)]] { s.remove(n) }
            nh.remove(k)
        }
    }
}

/// A ``NodePool`` list with an index by id: LIRS's stack S, queue Q and non-resident list.
struct IndexedList {
    var pool = NodePool()
    var list = NodeList()
    var index: [UInt64: Int32] = [:]

    mutating func insert(_ id: UInt64, size: Int64, tag: UInt8) {
        let n = pool.allocate(id: id, size: size, tag: tag)
        pool.pushHead(n, &list)
        index[id] = n
    }

    mutating func moveToHead(_ n: Int32) { pool.moveToHead(n, &list) }

    mutating func remove(_ n: Int32) {
        pool.unlink(n, &list)
        index[pool.ids[Int(n)]] = nil
        pool.release(n)
    }
}
