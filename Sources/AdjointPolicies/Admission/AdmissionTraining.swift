import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import AdjointTraining
import Foundation

/// Training the learned admission gate in front of an eviction policy.
///
/// **Labels.** A missed object is worth admitting when its next request comes while an LRU cache
/// of the same size would still hold it: when the objects (bytes) requested between the two
/// requests, counted once each, fit beside it. ``reuseLabels(_:capacity:mode:)`` computes that for
/// every request in one pass (a Fenwick tree over the last request of each object).
///
/// **Rounds.** Round 1 collects the features of every miss with everything admitted; round 2
/// collects them again behind the gate of round 1 (the misses the gate itself causes). Each round
/// fits a logistic regression (binary cross-entropy, Adam, gradients by `valueWithGradient(at:of:)`).
///
/// **Selection.** The decision threshold is chosen on the held-back validation slice among
/// quantiles of the training misses' scores (keep out the lowest 0.5 %, 1 %, … 90 %, and the
/// share the labels call not worth admitting), and the gate is kept only if it lowers the validation miss ratio below the
/// eviction policy's own — so a trained model never admits worse than admitting everything, on
/// the slice it was checked on.
public enum AdmissionTraining {
    /// How the gate's scorer learns in each round.
    public enum Method: String, CaseIterable, Sendable {
        /// Logistic regression toward the reuse labels of the round's misses.
        case labels
        /// Gradients of the misses of windows of the relaxed simulator with a soft admission
        /// decision (``RelaxedCacheSimulator/admissionStep(capacity:temperature:eviction:)``).
        case relaxed
    }

    public struct Options: Sendable {
        public var capacity: Int64
        public var mode: SizeMode = .unit
        public var method = Method.labels
        /// Relaxed: requests per window and windows (Adam steps) per round.
        public var window = 400
        public var windowsPerRound = 6
        public var rounds = 2
        public var epochs = 4
        public var learningRate = 0.05
        /// Misses kept per round at most (evenly spaced).
        public var maximumSamples = 200_000
        /// Shares of the training misses to keep out tried on the validation slice (each sets the
        /// decision threshold at that quantile of the last round's scores).
        /// The share of misses not worth admitting (by the labels) is tried too.
        public var refusals: [Double] = [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9]
        public var seed: UInt64 = 11
        /// The gate is kept only if it lowers the validation miss ratio by more than this.
        public var margin = 0.0

        public init(capacity: Int64) { self.capacity = capacity }
    }

    /// Whether each request's object, if admitted now, would be requested again before an LRU
    /// cache of `capacity` would have evicted it (false when it is not requested again).
    public static func reuseLabels(_ requests: [CacheRequest], capacity: Int64, mode: SizeMode) -> [Bool] {
        let n = requests.count
        var tree = [Int64](repeating: 0, count: n + 1)   // Fenwick tree of sizes at last requests
        func add(_ i: Int, _ v: Int64) { var k = i + 1; while k <= n { tree[k] += v; k += k & -k } }
        func prefix(_ i: Int) -> Int64 { var s: Int64 = 0, k = i; while k > 0 { s += tree[k]; k -= k & -k }; return s }   // [0, i)
        var last: [UInt64: Int] = [:]
        last.reserveCapacity(n / 4)
        var labels = [Bool](repeating: false, count: n)
        for (j, r) in requests.enumerated() {
            let size = mode == .unit ? 1 : r.size
            if let p = last[r.id] {
                let between = prefix(j) - prefix(p + 1)
                labels[p] = between <= capacity - size
                add(p, -(mode == .unit ? 1 : requests[p].size))
            }
            add(j, size)
            last[r.id] = j
        }
        return labels
    }

    /// Trains a gate for the eviction policies `base()` makes; nil when no gate beats admitting
    /// everything on `validation`. `progress` receives a line per round and per threshold.
    /// `eviction` is the scorer (and its normalisation) the relaxed method's simulator evicts by;
    /// by default the initial, LRU-like one.
    public static func train<P: CachePolicy>(fit: [CacheRequest], validation: [CacheRequest], options: Options,
                                            base: () -> P, eviction: (EvictionScorer, FeatureNormalization)? = nil,
                                            progress: (String) -> Void = { _ in }) throws -> AdmissionModel? {
        let labels = reuseLabels(fit, capacity: options.capacity, mode: options.mode)
        let meanSize = options.mode == .unit ? 1 : Swift.max(1, fit.reduce(0.0) { $0 + Double($1.size) } / Double(Swift.max(1, fit.count)))
        let key = RandomKey(seed: options.seed)
        var scorer = try AdmissionScorer()
        var model = AdmissionModel(scorer: scorer, metadata: .init(mean: [0, 0, 0], std: [1, 1, 1], meanSize: meanSize, threshold: 0,
                                                                 validationMissRatio: .nan, ungatedValidationMissRatio: .nan))
        func unit(_ r: CacheRequest) -> CacheRequest { var r = r; if options.mode == .unit { r.size = 1 }; return r }
        func simulate<G: AdmissionGate>(_ requests: [CacheRequest], gate: G) -> Double {
            var policy = GatedPolicy(base(), gate: gate)
            var misses = 0
            for r in requests where !policy.access(unit(r)) { misses += 1 }
            return Double(misses) / Double(Swift.max(1, requests.count))
        }
        var adam = try Adam(learningRate: .constant(options.learningRate))
        var scores: [Double] = [], notWorth = 0.0
        for round in 0..<options.rounds {
            // Features and labels of every miss behind the current gate (round 1: admits all).
            var gate = model.gate(capacity: options.capacity, mode: options.mode)
            var policy = base()
            var rows: [Double] = [], targets: [Double] = []
            for (i, r) in fit.enumerated() {
                let request = unit(r), x = gate.features(request)
                let hit = policy.access(request, admitting: gate.admits(request))
                if !hit { rows += [x.0, x.1, x.2]; targets.append(labels[i] ? 1 : 0) }
                gate.record(request, hit: hit)
            }
            guard !targets.isEmpty else { progress("admission: no miss to learn from"); return nil }
            let stride = Swift.max(1, (targets.count + options.maximumSamples - 1) / options.maximumSamples)
            let kept = Swift.stride(from: 0, to: targets.count, by: stride).map { $0 }
            let d = AdmissionFeatures.count
            var x = kept.flatMap { i in (0..<d).map { rows[i * d + $0] } }
            let y = kept.map { targets[$0] }
            if round == 0 {
                // Normalisation from the first round's misses, kept for the model's life.
                let fitted = FeatureNormalization.fit(x, features: d)
                (model.metadata.mean, model.metadata.std) = (fitted.mean, fitted.std)
                scorer.b = try Tensor([0.0], shape: [1])
            }
            for i in 0..<y.count { for j in 0..<d { x[i * d + j] = (x[i * d + j] - model.metadata.mean[j]) / model.metadata.std[j] } }
            var loss = 0.0
            if options.method == .relaxed {
                let (evictionScorer, normalization) = try eviction ?? (EvictionScorer(), .identity)
                let span = Swift.max(1, fit.count - options.window)
                let step = RelaxedCacheSimulator.admissionStep(capacity: Double(options.mode == .unit ? options.capacity : Int64(Double(options.capacity) / meanSize)),
                                                               temperature: RelaxedCacheSimulator.temperature(round: round), eviction: evictionScorer)
                for w in 0..<options.windowsPerRound {
                    let bits = key.fold(in: 1000 + UInt64(round)).bits(block: UInt64(w))
                    let start = Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(span))
                    var current = model
                    current.scorer = scorer
                    let window = try RelaxedCacheSimulator.admissionWindow(fit, start: start, length: Swift.min(options.window, fit.count - start),
                                                                           capacity: options.capacity, mode: options.mode, normalization: normalization, gate: current)
                    let result = try unroll(step, from: window.initial, parameters: scorer, inputs: window.inputs,
                                            loss: .perStep { _, miss in miss }, schedule: .binomial(snapshots: 16))
                    try adam.update(&scorer, along: result.parameterGradient)
                    loss += result.loss / Double(options.windowsPerRound)
                }
            }
            var batches = try ShuffledBatches(count: y.count, batchSize: Swift.min(256, y.count), key: key.fold(in: UInt64(round)))
            for _ in 0..<(options.method == .labels ? options.epochs : 0) {
                loss = 0
                for _ in 0..<batches.batchesPerEpoch {
                    let batch = try batches.next().doubles.map { Int($0) }
                    let bx = try Tensor(batch.flatMap { i in (0..<d).map { x[i * d + $0] } }, shape: [batch.count, d])
                    let by = try Tensor(batch.map { y[$0] }, shape: [batch.count])
                    let (value, gradient) = try valueWithGradient(at: scorer) { s in
                        let z = try s.scores(bx)
                        return try (z.softplus() - by * z).mean()   // binary cross-entropy with logits
                    }
                    try adam.update(&scorer, along: gradient)
                    loss += try value.item()
                }
                loss /= Double(batches.batchesPerEpoch)
            }
            model.scorer = scorer
            scores = try scorer.scores(Tensor(x, shape: [y.count, d])).doubles.sorted()
            let positives = y.reduce(0, +)
            notWorth = 1 - positives / Double(y.count)
            progress(String(format: "admission round %d: %d misses (%.1f%% worth admitting), %@ %.4f", round + 1, targets.count,
                            100 * positives / Double(y.count), options.method == .labels ? "cross-entropy" : "relaxed misses per window", loss))
        }
        // The threshold on the validation slice; no gate unless one beats admitting everything.
        var ungated = base()
        var ungatedMisses = 0
        for r in validation where !ungated.access(unit(r)) { ungatedMisses += 1 }
        let ungatedRatio = Double(ungatedMisses) / Double(Swift.max(1, validation.count))
        var best: (shift: Double, missRatio: Double)?
        var tried = Set<Double>()
        for share in (options.refusals + [notWorth]).sorted() where !scores.isEmpty {
            // Refuse at least the `share` of the last round's misses that score lowest: the
            // threshold halfway between the score at that quantile and the next higher score (ties,
            // e.g. every never-seen object, fall on one side together).
            let q = Swift.min(scores.count - 1, Int(share * Double(scores.count)))
            guard let above = scores[q...].first(where: { $0 > scores[q] }) else { continue }
            let shift = -(scores[q] + above) / 2
            guard tried.insert(shift).inserted else { continue }
            var shifted = model
            shifted.scorer.b = try Tensor([model.scorer.b.doubles[0] + shift], shape: [1])
            let ratio = simulate(validation, gate: shifted.gate(capacity: options.capacity, mode: options.mode))
            let refused = Double(scores.prefix { $0 + shift < 0 }.count) / Double(scores.count)
            progress(String(format: "admission keeping out %.1f%% of the training misses (threshold %+.3f): validation miss ratio %.4f (admitting everything %.4f)",
                            100 * refused, shift, ratio, ungatedRatio))
            if ratio < best?.missRatio ?? .infinity { best = (shift, ratio) }
        }
        guard let best, best.missRatio < ungatedRatio - options.margin else {
            progress(String(format: "admission: no threshold beats admitting everything (%.4f) by more than %.4f on the validation slice; no gate kept", ungatedRatio, options.margin))
            return nil
        }
        model.scorer.b = try Tensor([model.scorer.b.doubles[0] + best.shift], shape: [1])
        (model.metadata.threshold, model.metadata.validationMissRatio, model.metadata.ungatedValidationMissRatio) = (best.shift, best.missRatio, ungatedRatio)
        progress(String(format: "admission: gate kept (threshold %+.3f): validation miss ratio %.4f against %.4f admitting everything",
                        best.shift, best.missRatio, ungatedRatio))
        return model
    }
}
