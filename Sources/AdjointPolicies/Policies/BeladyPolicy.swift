/// Belady's MIN: evicts the resident object whose next request is farthest in the future (never
/// again counts as farthest). Optimal for unit sizes; needs each request's next access
/// (oracleGeneral traces carry it; ``NextAccess/annotate(_:)`` computes it otherwise).
public struct BeladyPolicy: CachePolicy {
    public var name: String { "Belady" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    var nextAccess: [UInt64: (next: Int64, size: Int64)] = [:]
    /// The farthest next access first; entries whose next access changed are skipped when popped.
    var heap = BinaryHeap<Farthest>()

    /// A resident object by its next access, the farthest (then the largest id) first.
    struct Farthest: HeapOrdered {
        var next: Int64, id: UInt64
        static func precedes(_ a: Farthest, _ b: Farthest) -> Bool { a.next != b.next ? a.next > b.next : a.id > b.id }
    }

    public init(capacity: Int64) { self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let entry = nextAccess[request.id] else { return false }
        nextAccess[request.id] = (request.nextAccess, entry.size)
        heap.push(Farthest(next: request.nextAccess, id: request.id))
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        while let top = heap.pop() {
            if let entry = nextAccess[top.id], entry.next == top.next {
                nextAccess[top.id] = nil
                occupied -= entry.size
                return
            }
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        nextAccess[request.id] = (request.nextAccess, request.size)
        occupied += request.size
        heap.push(Farthest(next: request.nextAccess, id: request.id))
        if heap.count > 4 * nextAccess.count + 1024 { rebuild() }
    }

    private mutating func rebuild() {
        heap = BinaryHeap(heapifying: nextAccess.map { Farthest(next: $0.value.next, id: $0.key) })
    }
}
