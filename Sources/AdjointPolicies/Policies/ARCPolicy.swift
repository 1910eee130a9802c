/// Adaptive Replacement Cache (Megiddo & Modha, FAST '03), size-aware as in libCacheSim: two LRU
/// lists of resident objects — T1 seen once, T2 seen again — each with a ghost list of ids (B1,
/// B2) it evicted; a hit in a ghost list moves the target size `p` of T1 toward the list that
/// would have kept the object.
public struct ARCPolicy: CachePolicy {
    public var name: String { "ARC" }
    public let capacity: Int64
    public var occupied: Int64 { t1.bytes + t2.bytes }
    var pool = NodePool()
    var index: [UInt64: Int32] = [:]
    var t1 = NodeList(), t2 = NodeList(), b1 = NodeList(), b2 = NodeList()
    /// Target bytes of T1.
    public private(set) var p: Int64 = 0
    var ghostHit: UInt8 = 0     // 0, or the ghost list (3 = B1, 4 = B2) the current request hit

    public init(capacity: Int64) { self.capacity = capacity }

    // Tags: 1 = T1, 2 = T2, 3 = B1, 4 = B2.
    private func list(_ tag: UInt8) -> NodeList {
        switch tag { case 1: return t1; case 2: return t2; case 3: return b1; default: return b2 }
    }

    private mutating func withList(_ tag: UInt8, _ body: (inout NodePool, inout NodeList) -> Void) {
        switch tag {
        case 1: body(&pool, &t1)
        case 2: body(&pool, &t2)
        case 3: body(&pool, &b1)
        default: body(&pool, &b2)
        }
    }

    private mutating func move(_ n: Int32, to tag: UInt8) {
        withList(pool.tags[Int(n)]) { $0.unlink(n, &$1) }
        pool.tags[Int(n)] = tag
        withList(tag) { $0.pushHead(n, &$1) }
    }

    private mutating func drop(_ n: Int32) {
        withList(pool.tags[Int(n)]) { $0.unlink(n, &$1) }
        index[pool.ids[Int(n)]] = nil
        pool.release(n)
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        ghostHit = 0
        guard let n = index[request.id] else { return false }
        let tag = pool.tags[Int(n)]
        switch tag {
        case 1, 2:
            move(n, to: 2)
            return true
        case 3:
            p = Swift.min(p + Swift.max(b2.bytes / Swift.max(b1.bytes, 1), 1), capacity)
            ghostHit = 3
            replace()
            drop(n)
            return false
        default:
            p = Swift.max(p - Swift.max(b1.bytes / Swift.max(b2.bytes, 1), 1), 0)
            ghostHit = 4
            replace()
            drop(n)
            return false
        }
    }

    /// The paper's REPLACE: the LRU end of T1 goes to B1 when T1 is over its target, else T2's to B2.
    private mutating func replace() {
        if t1.bytes > 0 && (t1.bytes > p || (t1.bytes == p && ghostHit == 4)) || t2.count == 0 {
            if t1.count > 0 { move(t1.tail, to: 3) }
        } else {
            move(t2.tail, to: 4)
        }
    }

    public mutating func evict(_ request: CacheRequest) {
        if t1.bytes + b1.bytes + request.size > capacity {
            if t1.bytes < capacity {
                if b1.count > 0 { drop(b1.tail) }
                replace()
            } else {
                drop(t1.tail)
            }
        } else {
            if t1.bytes + b1.bytes + t2.bytes + b2.bytes >= 2 * capacity, b2.count > 0 { drop(b2.tail) }
            replace()
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        let n = pool.allocate(id: request.id, size: request.size, tag: ghostHit != 0 ? 2 : 1)
        withList(pool.tags[Int(n)]) { $0.pushHead(n, &$1) }
        index[request.id] = n
        ghostHit = 0
    }
}
