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
        /// The policy's index: an object is resident when its value is ≥ 0 (negative values
        /// are departed objects whose histories are kept).
        public var resident: [UInt64: Int]
        public var pinned: Set<UInt64>

        func isResident(_ id: UInt64) -> Bool { (resident[id] ?? -1) >= 0 }
    }

    public init() {}

    public func validate(_ proposal: UInt64, in context: Context) -> Verdict<UInt64> {
        func allowed(_ id: UInt64) -> Bool { context.isResident(id) && (context.pinned.isEmpty || !context.pinned.contains(id)) }
        if allowed(proposal) { return .accept }
        let reason = context.isResident(proposal) ? "pinned" : "not resident"
        var fix: Int?
        for i in context.candidates.indices where allowed(context.candidates[i]) {
            if fix == nil || context.scores[i] < context.scores[fix!] { fix = i }
        }
        if let fix { return .repair(context.candidates[fix], reason: reason) }
        return .refuse(reason: "no evictable candidate (\(reason))")
    }
}

/// The learned eviction policy: on each eviction it scores `candidates` resident objects — the
/// best-scored (lowest) half of the previous eviction's candidates that are still resident, and
/// fresh samples (a counter-based generator seeded by the key, so a run is reproducible) for the
/// rest — with f_θ, and proposes the
/// lowest-scoring one; the ``EvictionValidator`` checks every proposal (counts in ``validation``).
/// Keeping the previous runners-up makes each eviction choose among candidates accumulated over
/// many samples while scoring only `candidates` objects, every one at the current time (no stale
/// scores). Capacity is enforced by the simulator loop: nothing is inserted unless it fits.
///
/// Resident objects live in a dense array with their histories (no hashing while scoring), and a
/// linear scorer is evaluated with the normalisation folded into its weights: the four features
/// that change only when an object is requested (frequency, size, mean and last gap) are scored
/// once per request of the object, lazily, so each candidate costs three logarithms. A hidden
/// layer scores the full normalised feature row.
///
/// Histories (the features' inputs) are kept for resident objects and for the ``historyLimit``
/// most recent departures (evictions and refused admissions); an object that left longer ago
/// starts afresh when it returns. Memory is bounded by the cache plus that limit, not by the
/// number of objects a trace ever names.
public struct LearnedPolicy: CachePolicy {
    public var name: String { "Learned" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0
    public internal(set) var scorer: CompiledScorer { didSet { folded = FoldedLinearScorer(scorer, normalization) } }
    public let normalization: FeatureNormalization
    /// Objects scored per eviction (the retained runners-up and the fresh samples together).
    public let candidates: Int
    public var pinned: Set<UInt64>
    /// Admission by the eviction scorer: a missed object that needs room competes with the
    /// eviction's candidates, scored by the same f_θ at the same time, and is not admitted when it
    /// scores below all of them (it would be the victim). Off by default; training turns it on
    /// when it lowers the validation miss ratio (``CacheModel/Metadata/bypass``).
    public var bypass = false
    /// Missed objects not admitted because they scored below every candidate.
    public private(set) var bypassed = 0
    /// What the validator did.
    public var validation: ValidationMetrics { guarded.metrics }
    /// Called at every eviction with the candidates, their normalised features (row-major) and
    /// the victim (for imitation learning and analysis).
    public var observer: ((_ candidates: [UInt64], _ features: [Double], _ victim: UInt64) -> Void)?

    /// A resident object: its id, history, the size it occupies, and the scorer's part that
    /// depends only on the history (valid while `staticStamp == history.lastAccess`).
    struct Entry {
        var id: UInt64
        var history: ObjectHistory
        var size: Int64
        var staticScore = 0.0
        var staticStamp: Int64 = -1
        /// The eviction that last drew it as a candidate (duplicates are drawn again).
        var drawnAt: UInt64 = 0
    }

    var entries: [Entry] = []
    /// One hash lookup per request finds either: a resident object's slot in `entries` (≥ 0), or
    /// a departed object's place r in the ring of departures as −1 − r.
    var index: [UInt64: Int] = [:]
    /// The history of the missed object between `find` and its insertion or refusal.
    var pending: (id: UInt64, history: ObjectHistory)?
    /// Histories of objects not in the cache kept at most (default 2^20).
    public let historyLimit: Int
    /// The last ``historyLimit`` departures (evictions and refused admissions) with their
    /// histories; `index` points at the latest departure of each departed object.
    var departures: [(id: UInt64, history: ObjectHistory)] = []
    var departureHead = 0
    /// Histories held now (resident objects, recent departures and a missed object not yet inserted).
    public var trackedHistories: Int { index.count + (pending == nil ? 0 : 1) }
    /// Slots of the previous eviction's best-scored survivors, scored again at the next one.
    var retained: [Int] = []
    var now: Int64 = -1
    /// The candidate draws' seed: 64 bits of the key's Philox stream.
    let drawSeed: UInt64
    var draws: UInt64 = 0
    var evictions: UInt64 = 0
    var guarded = GuardedDecisions(EvictionValidator())
    var folded: FoldedLinearScorer?
    let buffer: FeatureBuffer
    var features: UnsafeMutablePointer<Double> { buffer.pointer }

    public init(capacity: Int64, scorer: EvictionScorer, normalization: FeatureNormalization = .identity,
                candidates: Int = CacheTrainingOptions.defaultCandidates, pinned: Set<UInt64> = [], key: RandomKey = RandomKey(seed: 7), historyLimit: Int = 1 << 20) {
        self.capacity = capacity
        self.historyLimit = Swift.max(1, historyLimit)
        self.scorer = scorer.compiled()
        self.normalization = normalization
        self.candidates = Swift.max(1, candidates)
        self.pinned = pinned
        let bits = key.bits(block: 0)
        drawSeed = UInt64(bits.0) << 32 | UInt64(bits.1)
        buffer = FeatureBuffer(candidates: self.candidates)
        folded = FoldedLinearScorer(self.scorer, normalization)
        retained.reserveCapacity(self.candidates)
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        now += 1
        var code = index[request.id]
        if let i = code, i >= 0 {
            entries[i].history.record(at: now, size: request.size)
            return true
        }
        if let p = pending {   // a miss that was neither inserted nor refused
            refuse(p.id)
            code = index[request.id]
        }
        if let code {
            // (The index keeps pointing at the departure until the object is inserted or leaves again.)
            var h = departures[-1 - code].history
            h.record(at: now, size: request.size)
            pending = (request.id, h)
        } else {
            pending = (request.id, ObjectHistory(at: now, size: request.size))
        }
        return false
    }

    public mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool {
        if find(request) { return true }
        guard admitting, canInsert(request) else { refuse(request.id); return false }
        // (Bypass is decided at the first eviction: once one object went for it, it is admitted.)
        var incoming = bypass ? pending?.history : nil
        while occupied + request.size > capacity {
            defer { incoming = nil }
            switch evictOne(incoming: incoming) {
            case .evicted: continue
            case .nothingEvictable: refuse(request.id); return false   // everything left is pinned: do not admit
            case .bypassed: bypassed += 1; refuse(request.id); return false
            }
        }
        insert(request)
        return false
    }

    public mutating func evict(_ request: CacheRequest) { _ = evictOne(incoming: nil) }

    enum EvictionOutcome { case evicted, nothingEvictable, bypassed }

    /// f_θ of a history at the current time (the missed object's, for ``bypass``).
    func score(_ h: ObjectHistory) -> Double {
        if let folded { return folded.staticPart(h) + folded.dynamicPart(h, now: now) }
        return withUnsafeTemporaryAllocation(of: Double.self, capacity: ObjectFeatures.count) { row in
            ObjectFeatures.write(h, now: now, into: row.baseAddress!)
            normalization.apply(row.baseAddress!)
            return scorer.score(row.baseAddress!)
        }
    }

    public mutating func insert(_ request: CacheRequest) {
        var history = ObjectHistory(at: Swift.max(now, 0), size: request.size)
        if let p = pending, p.id == request.id { history = p.history; pending = nil }
        index[request.id] = entries.count
        entries.append(Entry(id: request.id, history: history, size: request.size))
        occupied += request.size
    }

    /// The missed object `id` is not admitted: its history becomes a departure.
    mutating func refuse(_ id: UInt64) {
        var history = ObjectHistory(at: Swift.max(now, 0), size: 0)
        if let p = pending, p.id == id { pending = nil; history = p.history }
        departed(id, history)
    }

    /// Scores the candidates in `slots[0..<count]` now, into `chosen` (ids) and `scores`, and
    /// their normalised feature rows into `features` when `rows`.
    mutating func scoreCandidates(_ count: Int, rows: Bool) {
        let slots = buffer.slots, chosen = buffer.ids, scores = buffer.scores, features = buffer.pointer, d = ObjectFeatures.count
        let now = now, folded = folded, scorer = scorer, normalization = normalization
        // Unchecked access to the candidates' entries (no bounds or uniqueness check per field):
        // every slot is below `entries.count`, because fresh draws are reduced modulo the count
        // and carried-over slots are remapped when `remove(slot:)` moves the last entry. The
        // assertion checks it in debug builds, and `LearnedPolicyTests` run every eviction path
        // (carried, fresh, all residents, pinned) under AddressSanitizer in CI.
        entries.withUnsafeMutableBufferPointer { entries in
            for i in 0..<count {
                assert(slots[i] >= 0 && slots[i] < entries.count, "candidate slot \(slots[i]) of \(entries.count)")
                let e = entries.baseAddress! + slots[i]
                chosen[i] = e.pointee.id
                if rows || folded == nil {
                    ObjectFeatures.write(e.pointee.history, now: now, into: features + i * d)
                    normalization.apply(features + i * d)
                }
                guard let folded else { scores[i] = scorer.score(features + i * d); continue }
                if e.pointee.staticStamp != e.pointee.history.lastAccess {
                    e.pointee.staticScore = folded.staticPart(e.pointee.history)
                    e.pointee.staticStamp = e.pointee.history.lastAccess
                }
                scores[i] = e.pointee.staticScore + folded.dynamicPart(e.pointee.history, now: now)
            }
        }
    }

    /// Scores the retained runners-up and fresh samples, validates the proposal and evicts;
    /// `.nothingEvictable` if nothing can go. Uses the policy's scratch buffers: no allocation per eviction (unless an
    /// observer is attached). With `incoming` (``bypass``), nothing is evicted when that history
    /// scores below every candidate.
    mutating func evictOne(incoming: ObjectHistory?) -> EvictionOutcome {
        guard !entries.isEmpty else { return .nothingEvictable }
        let k = Swift.min(candidates, entries.count)
        let slots = buffer.slots, chosen = buffer.ids, scores = buffer.scores
        var count = 0
        evictions += 1
        if k == entries.count {
            for i in entries.indices { slots[count] = i; count += 1 }
        } else {
            for slot in retained { slots[count] = slot; count += 1; entries[slot].drawnAt = evictions }
            while count < k {
                // Draw d: SplitMix64's output function of seed + d·γ (a counter, like Philox, but a
                // tenth of its cost per draw), reduced modulo the residents.
                let z = SplitMix64.mix(drawSeed &+ draws &* SplitMix64.gamma)
                draws += 1
                let slot = Int(z % UInt64(entries.count))
                if entries[slot].drawnAt != evictions { entries[slot].drawnAt = evictions; slots[count] = slot; count += 1 }
            }
        }
        scoreCandidates(count, rows: observer != nil)
        var best = 0
        for i in 1..<count where scores[i] < scores[best] { best = i }
        if let incoming, score(incoming) < scores[best] {
            retain(count: count, victim: nil)
            return .bypassed
        }
        let context = EvictionValidator.Context(candidates: UnsafeBufferPointer(start: chosen, count: count),
                                                scores: UnsafeBufferPointer(start: scores, count: count), resident: index, pinned: pinned)
        // The victim's slot: the validator returns the proposal or another candidate (found
        // without hashing); when it refuses, the first unpinned resident object goes.
        let victim: (id: UInt64, slot: Int)
        if let id = guarded.check(chosen[best], in: context) {
            if let i = (0..<count).first(where: { chosen[$0] == id }) { victim = (id, slots[i]) }
            else if let slot = index[id], slot >= 0 { victim = (id, slot) }   // (a validator outside the candidates)
            else { return .nothingEvictable }
        } else {
            guard let slot = entries.firstIndex(where: { !pinned.contains($0.id) }) else { return .nothingEvictable }
            victim = (entries[slot].id, slot)
        }
        let id = victim.id
        if let observer {
            observer(Array(UnsafeBufferPointer(start: chosen, count: count)),
                     Array(UnsafeBufferPointer(start: features, count: count * ObjectFeatures.count)), id)
        }
        retain(count: count, victim: id)
        remove(slot: victim.slot)
        return .evicted
    }

    /// Keeps the best-scored half of this eviction's candidates, the victim (if any) excepted, for the next.
    mutating func retain(count: Int, victim: UInt64?) {
        retained.removeAll(keepingCapacity: true)
        guard count < entries.count else { return }   // every object was scored: nothing to carry
        let keep = candidates / 2, slots = buffer.slots, chosen = buffer.ids, scores = buffer.scores
        for i in 0..<count where chosen[i] != victim {
            // Insertion into `retained`, ordered by score (ties by position: deterministic).
            var j = retained.count
            if j == keep {
                guard scores[i] < scores[retained[j - 1]] else { continue }
                retained.removeLast()
                j -= 1
            }
            retained.append(i)
            while j > 0, scores[retained[j - 1]] > scores[i] { retained.swapAt(j, j - 1); j -= 1 }
        }
        for j in retained.indices { retained[j] = slots[retained[j]] }
    }

    mutating func remove(slot i: Int) {
        let entry = entries[i], last = entries.count - 1
        if i < last {
            entries[i] = entries[last]
            index[entries[i].id] = i
        }
        entries.removeLast()
        // The retained slots follow the object moved into the freed slot.
        for j in retained.indices where retained[j] == last { retained[j] = i }
        occupied -= entry.size
        departed(entry.id, entry.history)
    }

    /// Records that `id` left (or never entered) the cache now, with its history; the departure
    /// this one pushes out of the ring is forgotten unless its object came back or left again since
    /// (then the index points elsewhere).
    mutating func departed(_ id: UInt64, _ history: ObjectHistory) {
        let r: Int
        if departures.count < historyLimit {
            r = departures.count
            departures.append((id, history))
        } else {
            r = departureHead
            departureHead = (departureHead + 1) % historyLimit
            let old = departures[r].id
            if let k = index.index(forKey: old), index.values[k] == -1 - r { index.remove(at: k) }
            departures[r] = (id, history)
        }
        index[id] = -1 - r
    }
}

/// A linear ``CompiledScorer`` with the normalisation folded into its weights, split into the
/// part of the score fixed between two requests of an object and the part that grows with time:
/// `score = c + Σ aⱼ·xⱼ` over the raw features, `aⱼ = wⱼ / stdⱼ`, `c = b − Σ wⱼ·meanⱼ / stdⱼ`.
/// Equal to scoring the normalised row up to rounding.
struct FoldedLinearScorer {
    let c: Double
    let a: (Double, Double, Double, Double, Double, Double, Double)
    let table = (0 ..< 256).map { ObjectFeatures.logScale(Double($0)) }

    /// Nil for a scorer with a hidden layer.
    init?(_ scorer: CompiledScorer, _ normalization: FeatureNormalization) {
        guard scorer.hidden == 0, scorer.w1.count == ObjectFeatures.count else { return nil }
        let w = (0..<ObjectFeatures.count).map { scorer.w1[$0] / normalization.std[$0] }
        var c = scorer.b1[0]
        for j in 0..<ObjectFeatures.count { c -= w[j] * normalization.mean[j] }
        self.c = c
        a = (w[0], w[1], w[2], w[3], w[4], w[5], w[6])
    }

    /// The terms of frequency, size, mean gap and last gap (and the constant).
    @inline(__always)
    func staticPart(_ h: ObjectHistory) -> Double {
        c + a.1 * smallLog(h.count) + a.3 * smallLog(h.size) + a.4 * ObjectFeatures.logScale(h.meanGap) + a.6 * smallLog(h.lastGap)
    }

    /// `logScale` of a count or size, from a table below 256 (the same values: the table is
    /// `logScale` of 0 ..< 256).
    @inline(__always)
    func smallLog(_ n: Int64) -> Double {
        (0 ..< 256).contains(n) ? table[Int(n)] : ObjectFeatures.logScale(Double(n))
    }

    /// The terms of recency, age and overdue at `now`.
    @inline(__always)
    func dynamicPart(_ h: ObjectHistory, now: Int64) -> Double {
        let recency = Double(now - h.lastAccess)
        return a.0 * ObjectFeatures.logScale(recency) + a.2 * ObjectFeatures.logScale(Double(now - h.firstAccess))
            + a.5 * ObjectFeatures.logScale(recency / (1 + h.meanGap))
    }
}

/// Scratch space of one policy's evictions (freed with it): candidate slots and ids, their
/// feature rows and scores.
// @unchecked Sendable: scratch memory of one policy, which runs on one thread at a time. Copies of
// a `LearnedPolicy` share it, so two copies must not run concurrently (each simulation makes its
// own policy with `CacheModel.policy(capacity:)`).
final class FeatureBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Double>
    let slots: UnsafeMutablePointer<Int>
    let ids: UnsafeMutablePointer<UInt64>
    let scores: UnsafeMutablePointer<Double>
    init(candidates: Int) {
        pointer = .allocate(capacity: candidates * ObjectFeatures.count)
        slots = .allocate(capacity: candidates)
        ids = .allocate(capacity: candidates)
        scores = .allocate(capacity: candidates)
    }
    deinit {
        pointer.deallocate()
        slots.deallocate()
        ids.deallocate()
        scores.deallocate()
    }
}
