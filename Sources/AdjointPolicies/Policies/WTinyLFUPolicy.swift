import Foundation

/// W-TinyLFU (Einziger, Friedman, Manes 2017) as libCacheSim builds it: a window LRU of 1 % of the
/// cache in front of a main segmented LRU (a probation segment of ⅕ and a protected one of ⅘ of
/// the rest), and a frequency sketch that decides admission. A new object enters the window; when
/// the cache is full, the window's least recent object moves to the main cache if there is room,
/// otherwise it competes with the main cache's victim (the probation segment's least recent) and
/// enters only if the sketch counts it more often. A hit in the probation segment promotes to the
/// protected one, whose least recent object is demoted back when it overflows.
///
/// The sketch is a counting Bloom filter (10 hash functions, 14.38 counters per main-cache entry
/// for a 0.1 % error, at most 2²⁰ counters: 4 MiB), counting every insertion, every main-cache hit and
/// every window victim; it halves all counters after 32 × (main size) main-cache hits. Its hashes
/// are libCacheSim's (XXH64 under its seeds), so a cache of fewer than 2²⁰/14.38 ≈ 72,900 objects
/// counts exactly as libCacheSim's does. (libCacheSim sizes the filter by the main cache's size in
/// bytes when sizes are bytes, up to 2³¹ counters; the cap keeps it to what a cache can afford.)
/// A cache of fewer than six objects has an empty probation segment and admits nothing, as in
/// libCacheSim.
///
/// One departure from libCacheSim: its window is `⌊1 % of the size⌋`, zero below 100 objects, so
/// that nothing can ever be inserted (every request misses); here the window holds at least one
/// object (one byte when sizes are bytes).
public struct WTinyLFUPolicy: CachePolicy {
    public var name: String { "W-TinyLFU" }
    public let capacity: Int64
    public var occupied: Int64 { window.bytes + probation.bytes + protected.bytes }

    let windowCapacity: Int64, mainCapacity: Int64, probationCapacity: Int64, protectedCapacity: Int64
    var pool = NodePool()
    /// Tags: 0 window, 1 probation, 2 protected.
    var window = NodeList(), probation = NodeList(), protected = NodeList()
    var index: [UInt64: Int32] = [:]
    var sketch: [UInt32]
    static let hashes: UInt32 = 10
    var mainHits: Int64 = 0

    public init(capacity: Int64) {
        self.capacity = capacity
        windowCapacity = Swift.min(capacity, Swift.max(1, capacity / 100))
        mainCapacity = capacity - windowCapacity
        // As libCacheSim computes them (shares in floating point, truncated); no product of
        // integers, so a capacity up to Int64.max cannot overflow.
        probationCapacity = Int64(Double(mainCapacity) * 0.2)
        protectedCapacity = Int64(Double(mainCapacity) * 0.8)
        let wanted = Swift.min(Double(1 << 20), (14.377_516_497_364_0 * Double(Swift.max(mainCapacity, 1))).rounded(.up))
        let counters = Swift.max(2 * Int(Self.hashes), Int(wanted))
        sketch = [UInt32](repeating: 0, count: counters)
    }

    /// Two 32-bit hashes of an id: the low halves of XXH64 of its eight bytes (little-endian) under
    /// libCacheSim's seeds `0x12345678` and `0x12344321`, as its counting Bloom filter takes them.
    @inline(__always)
    static func hashes(_ id: UInt64) -> (UInt32, UInt32) {
        (UInt32(truncatingIfNeeded: xxh64(id, seed: 0x1234_5678)), UInt32(truncatingIfNeeded: xxh64(id, seed: 0x1234_4321)))
    }

    /// XXH64 of one 8-byte lane (the specification's path for inputs shorter than 32 bytes).
    @inline(__always)
    static func xxh64(_ lane: UInt64, seed: UInt64) -> UInt64 {
        let p1: UInt64 = 0x9E37_79B1_85EB_CA87, p2: UInt64 = 0xC2B2_AE3D_27D4_EB4F, p3: UInt64 = 0x1656_67B1_9E37_79F9
        let p4: UInt64 = 0x85EB_CA77_C2B2_AE63, p5: UInt64 = 0x27D4_EB2F_1656_67C5
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        var h = seed &+ p5 &+ 8
        h ^= rotl(lane &* p2, 31) &* p1
        h = rotl(h, 27) &* p1 &+ p4
        h ^= h >> 33
        h = h &* p2
        h ^= h >> 29
        h = h &* p3
        return h ^ (h >> 32)
    }

    /// The sketch's count of `id` (the minimum of its counters); with `add`, counts it once more.
    @discardableResult
    mutating func count(_ id: UInt64, add: Bool) -> UInt32 {
        let (a, b) = Self.hashes(id)
        let n = UInt32(sketch.count)
        var least = UInt32.max
        for i in 0..<Self.hashes {
            let x = Int((a &+ i &* b) % n)
            least = Swift.min(least, sketch[x])
            if add { sketch[x] &+= 1 }
        }
        return least
    }

    public func canInsert(_ request: CacheRequest) -> Bool {
        request.size <= windowCapacity && request.size <= probationCapacity
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let n = index[request.id] else { return false }
        switch pool.tags[Int(n)] {
        case 0:
            pool.moveToHead(n, &window)
        case 1:
            mainHit(request.id)
            pool.unlink(n, &probation)
            pool.tags[Int(n)] = 2
            pool.pushHead(n, &protected)
            while protected.bytes > protectedCapacity, protected.tail >= 0 {
                let demoted = protected.tail
                pool.unlink(demoted, &protected)
                pool.tags[Int(demoted)] = 1
                pool.pushHead(demoted, &probation)
            }
            while probation.bytes > probationCapacity, probation.tail >= 0 { drop(probation.tail) }
        default:
            mainHit(request.id)
            pool.moveToHead(n, &protected)
        }
        return true
    }

    private mutating func mainHit(_ id: UInt64) {
        count(id, add: true)
        mainHits += 1
        if mainHits >= 32 * mainCapacity {
            mainHits = 0
            for i in sketch.indices { sketch[i] >>= 1 }
        }
    }

    /// Removes `n` from the cache (from whichever list holds it).
    private mutating func drop(_ n: Int32) {
        switch pool.tags[Int(n)] {
        case 0: pool.unlink(n, &window)
        case 1: pool.unlink(n, &probation)
        default: pool.unlink(n, &protected)
        }
        index[pool.ids[Int(n)]] = nil
        pool.release(n)
    }

    /// The main cache's victim: the least recent of the lowest non-empty segment.
    private var mainVictim: Int32 { probation.tail >= 0 ? probation.tail : protected.tail }

    /// Puts `n` (out of the window) into the main cache: the lowest segment with room, else the
    /// probation segment after evicting until it fits.
    private mutating func admit(_ n: Int32) {
        let size = pool.sizes[Int(n)]
        if probation.bytes + size <= probationCapacity {
            pool.tags[Int(n)] = 1
            pool.pushHead(n, &probation)
        } else if protected.bytes + size <= protectedCapacity {
            pool.tags[Int(n)] = 2
            pool.pushHead(n, &protected)
        } else {
            while probation.bytes + protected.bytes + size > mainCapacity, mainVictim >= 0 {
                drop(mainVictim)
            }
            pool.tags[Int(n)] = 1
            pool.pushHead(n, &probation)
        }
    }

    public mutating func evict(_ request: CacheRequest) {
        while true {
            guard window.tail >= 0 else {
                drop(mainVictim)
                return
            }
            let candidate = window.tail
            let id = pool.ids[Int(candidate)], size = pool.sizes[Int(candidate)]
            defer { count(id, add: true) }
            if probation.bytes + protected.bytes + size <= mainCapacity {
                pool.unlink(candidate, &window)
                admit(candidate)
                continue
            }
            let victim = mainVictim
            if count(id, add: false) > count(pool.ids[Int(victim)], add: false) {
                drop(victim)
                pool.unlink(candidate, &window)
                admit(candidate)
            } else {
                drop(candidate)
            }
            return
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        let n = pool.allocate(id: request.id, size: request.size)
        pool.pushHead(n, &window)
        index[request.id] = n
        count(request.id, add: true)
    }
}
