/// A FIFO of ids with sizes but no data: the ghost queues of 2Q and S3-FIFO.
struct GhostQueue {
    let capacity: Int64
    var pool = NodePool()
    var queue = NodeList()
    var index: [UInt64: Int32] = [:]

    /// Whether `id` was there (and removes it).
    mutating func remove(_ id: UInt64) -> Bool {
        guard let n = index.removeValue(forKey: id) else { return false }
        pool.unlink(n, &queue)
        pool.release(n)
        return true
    }

    /// Adds `id` unless present, dropping the oldest ids to make room.
    mutating func add(_ id: UInt64, size: Int64) {
        guard index[id] == nil, size <= capacity else { return }
        while queue.bytes + size > capacity {
            let old = queue.tail
            pool.unlink(old, &queue)
            index[pool.ids[Int(old)]] = nil
            pool.release(old)
        }
        let n = pool.allocate(id: id, size: size)
        pool.pushHead(n, &queue)
        index[id] = n
    }
}

/// 2Q (Johnson & Shasha, VLDB '94), full version as in libCacheSim: new objects enter A1in, a
/// FIFO of 25% of the capacity; objects leaving it are remembered in the ghost A1out (50%); a miss
/// that hits A1out goes to Am, an LRU of the rest.
public struct TwoQPolicy: CachePolicy {
    public var name: String { "2Q" }
    public let capacity: Int64
    public var occupied: Int64 { ain.bytes + am.bytes }
    let ainCapacity: Int64, amCapacity: Int64
    var pool = NodePool()
    var index: [UInt64: Int32] = [:]     // resident objects; tag 1 = A1in, 2 = Am
    var ain = NodeList(), am = NodeList()
    var aout: GhostQueue
    var ghostHit = false

    public init(capacity: Int64, inRatio: Double = 0.25, outRatio: Double = 0.5) {
        self.capacity = capacity
        ainCapacity = Int64(Double(capacity) * inRatio)
        amCapacity = capacity - ainCapacity
        aout = GhostQueue(capacity: Int64(Double(capacity) * outRatio))
    }

    public func canInsert(_ request: CacheRequest) -> Bool { request.size <= ainCapacity && request.size <= capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        ghostHit = false
        if let n = index[request.id] {
            if pool.tags[Int(n)] == 2 { pool.moveToHead(n, &am) }
            return true
        }
        ghostHit = aout.remove(request.id)
        return false
    }

    private mutating func drop(_ n: Int32, from tag: UInt8) {
        if tag == 1 { pool.unlink(n, &ain) } else { pool.unlink(n, &am) }
        index[pool.ids[Int(n)]] = nil
        pool.release(n)
    }

    public mutating func evict(_ request: CacheRequest) {
        if ain.bytes > ainCapacity || am.count == 0 {
            let n = ain.tail
            aout.add(pool.ids[Int(n)], size: pool.sizes[Int(n)])
            drop(n, from: 1)
        } else {
            drop(am.tail, from: 2)
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        if ghostHit {
            ghostHit = false
            // Am is a cache of its own size: it makes room within that size first.
            guard request.size <= amCapacity else { return }
            while am.bytes + request.size > amCapacity { drop(am.tail, from: 2) }
            let n = pool.allocate(id: request.id, size: request.size, tag: 2)
            pool.pushHead(n, &am)
            index[request.id] = n
        } else {
            let n = pool.allocate(id: request.id, size: request.size, tag: 1)
            pool.pushHead(n, &ain)
            index[request.id] = n
        }
    }
}

/// S3-FIFO (Yang et al., SOSP '23) with libCacheSim's defaults: a small FIFO of 10% of the
/// capacity for new objects, a main FIFO (a 2-bit clock) for the rest, and a ghost FIFO (90%) of
/// ids evicted from the small queue. An object leaves the small queue for the main one if it was
/// hit at least twice there; a miss found in the ghost goes straight to main.
public struct S3FIFOPolicy: CachePolicy {
    public var name: String { "S3-FIFO" }
    public let capacity: Int64
    public var occupied: Int64 { small.bytes + main.bytes }
    let smallCapacity: Int64, mainCapacity: Int64
    let promotionThreshold: Int32
    var pool = NodePool()
    var index: [UInt64: Int32] = [:]     // tag 1 = small, 2 = main
    var small = NodeList(), main = NodeList()
    var ghost: GhostQueue
    var ghostHit = false
    var hasEvicted = false

    public init(capacity: Int64, smallRatio: Double = 0.1, ghostRatio: Double = 0.9, promotionThreshold: Int32 = 2) {
        self.capacity = capacity
        smallCapacity = Int64(Double(capacity) * smallRatio)
        mainCapacity = capacity - smallCapacity
        ghost = GhostQueue(capacity: Int64(Double(capacity) * ghostRatio))
        self.promotionThreshold = promotionThreshold
    }

    public func canInsert(_ request: CacheRequest) -> Bool { request.size <= smallCapacity && request.size <= capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        ghostHit = false
        if let n = index[request.id], pool.tags[Int(n)] == 1 {
            pool.counters[Int(n)] += 1
            return true
        }
        ghostHit = ghost.remove(request.id)
        if let n = index[request.id] {
            pool.counters[Int(n)] += 1
            return true
        }
        return false
    }

    public mutating func insert(_ request: CacheRequest) {
        let tag: UInt8
        if ghostHit {
            ghostHit = false
            tag = 2
        } else {
            guard request.size < smallCapacity else { return }
            tag = !hasEvicted && small.bytes >= smallCapacity ? 2 : 1
        }
        let n = pool.allocate(id: request.id, size: request.size, tag: tag)
        if tag == 1 { pool.pushHead(n, &small) } else { pool.pushHead(n, &main) }
        index[request.id] = n
    }

    public mutating func evict(_ request: CacheRequest) {
        hasEvicted = true
        if main.bytes > mainCapacity || small.bytes == 0 { evictMain() } else { evictSmall() }
    }

    private mutating func evictSmall() {
        while small.bytes > 0 {
            let n = small.tail
            pool.unlink(n, &small)
            if pool.counters[Int(n)] >= promotionThreshold {
                pool.counters[Int(n)] = 0
                pool.tags[Int(n)] = 2
                pool.pushHead(n, &main)
            } else {
                ghost.add(pool.ids[Int(n)], size: pool.sizes[Int(n)])
                index[pool.ids[Int(n)]] = nil
                pool.release(n)
                return
            }
        }
    }

    private mutating func evictMain() {
        while main.bytes > 0 {
            let n = main.tail
            let f = pool.counters[Int(n)]
            pool.unlink(n, &main)
            if f >= 1 {
                pool.counters[Int(n)] = Swift.min(f, 3) - 1
                pool.pushHead(n, &main)
            } else {
                index[pool.ids[Int(n)]] = nil
                pool.release(n)
                return
            }
        }
    }
}
