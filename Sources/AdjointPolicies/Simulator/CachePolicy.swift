/// An eviction policy over a cache of fixed capacity, in the shape libCacheSim's simulators share:
/// a lookup that updates the policy's metadata on a hit, an admission check, evictions until the
/// new object fits, and an insertion.
///
/// Sizes are what the simulator passes: 1 per object when the capacity counts objects, bytes
/// otherwise.
public protocol CachePolicy {
    /// The name used in tables and plots (`"LRU"`, `"S3-FIFO"`, …).
    var name: String { get }
    var capacity: Int64 { get }
    /// Bytes (or objects) resident.
    var occupied: Int64 { get }
    /// Whether `request`'s object is resident; on a hit, updates recency, frequency, … .
    mutating func find(_ request: CacheRequest) -> Bool
    /// Whether a missed object may be inserted (too large objects are not).
    func canInsert(_ request: CacheRequest) -> Bool
    /// Evicts one object (or moves one to a ghost list) to make room for `request`.
    mutating func evict(_ request: CacheRequest)
    /// Inserts a missed object; room was made.
    mutating func insert(_ request: CacheRequest)
    /// One request: true on a hit. On a miss the object is inserted only when `admitting` (an
    /// admission gate's answer, see ``GatedPolicy``) and when it may be. The default runs find /
    /// canInsert / evict until it fits / insert.
    mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool
}

extension CachePolicy {
    /// One request: a hit, or a miss after which the object is inserted when it may be.
    @inline(__always)
    public mutating func access(_ request: CacheRequest) -> Bool { access(request, admitting: true) }

    public mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool {
        if find(request) { return true }
        guard admitting, canInsert(request) else { return false }
        while occupied + request.size > capacity { evict(request) }
        insert(request)
        return false
    }

    public func canInsert(_ request: CacheRequest) -> Bool { request.size <= capacity }
}
