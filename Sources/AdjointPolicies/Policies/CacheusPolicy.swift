import AdjointTensor
import Foundation

/// Cacheus (Rodriguez et al., FAST '21) as libCacheSim implements it: two experts, a
/// scan-resistant LRU (SR-LRU) and a churn-resistant LFU (CR-LFU), over the same resident objects,
/// weighted `w_SR-LRU + w_CR-LFU = 1` (0.5 each at the start).
///
/// - **SR-LRU** keeps the resident objects in two LRU lists, SR (⌊capacity/2⌋ at the start), where
///   new objects arrive, and R, where objects go when they are hit in SR or return from the history
///   H (an LRU list of objects that left the cache, less than the capacity). When R overflows its
///   least recent object is demoted to SR; when SR overflows its least recent object leaves the
///   cache for H, outside either expert's choice. An object that returns from H after it had
///   arrived new grows SR by max(1, ⌊demoted ÷ new-in-history⌋ + ½) (at most to the occupancy
///   less one) and R is the rest of the capacity. Its eviction candidate is SR's least recent
///   object (R's when SR is empty).
/// - **CR-LFU** counts accesses while resident and keeps the count of an object that moves to H, so
///   that an object returning from H resumes at that count plus one. Among the least frequent it
///   evicts the one that reached that count *last* (resistance to churn).
///
/// When the experts' candidates differ, one is followed, chosen at random by the weights, and the
/// victim enters that expert's ghost list (an LRU list of ⌊capacity/2⌋); a miss on a ghost
/// multiplies that expert's weight by `exp(−learning rate)`, then both are renormalised. When the
/// candidates agree nothing enters a ghost list.
///
/// Where libCacheSim departs from the paper this follows libCacheSim, so that the two agree (the
/// paper's versions would make a different policy, and the comparison is the point): (1) the
/// learning rate starts at a random value in [0.001, 1] and is revisited every `capacity` requests
/// with the interval's hit rate computed as an integer quotient (1 only when every request of the
/// interval hit) and a step truncated to an integer (0 for every rate below 1), so in practice it
/// keeps its starting value; (2) SR is resized only on returns from H (grown, capped at the
/// occupancy less one, which can lower it while the cache fills): a hit in SR on an object demoted
/// from R, which the paper answers by shrinking SR, reaches R as a fresh entry whose flags
/// libCacheSim then reads, so that shrinking never happens (observed step by step against libCacheSim
/// 0.3.5 from PyPI on small traces: occupancy and hits agree until the first random choice).
/// Random choices come from a Philox stream of `seed`: a run is reproducible, and agrees with
/// libCacheSim statistically, not bit for bit.
public struct CacheusPolicy: CachePolicy {
    public var name: String { "Cacheus" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    /// The experts' weights now.
    public private(set) var weights = (lru: 0.5, lfu: 0.5)
    /// The rate at which a ghost hit lowers its expert's weight.
    public private(set) var learningRate: Double

    /// SR-LRU's entries: resident in SR (list `scanResistantTag`) or R (`reuseTag`), or remembered
    /// in the history H (`historyTag`, its CR-LFU count in `counters`); a tag is the list plus the
    /// flags `newFlag` (arrived new, not yet back from H) and `demotedFlag`.
    var entries = NodePool()
    var scanResistant = NodeList(), reuse = NodeList(), history = NodeList()
    var index: [UInt64: Int32] = [:]
    /// Per resident entry: its node in `byFrequency` (whose id names the entry back).
    var frequencyNode: [Int32] = []
    var byFrequency = FrequencyLists()
    /// The experts' ghost lists (tag 0: evicted by SR-LRU, 1: by CR-LFU).
    var ghostEntries = NodePool()
    var recencyGhosts = NodeList(), frequencyGhosts = NodeList()
    var ghostIndex: [UInt64: Int32] = [:]
    /// Each ghost list's capacity.
    let half: Int64
    /// SR's and R's capacities now.
    public private(set) var scanResistantCapacity: Int64
    var reuseCapacity: Int64
    /// Entries that arrived new and went to H, and entries demoted from R still counted as such
    /// (what sets SR's growth).
    var newInHistory: Int64 = 0, demoted: Int64 = 0

    var requests: Int64 = 0
    var hitsInInterval: Int64 = 0
    var previousLearningRate = 0.0, previousHitRate = 0.0
    var unlearnCount = 0
    let updateInterval: Int64
    let key: RandomKey
    var draws: UInt64 = 0

    static let scanResistantTag: UInt8 = 0, reuseTag: UInt8 = 1, historyTag: UInt8 = 2, listMask: UInt8 = 3
    static let newFlag: UInt8 = 4, demotedFlag: UInt8 = 8

    public init(capacity: Int64, seed: UInt64 = 1) {
        self.capacity = capacity
        half = Swift.max(capacity, 0) / 2
        scanResistantCapacity = half
        reuseCapacity = half
        updateInterval = Swift.max(capacity, 1)
        key = RandomKey(seed: seed)
        learningRate = 0.001 + Double(key.bits(block: 0).0 % 1000) / 1000
        draws = 1
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        requests += 1
        defer { if requests % updateInterval == 0 { updateLearningRate() } }
        if let n = index[request.id], list(n) != Self.historyTag {
            let i = Int(n)
            if list(n) == Self.reuseTag {
                entries.moveToHead(n, &reuse)
            } else {
                // A hit in SR moves the object to R's most recent end, without its flags.
                entries.unlink(n, &scanResistant)
                entries.sizes[i] = request.size
                makeRoomInReuse(for: request.size)
                entries.tags[i] = Self.reuseTag
                entries.pushHead(n, &reuse)
                occupied = scanResistant.bytes + reuse.bytes
            }
            byFrequency.touch(frequencyNode[i])
            hitsInInterval += 1
            return true
        }
        // A miss: a ghost names the expert whose choice evicted the object.
        if let g = ghostIndex[request.id] {
            if ghostEntries.tags[Int(g)] == 0 {
                weights.lru *= Foundation.exp(-learningRate)
                ghostEntries.unlink(g, &recencyGhosts)
            } else {
                weights.lfu *= Foundation.exp(-learningRate)
                ghostEntries.unlink(g, &frequencyGhosts)
            }
            ghostIndex[request.id] = nil
            ghostEntries.release(g)
        }
        let lru = weights.lru / (weights.lru + weights.lfu)
        weights = (lru, 1 - lru)
        return false
    }

    public mutating func evict(_ request: CacheRequest) {
        guard scanResistant.count + reuse.count > 0 else { return }
        let byRecency = scanResistant.bytes > 0 || reuse.count == 0 ? scanResistant.tail : reuse.tail
        let byFrequencyVictim = Int32(truncatingIfNeeded: byFrequency.pool.ids[Int(byFrequency.newestOfLeastFrequent)])
        let bits = key.bits(block: draws)
        draws += 1
        let followRecency = Double(bits.0 % 100) / 100 < weights.lru
        if byRecency == byFrequencyVictim {
            retire(byRecency, keepingDemotion: true)
        } else {
            let victim = followRecency ? byRecency : byFrequencyVictim
            let size = entries.sizes[Int(victim)], id = entries.ids[Int(victim)]
            // SR-LRU's own eviction keeps a demoted object's mark in H; its removal at CR-LFU's
            // choice does not (libCacheSim's evict and remove).
            retire(victim, keepingDemotion: followRecency)
            remember(id: id, size: size, evictedByRecency: followRecency)
        }
        trimHistory()
    }

    public mutating func insert(_ request: CacheRequest) {
        let returning = index[request.id]
        // An object larger than the list it would enter is not cached (the evictions made for it
        // stand, as in libCacheSim).
        guard request.size <= (returning == nil ? scanResistantCapacity : reuseCapacity) else { return }
        let n: Int32, count: Int32
        if let h = returning {
            // Back from the history: into R, with its flags and its CR-LFU count plus one.
            n = h
            let i = Int(n)
            count = entries.counters[i] < Int32.max ? entries.counters[i] + 1 : Int32.max
            entries.unlink(n, &history)
            entries.sizes[i] = request.size
            makeRoomInReuse(for: request.size)
            entries.tags[i] = entries.tags[i] & ~Self.listMask | Self.reuseTag
            entries.pushHead(n, &reuse)
            if entries.tags[i] & Self.newFlag != 0 {
                // It was evicted too early from SR: SR grows, capped at the occupancy less one.
                // libCacheSim adds δ = max(1, ⌊demoted ÷ new⌋ + ½) in doubles and truncates; in
                // integers (exact, and without a trap near Int64.max) that is + max(1, ⌊…⌋), with
                // the comparison against the occupancy less one adjusted for the half.
                // The occupancy counts the returning object (what libCacheSim 0.3.5 does, observed).
                let quotient = newInHistory > 0 ? demoted / newInHistory : 0
                let limit = scanResistant.bytes + reuse.bytes - 1
                let (grown, overflow) = scanResistantCapacity.addingReportingOverflow(Swift.max(quotient, 1))
                let exceeds = overflow || (quotient >= 1 ? grown >= limit : grown > limit)
                scanResistantCapacity = exceeds ? Swift.max(limit, 0) : grown
                reuseCapacity = capacity - scanResistantCapacity
                entries.tags[i] &= ~Self.newFlag
            }
        } else {
            n = entries.allocate(id: request.id, size: request.size, tag: Self.scanResistantTag | Self.newFlag)
            count = 1
            entries.pushHead(n, &scanResistant)
            index[request.id] = n
        }
        let i = Int(n)
        if i == frequencyNode.count { frequencyNode.append(-1) }
        frequencyNode[i] = byFrequency.insert(id: UInt64(i), size: request.size, count: count)
        // SR's overflow leaves the cache for the history, outside either expert's choice.
        while scanResistant.bytes > scanResistantCapacity, scanResistant.tail >= 0 {
            retire(scanResistant.tail, keepingDemotion: false)
        }
        trimHistory()
        occupied = scanResistant.bytes + reuse.bytes
    }

    private func list(_ n: Int32) -> UInt8 { entries.tags[Int(n)] & Self.listMask }

    /// Demotes R's least recent objects to SR until `size` more fits in R. A demoted object enters
    /// SR marked as demoted unless it already was (then unmarked, as in libCacheSim).
    private mutating func makeRoomInReuse(for size: Int64) {
        while reuse.bytes + size > reuseCapacity, reuse.tail >= 0 {
            let t = reuse.tail
            let wasDemoted = entries.tags[Int(t)] & Self.demotedFlag != 0
            if !wasDemoted { demoted += 1 }
            entries.unlink(t, &reuse)
            entries.tags[Int(t)] = Self.scanResistantTag | (wasDemoted ? 0 : Self.demotedFlag)
            entries.pushHead(t, &scanResistant)
        }
    }

    /// Moves resident entry `n` out of the cache into the history, keeping its CR-LFU count, its
    /// new-arrival mark and (when `keepingDemotion`) its demotion mark.
    private mutating func retire(_ n: Int32, keepingDemotion: Bool) {
        let i = Int(n)
        let tag = entries.tags[i]
        if tag & Self.listMask == Self.reuseTag { entries.unlink(n, &reuse) } else { entries.unlink(n, &scanResistant) }
        entries.counters[i] = byFrequency.pool.counters[Int(frequencyNode[i])]
        byFrequency.remove(frequencyNode[i])
        if tag & Self.newFlag != 0 { newInHistory += 1 }
        if tag & Self.demotedFlag != 0 { demoted -= 1 }
        entries.tags[i] = Self.historyTag | (tag & Self.newFlag) | (keepingDemotion ? tag & Self.demotedFlag : 0)
        entries.pushHead(n, &history)
        occupied = scanResistant.bytes + reuse.bytes
    }

    /// The history holds less than the capacity.
    private mutating func trimHistory() {
        while history.bytes >= capacity, history.tail >= 0 {
            let t = history.tail
            entries.unlink(t, &history)
            index[entries.ids[Int(t)]] = nil
            entries.release(t)
        }
    }

    /// Enters an evicted object into the ghost list of the expert that chose it.
    private mutating func remember(id: UInt64, size: Int64, evictedByRecency: Bool) {
        guard size <= half else { return }
        var list = evictedByRecency ? recencyGhosts : frequencyGhosts
        while list.bytes + size > half, list.tail >= 0 {
            let t = list.tail
            ghostEntries.unlink(t, &list)
            ghostIndex[ghostEntries.ids[Int(t)]] = nil
            ghostEntries.release(t)
        }
        let g = ghostEntries.allocate(id: id, size: size, tag: evictedByRecency ? 0 : 1)
        ghostEntries.pushHead(g, &list)
        ghostIndex[id] = g
        if evictedByRecency { recencyGhosts = list } else { frequencyGhosts = list }
    }

    /// libCacheSim's learning-rate update, every `capacity` requests (see the type's discussion).
    private mutating func updateLearningRate() {
        let hitRate = Double(hitsInInterval / updateInterval)
        let hitChange = hitRate - previousHitRate
        let rateChange = learningRate - previousLearningRate
        previousLearningRate = learningRate
        previousHitRate = hitRate
        if rateChange != 0 {
            let sign: Double = hitChange / rateChange > 0 ? 1 : -1
            // C's abs() of the product converted to int: truncated toward zero.
            let step = (learningRate * rateChange).magnitude.rounded(.towardZero)
            learningRate = learningRate + sign * step > 0.001 ? learningRate + sign * step : 0.0001
            if !learningRate.isFinite { learningRate = 1 }
            unlearnCount = 0
        } else if hitRate == 0 || hitChange <= 0 {
            unlearnCount += 1
        } else if unlearnCount >= 10 {
            unlearnCount = 0
            learningRate = 0.001 + Double(key.bits(block: draws).0 % 1000) / 1000
            draws += 1
        }
        hitsInInterval = 0
    }
}
