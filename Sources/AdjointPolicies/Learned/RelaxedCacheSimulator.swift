import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import AdjointTraining
import Foundation

/// Training through a differentiable cache simulator over windows of the trace.
///
/// **The relaxed simulator.** The state is a residency `r ∈ [0, 1]ᴺ` over the objects a window
/// touches plus those resident when it starts (the LRU contents there). A request for object `j`
/// costs the soft miss `1 − r_j`, then brings `j` in (`r_j ← 1`). If the total residency now
/// exceeds the capacity `C` by `e`, residency is taken away in proportion to
/// `w_i ∝ r_i · exp(−f_θ(x_i)/τ)` over the other objects (`r_i ← max(0, r_i − e·w_i)`), so low
/// scores go first and, as the temperature τ → 0, exactly the lowest-scored resident object goes.
/// Features `x_i` come from the trace (recency, frequency, …), so only the scores depend on θ.
/// The window is differentiated with `unroll(_:from:parameters:steps:loss:schedule:options:inputs:)`
/// under a binomial schedule; τ anneals from round to round (`τ = 1 · 0.5^round`, at least 0.05).
///
/// **Straight-through** uses hard evictions in the same simulator (the argmax of `w`) with the
/// softmax's gradient. **Score function** samples each victim from `w` on hard residency and
/// weights `∇ log p(victims)` by the window's misses minus a moving-average baseline. Sizes count
/// as 1 (unit mode); byte-size caches train on the unit relaxation.
public enum RelaxedCacheSimulator {
    /// The relaxed step: state `r` [N], input [N, d + 1], output the soft miss; parameters the scorer.
    public typealias Step = TensorStep<Tensor, Tensor, EvictionScorer, Tensor>

    /// A window of the trace, ready to unroll.
    public struct Window {
        /// N: objects tracked (resident at the start, or requested in the window).
        public var tracked: Int
        /// `r[0]` [N].
        public var initial: Tensor
        /// Per step [N, d + 1]: normalised features, then the one-hot request.
        public var inputs: [Tensor]
    }

    static func temperature(round: Int) -> Double { Swift.max(0.05, Foundation.pow(0.5, Double(round))) }

    /// One round: `windowsPerRound` windows at positions drawn from `key`, one Adam step each.
    static func round(_ scorer: inout EvictionScorer, _ adam: inout Adam, requests: [CacheRequest], options: CacheTrainingOptions,
                      normalization: FeatureNormalization, round: Int, key: RandomKey) throws -> Double {
        let span = Swift.max(1, requests.count - options.window)
        var total = 0.0
        var baseline: Double?
        for w in 0..<options.windowsPerRound {
            let bits = key.bits(block: UInt64(w))
            let start = Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(span))
            let window = try self.window(requests, start: start, length: Swift.min(options.window, requests.count - start),
                                     capacity: options.capacity, normalization: normalization)
            let (value, gradient): (Double, EvictionScorer)
            switch options.method {
            case .relaxed, .straightThrough:
                let step = self.step(capacity: Double(options.capacity), temperature: temperature(round: round),
                                    straightThrough: options.method == .straightThrough)
                let result = try unroll(step, from: window.initial, parameters: scorer, inputs: window.inputs,
                                        loss: .perStep { _, miss in miss }, schedule: .binomial(snapshots: 16))
                (value, gradient) = (result.loss, result.parameterGradient)
            case .scoreFunction:
                (value, gradient) = try scoreFunction(scorer, window, capacity: Double(options.capacity), temperature: temperature(round: round),
                                                      baseline: baseline, key: key.fold(in: UInt64(w)))
                baseline = baseline.map { 0.8 * $0 + 0.2 * value } ?? value
            case .imitation:
                preconditionFailure("imitation is not trained through the relaxed simulator")
            }
            try adam.update(&scorer, along: gradient)
            total += value
        }
        return total / Double(options.windowsPerRound)
    }

    /// The relaxed (or straight-through: hard evictions forward, the softmax's gradient backward) step.
    public static func step(capacity: Double, temperature: Double, straightThrough: Bool = false) -> Step {
        Step { r, input, scorer in
            let n = input.shape[0], d = ObjectFeatures.count
            let x = try input.slice(starts: [0, 0], ends: [n, d]), request = try input.slice(starts: [0, d], ends: [n, d + 1]).reshaped([n])
            let miss = try 1 - (r * request).sum()
            let inserted = try r + (1 - r) * request
            let excess = try (inserted.sum() - capacity).relu()
            let others = try 1 - request
            // log w ∝ log r − s/τ over the other objects (the requested one cannot go).
            let logits = try (inserted * others + 1e-12).log() - scorer.scores(x) / temperature + (others - 1) * 1e9
            var weights = try logits.softmax(axis: 0)
            if straightThrough {
                let hard = try weights.untracked.argmax(axis: 0).oneHot(depth: n)
                weights = try hard + (weights - weights.untracked)
            }
            let next = try (inserted - excess * weights).relu()
            return (next, miss)
        }
    }

    /// REINFORCE over one window on hard residency.
    static func scoreFunction(_ scorer: EvictionScorer, _ window: Window, capacity: Double, temperature: Double, baseline: Double?,
                              key: RandomKey) throws -> (Double, EvictionScorer) {
        var misses = 0.0
        let g = try gradient(at: scorer) { s in
            var resident = window.initial.untracked.doubles.map { $0 > 0.5 }
            var logp = Tensor(0.0)
            var stream = RandomStream(key: key)
            for input in window.inputs {
                let n = input.shape[0], d = ObjectFeatures.count
                let request = try input.slice(starts: [0, d], ends: [n, d + 1]).reshaped([n]).doubles
                let j = request.firstIndex(of: 1)!
                if !resident[j] { misses += 1 }
                resident[j] = true
                guard Double(resident.filter { $0 }.count) > capacity else { continue }
                let mask = try Tensor((0..<n).map { resident[$0] && $0 != j ? 0.0 : -1e9 }, shape: [n])
                let logProbabilities = try (s.scores(input.slice(starts: [0, 0], ends: [n, d])).neg() / temperature + mask).logSoftmax(axis: 0)
                let u = try stream.uniform([]).item()
                var cumulative = 0.0, victim = 0
                let p = try logProbabilities.untracked.exp().doubles
                for (i, pi) in p.enumerated() { cumulative += pi; if u < cumulative { victim = i; break } }
                resident[victim] = false
                logp = try logp + logProbabilities.slice(starts: [victim], ends: [victim + 1]).sum()
            }
            let weight = misses - (baseline ?? misses)
            return try (logp - logp.untracked) * weight + misses
        }
        return (misses, g)
    }

    /// The tracked objects of the window at `start`, their residency there (the LRU contents),
    /// and each step's features and request.
    public static func window(_ requests: [CacheRequest], start: Int, length: Int, capacity: Int64,
                              normalization: FeatureNormalization) throws -> Window {
        var histories: [UInt64: ObjectHistory] = [:]
        for (i, r) in requests[..<start].enumerated() {
            if var h = histories[r.id] { h.record(at: Int64(i), size: r.size); histories[r.id] = h }
            else { histories[r.id] = ObjectHistory(at: Int64(i), size: r.size) }
        }
        var residentAtStart: [UInt64] = [], seen = Set<UInt64>()
        var i = start - 1
        while i >= 0, residentAtStart.count < Int(capacity) {
            if seen.insert(requests[i].id).inserted { residentAtStart.append(requests[i].id) }
            i -= 1
        }
        var ids = residentAtStart
        var slot = Dictionary(uniqueKeysWithValues: ids.enumerated().map { ($1, $0) })
        for r in requests[start..<(start + length)] where slot[r.id] == nil {
            slot[r.id] = ids.count
            ids.append(r.id)
        }
        let n = ids.count, d = ObjectFeatures.count
        var initial = [Double](repeating: 0, count: n)
        for k in 0..<residentAtStart.count { initial[k] = 1 }
        var inputs: [Tensor] = []
        var row = [Double](repeating: 0, count: n * (d + 1))
        for k in 0..<length {
            let now = Int64(start + k)
            let r = requests[start + k]
            if var h = histories[r.id] { h.record(at: now, size: r.size); histories[r.id] = h }
            else { histories[r.id] = ObjectHistory(at: now, size: r.size) }
            row.withUnsafeMutableBufferPointer { buffer in
                for (index, id) in ids.enumerated() {
                    let p = buffer.baseAddress! + index * (d + 1)
                    if let h = histories[id] {
                        ObjectFeatures.write(h, now: now, into: p)
                    } else {
                        for j in 0..<d { p[j] = 0 }
                    }
                    normalization.apply(p)
                    p[d] = id == r.id ? 1 : 0
                }
            }
            inputs.append(try Tensor(row, shape: [n, d + 1]))
        }
        return Window(tracked: n, initial: try Tensor(initial, shape: [n]), inputs: inputs)
    }
}
