/// First in, first out: hits change nothing; the oldest object leaves.
public struct FIFOPolicy: CachePolicy {
    public var name: String { "FIFO" }
    public let capacity: Int64
    public var occupied: Int64 { queue.bytes }
    var pool = NodePool()
    var queue = NodeList()
    var index: [UInt64: Int32] = [:]

    public init(capacity: Int64) { self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool { index[request.id] != nil }

    public mutating func evict(_ request: CacheRequest) {
        let victim = queue.tail
        pool.unlink(victim, &queue)
        index[pool.ids[Int(victim)]] = nil
        pool.release(victim)
    }

    public mutating func insert(_ request: CacheRequest) {
        let n = pool.allocate(id: request.id, size: request.size)
        pool.pushHead(n, &queue)
        index[request.id] = n
    }
}

/// Least recently used: a hit moves the object to the head; the tail leaves.
public struct LRUPolicy: CachePolicy {
    public var name: String { "LRU" }
    public let capacity: Int64
    public var occupied: Int64 { fifo.occupied }
    var fifo: FIFOPolicy

    public init(capacity: Int64) { fifo = FIFOPolicy(capacity: capacity); self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let n = fifo.index[request.id] else { return false }
        fifo.pool.moveToHead(n, &fifo.queue)
        return true
    }

    public mutating func evict(_ request: CacheRequest) { fifo.evict(request) }
    public mutating func insert(_ request: CacheRequest) { fifo.insert(request) }
}

/// SIEVE (Zhang et al., NSDI '24): a FIFO queue with a visited bit and a hand that moves from the
/// oldest entry toward newer ones, clearing visited bits, and evicts the first unvisited entry.
public struct SIEVEPolicy: CachePolicy {
    public var name: String { "SIEVE" }
    public let capacity: Int64
    public var occupied: Int64 { fifo.occupied }
    var fifo: FIFOPolicy
    var hand: Int32 = -1

    public init(capacity: Int64) { fifo = FIFOPolicy(capacity: capacity); self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let n = fifo.index[request.id] else { return false }
        fifo.pool.counters[Int(n)] = 1
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        var n = hand >= 0 ? hand : fifo.queue.tail
        while fifo.pool.counters[Int(n)] > 0 {
            fifo.pool.counters[Int(n)] = 0
            let newer = fifo.pool.previous[Int(n)]
            n = newer >= 0 ? newer : fifo.queue.tail
        }
        hand = fifo.pool.previous[Int(n)]
        fifo.pool.unlink(n, &fifo.queue)
        fifo.index[fifo.pool.ids[Int(n)]] = nil
        fifo.pool.release(n)
    }

    public mutating func insert(_ request: CacheRequest) { fifo.insert(request) }
}

/// Least frequently used, frequencies counted while resident (an object re-enters with frequency
/// 1); among equally frequent objects the one that reached that frequency first leaves.
public struct LFUPolicy: CachePolicy {
    public var name: String { "LFU" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    var lists = FrequencyLists()
    var index: [UInt64: Int32] = [:]

    public init(capacity: Int64) { self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let n = index[request.id] else { return false }
        lists.touch(n)
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        let victim = lists.victim
        occupied -= lists.pool.sizes[Int(victim)]
        index[lists.pool.ids[Int(victim)]] = nil
        lists.remove(victim)
    }

    public mutating func insert(_ request: CacheRequest) {
        index[request.id] = lists.insert(id: request.id, size: request.size)
        occupied += request.size
    }
}
