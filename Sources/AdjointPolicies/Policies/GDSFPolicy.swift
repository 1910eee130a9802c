/// GDSF, greedy-dual-size-frequency (Cherkasova 1998), as libCacheSim implements it: an object's
/// priority is `L + frequency · 10⁶ / size`, set when it is inserted (frequency 1) and on each hit;
/// the lowest priority is evicted (the earliest-set among equals), and `L` becomes the evicted
/// priority, so objects that have not been requested for a while age relative to new ones. Small,
/// frequently requested objects stay: the policy for caches that count bytes (with unit sizes it is
/// LFU with aging). The size is the one the object was inserted with (libCacheSim's, too).
///
/// Priorities live in a binary heap with lazy deletion: a hit pushes the new priority and leaves
/// the old entry, which an eviction skips; the heap is rebuilt from the live entries when stale ones
/// outnumber them, so memory stays proportional to the resident objects.
public struct GDSFPolicy: CachePolicy {
    public var name: String { "GDSF" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0

    struct Entry: HeapOrdered {
        var priority: Double
        var stamp: Int64
        var id: UInt64
        static func precedes(_ a: Entry, _ b: Entry) -> Bool {
            a.priority != b.priority ? a.priority < b.priority : a.stamp < b.stamp
        }
    }

    struct Object {
        var frequency: Int64
        var size: Int64
        /// The request index at which the current priority was set (its heap entry's stamp).
        var stamp: Int64
        var priority: Double
    }

    var objects: [UInt64: Object] = [:]
    var heap = BinaryHeap<Entry>()
    /// L: the priority of the last eviction.
    public private(set) var inflation = 0.0
    var now: Int64 = 0

    public init(capacity: Int64) { self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        now += 1
        guard var object = objects[request.id] else { return false }
        object.frequency += 1
        object.priority = inflation + Double(object.frequency) * 1.0e6 / Double(object.size)
        object.stamp = now
        objects[request.id] = object
        push(Entry(priority: object.priority, stamp: now, id: request.id))
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        while let top = heap.pop() {
            guard let object = objects[top.id], object.stamp == top.stamp else { continue }   // stale: superseded by a hit
            inflation = top.priority
            occupied -= object.size
            objects.removeValue(forKey: top.id)
            return
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        let priority = inflation + 1.0e6 / Double(request.size)
        objects[request.id] = Object(frequency: 1, size: request.size, stamp: now, priority: priority)
        occupied += request.size
        push(Entry(priority: priority, stamp: now, id: request.id))
    }

    mutating func push(_ entry: Entry) {
        heap.push(entry)
        if heap.count > 2 * objects.count + 64 {
            heap = BinaryHeap(heapifying: objects.map { Entry(priority: $0.value.priority, stamp: $0.value.stamp, id: $0.key) })
        }
    }
}
