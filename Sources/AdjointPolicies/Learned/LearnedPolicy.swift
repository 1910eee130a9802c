import AdjointStateful
import AdjointTensor
import Foundation

/// The symbolic guard on the learned policy's evictions: only a resident, unpinned object may be
/// evicted. A proposal that breaks this is repaired to the best-scored candidate that does not;
/// when no candidate qualifies the proposal is refused (the policy then falls back to the oldest
/// unpinned resident object, or does not admit the new one).
public struct EvictionValidator: DecisionValidator {
    public struct Context {
        /// Candidate ids in increasing score (the first is the proposal's preferred order).
        public var ranked: [UInt64]
        public var isResident: (UInt64) -> Bool
        public var pinned: Set<UInt64>
    }

    public init() {}

    public func validate(_ proposal: UInt64, in context: Context) -> Verdict<UInt64> {
        func allowed(_ id: UInt64) -> Bool { context.isResident(id) && !context.pinned.contains(id) }
        if allowed(proposal) { return .accept }
        let reason = context.isResident(proposal) ? "pinned" : "not resident"
        if let fix = context.ranked.first(where: allowed) { return .repair(fix, reason: reason) }
        return .refuse(reason: "no evictable candidate (\(reason))")
    }
}

/// The learned eviction policy: on each eviction it samples up to ``candidates`` resident
/// objects (Philox, so a run is reproducible), scores their features with f_θ, and proposes the
/// lowest-scoring one; the ``EvictionValidator`` checks every proposal (counts in ``validation``).
/// Capacity is enforced by the simulator loop: nothing is inserted unless it fits.
public struct LearnedPolicy: CachePolicy {
    public var name: String { "Learned" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    public let scorer: CompiledScorer
    public let normalization: FeatureNormalization
    public let candidates: Int
    public var pinned: Set<UInt64>
    /// What the validator did.
    public var validation: ValidationMetrics { guarded.metrics }
    /// Called at every eviction with the candidates, their normalised features (row-major) and
    /// the victim (for imitation learning and analysis).
    public var observer: ((_ candidates: [UInt64], _ features: [Double], _ victim: UInt64) -> Void)?

    var history: [UInt64: ObjectHistory] = [:]
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
                candidates: Int = 64, pinned: Set<UInt64> = [], key: RandomKey = RandomKey(seed: 7)) {
        self.capacity = capacity
        self.scorer = scorer.compiled()
        self.normalization = normalization
        self.candidates = Swift.max(1, candidates)
        self.pinned = pinned
        stream = key
        buffer = FeatureBuffer(count: self.candidates * ObjectFeatures.count)
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
        guard canInsert(request) else { return false }
        while occupied + request.size > capacity {
            guard evictOne() else { return false }   // everything left is pinned: do not admit
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
    mutating func evictOne() -> Bool {
        guard !resident.isEmpty else { return false }
        let k = Swift.min(candidates, resident.count)
        var chosen: [UInt64] = []
        chosen.reserveCapacity(k)
        if k == resident.count {
            chosen = resident
        } else {
            var seen = Set<UInt64>()
            while chosen.count < k {
                let bits = stream.bits(block: draws)
                draws += 1
                let id = resident[Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(resident.count))]
                if seen.insert(id).inserted { chosen.append(id) }
            }
        }
        var scored: [(score: Double, id: UInt64)] = []
        scored.reserveCapacity(k)
        for (i, id) in chosen.enumerated() {
            let row = features + i * ObjectFeatures.count
            ObjectFeatures.write(history[id]!, now: now, into: row)
            normalization.apply(row)
            scored.append((scorer.score(row), id))
        }
        let ranked = scored.enumerated().sorted { ($0.element.score, $0.offset) < ($1.element.score, $1.offset) }.map(\.element.id)
        let context = EvictionValidator.Context(ranked: ranked, isResident: { [position] in position[$0] != nil }, pinned: pinned)
        var victim = guarded.check(ranked[0], in: context)
        if victim == nil { victim = resident.first { !pinned.contains($0) } }
        guard let id = victim else { return false }
        if let observer {
            observer(chosen, Array(UnsafeBufferPointer(start: features, count: k * ObjectFeatures.count)), id)
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
    }
}

/// Scratch rows of candidate features, owned by one policy (freed with it).
final class FeatureBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    init(count: Int) { pointer = .allocate(capacity: count) }
    deinit { pointer.deallocate() }
}
