import AdjointStateful
import AdjointTensor
import Foundation

/// The symbolic guard on the learned policy's evictions: only a resident, unpinned object may be
/// evicted. A proposal that breaks this is repaired to the best-scored candidate that does not;
/// when no candidate qualifies the proposal is refused (the policy then falls back to the oldest
/// unpinned resident object, or does not admit the new one).
public struct EvictionValidator: DecisionValidator {
    /// The eviction's candidates and their scores, and the cache's residency (no copies: the
    /// dictionary and set are shared, the buffers are the policy's scratch space).
    public struct Context {
        public var candidates: UnsafeBufferPointer<UInt64>
        public var scores: UnsafeBufferPointer<Double>
        public var resident: [UInt64: Int]
        public var pinned: Set<UInt64>
    }

    public init() {}

    public func validate(_ proposal: UInt64, in context: Context) -> Verdict<UInt64> {
        func allowed(_ id: UInt64) -> Bool { context.resident[id] != nil && !context.pinned.contains(id) }
        if allowed(proposal) { return .accept }
        let reason = context.resident[proposal] != nil ? "pinned" : "not resident"
        var fix: Int?
        for i in context.candidates.indices where allowed(context.candidates[i]) {
            if fix == nil || context.scores[i] < context.scores[fix!] { fix = i }
        }
        if let fix { return .repair(context.candidates[fix], reason: reason) }
        return .refuse(reason: "no evictable candidate (\(reason))")
    }
}

/// The learned eviction policy: on each eviction it samples up to ``candidates`` resident
/// objects (Philox, so a run is reproducible), scores their features with f_θ, and proposes the
/// lowest-scoring one; the ``EvictionValidator`` checks every proposal (counts in ``validation``).
/// Capacity is enforced by the simulator loop: nothing is inserted unless it fits.
///
/// Histories (the features' inputs) are kept for resident objects and for the ``historyLimit``
/// most recent departures (evictions and refused admissions); an object that left longer ago
/// starts afresh when it returns. Memory is bounded by the cache plus that limit, not by the
/// number of objects a trace ever names.
public struct LearnedPolicy: CachePolicy {
    public var name: String { "Learned" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    public internal(set) var scorer: CompiledScorer
    public let normalization: FeatureNormalization
    public let candidates: Int
    public var pinned: Set<UInt64>
    /// What the validator did.
    public var validation: ValidationMetrics { guarded.metrics }
    /// Called at every eviction with the candidates, their normalised features (row-major) and
    /// the victim (for imitation learning and analysis).
    public var observer: ((_ candidates: [UInt64], _ features: [Double], _ victim: UInt64) -> Void)?

    var history: [UInt64: ObjectHistory] = [:]
    /// Histories of objects not in the cache kept at most (default 2^20).
    public let historyLimit: Int
    /// Departed objects, a ring of the last ``historyLimit`` departures with their times.
    var departures: [(id: UInt64, at: Int64)] = []
    var departureHead = 0
    /// Histories held now (resident objects and recent departures).
    public var trackedHistories: Int { history.count }
    var resident: [UInt64] = []
    var position: [UInt64: Int] = [:]
    var sizes: [UInt64: Int64] = [:]
    var now: Int64 = -1
    var stream: RandomKey
    var draws: UInt64 = 0
    var guarded = GuardedDecisions(EvictionValidator())
    let buffer: FeatureBuffer
    var features: UnsafeMutablePointer<Double> { buffer.pointer }

    public init(capacity: Int64, scorer: EvictionScorer, normalization: FeatureNormalization = .identity,
                candidates: Int = 64, pinned: Set<UInt64> = [], key: RandomKey = RandomKey(seed: 7), historyLimit: Int = 1 << 20) {
        self.capacity = capacity
        self.historyLimit = Swift.max(1, historyLimit)
        self.scorer = scorer.compiled()
        self.normalization = normalization
        self.candidates = Swift.max(1, candidates)
        self.pinned = pinned
        stream = key
        buffer = FeatureBuffer(candidates: self.candidates)
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        now += 1
        if var h = history[request.id] {
            h.record(at: now, size: request.size)
            history[request.id] = h
        } else {
            history[request.id] = ObjectHistory(at: now, size: request.size)
        }
        return position[request.id] != nil
    }

    public mutating func access(_ request: CacheRequest) -> Bool {
        if find(request) { return true }
        guard canInsert(request) else { departed(request.id); return false }
        while occupied + request.size > capacity {
            guard evictOne() else { departed(request.id); return false }   // everything left is pinned: do not admit
        }
        insert(request)
        return false
    }

    public mutating func evict(_ request: CacheRequest) { _ = evictOne() }

    public mutating func insert(_ request: CacheRequest) {
        position[request.id] = resident.count
        resident.append(request.id)
        sizes[request.id] = request.size
        occupied += request.size
    }

    /// Samples candidates, scores them, validates the proposal and evicts; false if nothing can go.
    /// Uses the policy's scratch buffers: no allocation per eviction (unless an observer is attached).
    mutating func evictOne() -> Bool {
        guard !resident.isEmpty else { return false }
        let k = Swift.min(candidates, resident.count)
        let chosen = buffer.ids, scores = buffer.scores
        var count = 0
        if k == resident.count {
            for id in resident { chosen[count] = id; count += 1 }
        } else {
            while count < k {
                let bits = stream.bits(block: draws)
                draws += 1
                let id = resident[Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(resident.count))]
                var duplicate = false
                for i in 0..<count where chosen[i] == id { duplicate = true; break }
                if !duplicate { chosen[count] = id; count += 1 }
            }
        }
        var best = 0
        for i in 0..<count {
            let row = features + i * ObjectFeatures.count
            ObjectFeatures.write(history[chosen[i]]!, now: now, into: row)
            normalization.apply(row)
            scores[i] = scorer.score(row)
            if scores[i] < scores[best] { best = i }
        }
        let context = EvictionValidator.Context(candidates: UnsafeBufferPointer(start: chosen, count: count),
                                                scores: UnsafeBufferPointer(start: scores, count: count), resident: position, pinned: pinned)
        var victim = guarded.check(chosen[best], in: context)
        if victim == nil { victim = resident.first { !pinned.contains($0) } }
        guard let id = victim else { return false }
        if let observer {
            observer(Array(UnsafeBufferPointer(start: chosen, count: count)),
                     Array(UnsafeBufferPointer(start: features, count: count * ObjectFeatures.count)), id)
        }
        remove(id)
        return true
    }

    mutating func remove(_ id: UInt64) {
        let i = position.removeValue(forKey: id)!
        let last = resident.removeLast()
        if i < resident.count {
            resident[i] = last
            position[last] = i
        }
        occupied -= sizes.removeValue(forKey: id)!
        departed(id)
    }

    /// Notes that `id` left (or never entered) the cache now; the history of the departure this one
    /// pushes out of the ring is dropped unless its object came back since.
    mutating func departed(_ id: UInt64) {
        guard departures.count == historyLimit else {
            departures.append((id, now))
            return
        }
        let (old, at) = departures[departureHead]
        departures[departureHead] = (id, now)
        departureHead = (departureHead + 1) % historyLimit
        if position[old] == nil, let h = history[old], h.lastAccess <= at { history.removeValue(forKey: old) }
    }
}

/// Scratch space of one policy's evictions (freed with it): candidate ids, their feature rows and scores.
// @unchecked Sendable: scratch memory of one policy, which runs on one thread at a time. Copies of
// a `LearnedPolicy` share it, so two copies must not run concurrently (each simulation makes its
// own policy with `CacheModel.policy(capacity:)`).
final class FeatureBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    let ids: UnsafeMutablePointer<UInt64>
    let scores: UnsafeMutablePointer<Double>
    init(candidates: Int) {
        pointer = .allocate(capacity: candidates * ObjectFeatures.count)
        ids = .allocate(capacity: candidates)
        scores = .allocate(capacity: candidates)
    }
    deinit {
        pointer.deallocate()
        ids.deallocate()
        scores.deallocate()
    }
}
