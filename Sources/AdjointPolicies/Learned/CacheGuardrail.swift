import AdjointAutodiff
import AdjointTensor
import Foundation

/// Settings of the learned cache's online guardrail.
public struct CacheGuardrailSettings: Sendable, Equatable {
    /// Requests per window.
    public var window = 20_000
    /// The learned policy falls back when its miniature's miss ratio on a window exceeds the
    /// shadow miniature's by more than this (absolute).
    public var margin = 0.01
    /// Consecutive bad windows before falling back; consecutive good ones before returning.
    public var patience = 1, restorePatience = 3
    /// The classical policy of the shadow miniature, and of the cache after a fallback.
    public var shadow: PolicyKind = .s3fifo
    /// The miniatures see the requests of one key in `sampling` (by a hash of the key), at
    /// `1/sampling` of the cache size.
    public var sampling = 16
    /// Update the learned scorer after each window (one imitation step toward Belady's choices on
    /// the finished window, whose next accesses are then known).
    public var onlineLearning = false
    /// The largest update per window, relative to the scorer's norm.
    public var maximumUpdate = 0.05

    public init(window: Int = 20_000, margin: Double = 0.01, shadow: PolicyKind = .s3fifo, sampling: Int = 16,
                onlineLearning: Bool = false, maximumUpdate: Double = 0.05) {
        (self.window, self.margin, self.shadow, self.sampling) = (window, margin, shadow, sampling)
        (self.onlineLearning, self.maximumUpdate) = (onlineLearning, maximumUpdate)
    }
}

/// What the cache guardrail did after a window.
public struct CacheGuardrailEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Action: String, Sendable { case fallback, restore, update }
    public var window: Int
    public var action: Action
    /// The miniatures' miss ratios on the window.
    public var learned: Double, shadow: Double
    /// For updates: the change relative to the scorer's norm.
    public var update = 0.0

    public var description: String {
        switch action {
        case .fallback: return String(format: "window %d: fallback: learned miniature %.4f > shadow %.4f + margin", window, learned, shadow)
        case .restore: return String(format: "window %d: restore the learned policy: learned miniature %.4f ≤ shadow %.4f", window, learned, shadow)
        case .update: return String(format: "window %d: online update of %.3f of the scorer's norm", window, update)
        }
    }
}

/// A run of the guarded cache.
public struct GuardedCacheRun: Sendable {
    /// The cache's requests and misses (whichever policy served them).
    public var result: SimulationResult
    public var events: [CacheGuardrailEvent]
    public var windowsOnLearned: Int, windowsOnShadow: Int
    /// Requests the miniatures saw.
    public var sampledRequests: Int
    /// The classical policy the model deploys at this size (its validation preferred it there),
    /// guarded in place of the learned scorer; nil where the learned scorer is deployed.
    public var deployed: PolicyKind?
}

/// The learned eviction policy deployed behind an online guardrail, as production caches do it
/// with miniature simulations: two miniature caches at `1/sampling` of the size see the requests
/// of one key in `sampling` — one runs the learned policy, the other a classical shadow (S3-FIFO by
/// default). Where the model deploys a classical policy at this size (``CacheModel/fallback(capacity:)``),
/// that policy is the one guarded, in the cache and in the first miniature. After each window, when
/// the learned miniature misses more than the shadow's by the
/// margin (for `patience` windows) the cache switches to the shadow policy and logs why; it returns
/// once the learned miniature is no worse for `restorePatience` windows. A policy that takes over
/// is warmed with the window's requests before it serves (its metadata rebuilt from recent
/// traffic, the objects staying where they are), so a switch does not empty the cache. Memory:
/// the two caches, the miniatures, and one window of requests (for the warm-up and online updates).
public enum CacheGuardrail {
    public static func run(_ source: inout some RequestSource, model: CacheModel, capacity: Int64, mode: SizeMode,
                           settings: CacheGuardrailSettings) throws -> GuardedCacheRun {
        guard (2 ... 1 << 24).contains(settings.window) else { throw CacheTrainingError.invalidOptions("guardrail window \(settings.window) outside 2 ... 2^24") }
        guard settings.margin.isFinite, (0 ... 1).contains(settings.margin) else { throw CacheTrainingError.invalidOptions("guardrail margin \(settings.margin) outside 0 ... 1") }
        guard (1 ... 1 << 16).contains(settings.sampling) else { throw CacheTrainingError.invalidOptions("guardrail sampling \(settings.sampling) outside 1 ... 65536") }
        guard (1 ... 1000).contains(settings.patience), (1 ... 1000).contains(settings.restorePatience) else {
            throw CacheTrainingError.invalidOptions("guardrail patience \(settings.patience) / \(settings.restorePatience) outside 1 ... 1000")
        }
        guard settings.maximumUpdate.isFinite, settings.maximumUpdate > 0, settings.maximumUpdate <= 1 else {
            throw CacheTrainingError.invalidOptions("guardrail maximum update \(settings.maximumUpdate) outside (0, 1]")
        }
        guard settings.shadow != .belady else { throw CacheTrainingError.invalidOptions("the shadow must be an online policy (Belady needs the future)") }
        // The guarded cache runs what the model deploys at this size without a guardrail: the
        // classical policy its validation preferred there (`CacheModel.fallback(capacity:)`), else
        // the learned scorer; its miniature runs the same policy.
        let preferred = model.fallback(capacity: capacity)
        if settings.onlineLearning, let preferred {
            throw CacheTrainingError.invalidOptions("online learning updates the learned scorer, but at \(capacity) the model deploys \(preferred.rawValue) (its validation preferred it at the nearest training size)")
        }
        var scorer = model.scorer
        let miniature = Swift.max(1, capacity / Int64(settings.sampling))
        var learned = model.policy(capacity: capacity)
        var classical = preferred?.make(capacity: capacity)
        var fallback: (any CachePolicy)?
        var learnedMini = model.policy(capacity: miniature, key: RandomKey(seed: 8))
        var classicalMini = preferred?.make(capacity: miniature)
        var shadowMini = settings.shadow.make(capacity: miniature)
        var result = SimulationResult(policy: "Learned+guardrail", capacity: capacity, mode: mode)
        var events: [CacheGuardrailEvent] = []
        var window: [CacheRequest] = []
        window.reserveCapacity(settings.window)
        var (miniRequests, learnedMisses, shadowMisses, sampled) = (0, 0, 0, 0)
        var streak = 0, index = 0, onLearned = 0, onShadow = 0
        func sampledKey(_ id: UInt64) -> Bool { SplitMix64.mix(id &+ SplitMix64.gamma) % UInt64(settings.sampling) == 0 }
        while var r = try source.next() {
            if mode == .unit { r.size = 1 }
            let hit: Bool
            if fallback != nil { hit = fallback!.access(r) } else if classical != nil { hit = classical!.access(r) } else { hit = learned.access(r) }
            result.count(r, hit: hit)
            if sampledKey(r.id) {
                miniRequests += 1
                sampled += 1
                if !(classicalMini != nil ? classicalMini!.access(r) : learnedMini.access(r)) { learnedMisses += 1 }
                if !shadowMini.access(r) { shadowMisses += 1 }
            }
            window.append(r)
            guard window.count == settings.window else { continue }
            // The window is over: judge it on the miniatures.
            let (l, s) = miniRequests > 0 ? (Double(learnedMisses) / Double(miniRequests), Double(shadowMisses) / Double(miniRequests)) : (0, 0)
            if fallback == nil {
                onLearned += 1
                streak = l > s + settings.margin ? streak + 1 : 0
                if streak >= settings.patience {
                    streak = 0
                    var replacement = settings.shadow.make(capacity: capacity)
                    for w in window { _ = replacement.access(w) }
                    fallback = replacement
                    events.append(CacheGuardrailEvent(window: index, action: .fallback, learned: l, shadow: s))
                }
            } else {
                onShadow += 1
                streak = l <= s ? streak + 1 : 0
                if streak >= settings.restorePatience {
                    streak = 0
                    if let preferred {
                        var restored = preferred.make(capacity: capacity)
                        for w in window { _ = restored.access(w) }
                        classical = restored
                    } else {
                        learned = CacheModel(scorer: scorer, metadata: model.metadata).policy(capacity: capacity)
                        for w in window { _ = learned.access(w) }
                    }
                    fallback = nil
                    events.append(CacheGuardrailEvent(window: index, action: .restore, learned: l, shadow: s))
                }
            }
            if settings.onlineLearning {
                let before = scorer
                scorer = try update(scorer, window: window, model: model, capacity: capacity, mode: mode, maximum: settings.maximumUpdate, key: RandomKey(seed: 9).fold(in: UInt64(index)))
                let change = relativeChange(before, scorer)
                if change > 0 {
                    learned.scorer = scorer.compiled()
                    learnedMini.scorer = scorer.compiled()
                    events.append(CacheGuardrailEvent(window: index, action: .update, learned: l, shadow: s, update: change))
                }
            }
            (miniRequests, learnedMisses, shadowMisses) = (0, 0, 0)
            window.removeAll(keepingCapacity: true)
            index += 1
        }
        return GuardedCacheRun(result: result, events: events, windowsOnLearned: onLearned, windowsOnShadow: onShadow, sampledRequests: sampled,
                               deployed: preferred)
    }

    static func relativeChange(_ a: EvictionScorer, _ b: EvictionScorer) -> Double {
        BoundedUpdate.relativeChange(a.tensors.flatMap(\.doubles), b.tensors.flatMap(\.doubles))
    }

    /// One imitation step toward Belady on a finished window (next accesses within it), clipped to
    /// `maximum` of the scorer's norm.
    static func update(_ scorer: EvictionScorer, window: [CacheRequest], model: CacheModel, capacity: Int64, mode: SizeMode,
                       maximum: Double, key: RandomKey) throws -> EvictionScorer {
        var requests = window
        NextAccess.annotate(&requests)
        let k = model.metadata.candidates
        let (samples, _) = ImitationTraining.collect(requests, capacity: capacity, mode: mode, scorer: scorer,
                                                     normalization: model.metadata.normalization, candidates: k, key: key)
        guard !samples.isEmpty else { return scorer }
        let g = try gradient(at: scorer) { s in try ImitationTraining.loss(s, ArraySlice(samples), candidates: k) }
        guard let stepped = BoundedUpdate.step(scorer.tensors.flatMap(\.doubles), along: g.tensors.flatMap(\.doubles), maximum: maximum) else {
            return scorer
        }
        var offset = 0
        return try scorer.replacingTensors(with: scorer.tensors.map { t in
            defer { offset += t.elementCount }
            return try Tensor(Array(stepped[offset..<(offset + t.elementCount)]), shape: t.shape)
        })
    }
}
