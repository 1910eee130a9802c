/// Belady's MIN: evicts the resident object whose next request is farthest in the future (never
/// again counts as farthest). Optimal for unit sizes; needs each request's next access
/// (oracleGeneral traces carry it; ``NextAccess/annotate(_:)`` computes it otherwise).
public struct BeladyPolicy: CachePolicy {
    public var name: String { "Belady" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    var nextAccess: [UInt64: (next: Int64, size: Int64)] = [:]
    /// Max-heap of (next access, id); entries whose next access changed are skipped when popped.
    var heap: [(next: Int64, id: UInt64)] = []

    public init(capacity: Int64) { self.capacity = capacity }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let entry = nextAccess[request.id] else { return false }
        nextAccess[request.id] = (request.nextAccess, entry.size)
        push((request.nextAccess, request.id))
        return true
    }

    public mutating func evict(_ request: CacheRequest) {
        while let top = pop() {
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
        push((request.nextAccess, request.id))
        if heap.count > 4 * nextAccess.count + 1024 { rebuild() }
    }

    private mutating func rebuild() {
        heap = nextAccess.map { ($0.value.next, $0.key) }
        for i in stride(from: heap.count / 2 - 1, through: 0, by: -1) { siftDown(i) }
    }

    private func above(_ a: (next: Int64, id: UInt64), _ b: (next: Int64, id: UInt64)) -> Bool {
        a.next != b.next ? a.next > b.next : a.id > b.id
    }

    private mutating func push(_ e: (next: Int64, id: UInt64)) {
        heap.append(e)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard above(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func pop() -> (next: Int64, id: UInt64)? {
        guard let top = heap.first else { return nil }
        let last = heap.removeLast()
        if !heap.isEmpty {
            heap[0] = last
            siftDown(0)
        }
        return top
    }

    private mutating func siftDown(_ start: Int) {
        var i = start
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, above(heap[l], heap[m]) { m = l }
            if r < heap.count, above(heap[r], heap[m]) { m = r }
            if m == i { return }
            heap.swapAt(i, m)
            i = m
        }
    }
}
