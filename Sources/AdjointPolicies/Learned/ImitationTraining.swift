import AdjointAutodiff
import AdjointTensor
import AdjointTraining
import Foundation

/// One eviction seen in a simulation: the candidates' normalised features and which of them
/// Belady would evict (those whose next request is farthest; several when none returns).
public struct EvictionSample: Sendable {
    public var features: [Double]     // candidates × ObjectFeatures.count
    public var optimal: [Bool]
}

/// Training the scorer by imitating Belady's decisions (DAgger-style: samples are collected on the
/// learned policy's own trajectory, relabelled with the optimum, and aggregated over rounds).
public enum ImitationTraining {
    /// Runs the learned policy over `requests` (which must carry next accesses) and records every
    /// eviction with its full candidate set and Belady's choice among the candidates.
    /// With `every` > 1, one eviction in `every` is recorded (bounding the samples' memory).
    public static func collect(_ requests: [CacheRequest], capacity: Int64, mode: SizeMode, scorer: EvictionScorer,
                               normalization: FeatureNormalization, candidates: Int, key: RandomKey,
                               every: Int = 1) -> (samples: [EvictionSample], result: SimulationResult) {
        final class Box { var next: [UInt64: Int64] = [:]; var samples: [EvictionSample] = []; var evictions = 0 }
        let box = Box()
        var policy = LearnedPolicy(capacity: capacity, scorer: scorer, normalization: normalization, candidates: candidates, key: key)
        policy.observer = { ids, features, _ in
            box.evictions += 1
            guard ids.count == candidates, box.evictions % Swift.max(1, every) == 0 else { return }
            let nexts = ids.map { box.next[$0] ?? .max }
            let farthest = nexts.max()!
            box.samples.append(EvictionSample(features: features, optimal: nexts.map { $0 == farthest }))
        }
        var result = SimulationResult(policy: policy.name, capacity: capacity, mode: mode)
        for var r in requests {
            if mode == .unit { r.size = 1 }
            box.next[r.id] = r.nextAccess
            result.count(r, hit: policy.access(r))
        }
        return (box.samples, result)
    }

    /// The mean negative log-probability that a softmax over −score puts on Belady's choices.
    public static func loss(_ scorer: EvictionScorer, _ batch: ArraySlice<EvictionSample>, candidates k: Int) throws -> Tensor {
        let d = ObjectFeatures.count
        let x = try Tensor(batch.flatMap(\.features), shape: [batch.count * k, d])
        let mask = try Tensor(batch.flatMap { $0.optimal.map { $0 ? 0.0 : -1e9 } }, shape: [batch.count, k])
        let logp = try scorer.scores(x).reshaped([batch.count, k]).neg().logSoftmax(axis: 1)
        return try (logp + mask).logsumexp(axes: [1]).mean().neg()
    }
}
