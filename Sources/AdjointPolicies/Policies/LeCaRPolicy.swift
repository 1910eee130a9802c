import AdjointTensor
import Foundation

/// LeCaR (Vietri et al., HotStorage '18), with libCacheSim's parameters: two experts, LRU and LFU
/// (frequency while resident, oldest first among equals), weighted `w_LRU + w_LFU = 1` (0.5 each
/// at the start). Each eviction follows one expert, chosen at random by the weights, and leaves a
/// ghost entry naming it in a history as large as the cache (LRU order). A request that finds its
/// ghost is a miss that blames the expert which evicted it: `w ← w·exp(−λ·dᵗ)` for that expert
/// (λ = 0.45, `d = 0.005^(1/cache size)`, t = requests since the eviction), then both are
/// renormalised. Random choices come from a Philox stream of `seed`, so a run is reproducible; they
/// are not libCacheSim's, so results agree with it statistically, not bit for bit.
public struct LeCaRPolicy: CachePolicy {
    public var name: String { "LeCaR" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    /// The experts' weights now.
    public private(set) var weights = (lru: 0.5, lfu: 0.5)

    /// Cached objects (tag 0, in `recent`) and ghosts (tag 1: evicted by LRU, 2: by LFU, in `ghosts`).
    var entries = NodePool()
    var recent = NodeList(), ghosts = NodeList()
    var index: [UInt64: Int32] = [:]
    /// Per entry: its node in `byFrequency` (cached) and the request count at its eviction (ghost).
    var frequencyNode: [Int32] = [], evictedAt: [Int64] = []
    /// The cached entries by access count; each names its recency entry (by index) in its id.
    var byFrequency = FrequencyLists()
    var requests: Int64 = 0
    let learningRate = 0.45, discount: Double
    let key: RandomKey
    var draws: UInt64 = 0

    public init(capacity: Int64, seed: UInt64 = 1) {
        self.capacity = capacity
        discount = Foundation.pow(0.005, 1 / Double(Swift.max(capacity, 1)))
        key = RandomKey(seed: seed)
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        requests += 1
        guard let n = index[request.id] else { return false }
        let i = Int(n)
        switch entries.tags[i] {
        case 0:
            entries.moveToHead(n, &recent)
            byFrequency.touch(frequencyNode[i])
            return true
        default:
            // A ghost: the expert that evicted it was wrong.
            let regret = Foundation.exp(-learningRate * Foundation.pow(discount, Double(requests - evictedAt[i])))
            if entries.tags[i] == 1 { weights.lru *= regret } else { weights.lfu *= regret }
            let (lru, lfu) = (weights.lru + 1e-10, weights.lfu + 1e-10)
            weights = (lru / (lru + lfu), lfu / (lru + lfu))
            entries.unlink(n, &ghosts)
            index[request.id] = nil
            entries.release(n)
            return false
        }
    }

    public mutating func evict(_ request: CacheRequest) {
        let bits = key.bits(block: draws)
        draws += 1
        let byRecency = Double(bits.0 % 100) / 100 < weights.lru
        // The least recent, or the oldest of the least frequent (whose frequency entry names it).
        let victim = byRecency ? recent.tail : Int32(truncatingIfNeeded: byFrequency.pool.ids[Int(byFrequency.victim)])
        let i = Int(victim)
        entries.unlink(victim, &recent)
        byFrequency.remove(frequencyNode[i])
        occupied -= entries.sizes[i]
        entries.tags[i] = byRecency ? 1 : 2
        evictedAt[i] = requests
        entries.pushHead(victim, &ghosts)
        while ghosts.bytes > capacity, ghosts.tail >= 0 {
            let old = ghosts.tail
            entries.unlink(old, &ghosts)
            index[entries.ids[Int(old)]] = nil
            entries.release(old)
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        let n = entries.allocate(id: request.id, size: request.size)
        let i = Int(n)
        if i == frequencyNode.count { frequencyNode.append(-1); evictedAt.append(0) }
        entries.pushHead(n, &recent)
        index[request.id] = n
        frequencyNode[i] = byFrequency.insert(id: UInt64(i), size: request.size)
        occupied += request.size
    }
}
