import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import AdjointTraining
import Foundation

/// How the scheduler's scorer is trained (the knobs are always trained by SPSA on the hard
/// simulator).
public enum ServingTrainingMethod: String, CaseIterable, Sendable {
    /// Gradients of the mean latency through ``RelaxedServingSimulator`` (soft service order at an
    /// annealed temperature), unrolled with a binomial checkpoint schedule over windows.
    case relaxed
    /// Cross-entropy toward the clairvoyant oracle's admissions (shortest remaining work first,
    /// true output lengths) among the candidates it chose from.
    case imitation
    /// REINFORCE on the hard simulator: the policy samples admissions from `softmax(−s/τ)`, two
    /// rollouts per window, each one's mean latency less the pair's mean weights `∇log p`.
    case scoreFunction
}

public struct ServingTrainingOptions: Sendable {
    public var method: ServingTrainingMethod = .imitation
    public var rounds = 6
    public var seed: UInt64 = 7
    public var learningRate = 0.05
    /// Train the token budget and batch size (SPSA), starting from ``initialKnobs``.
    public var trainKnobs = true
    public var initialKnobs = ServingKnobs(tokenBudget: 2048, maxBatch: 256)
    /// SPSA steps on the knobs per round, and the first step's size in log₂ units (×0.7 a round).
    public var knobSteps = 3
    public var knobStepSize = 1.0
    /// Requests per window (relaxed) or rollout (score function), and windows per round.
    public var window = 48
    public var windowsPerRound = 4
    /// Candidates per admission (imitation, score function).
    public var candidates = 32
    /// The share of the training requests (their end) held back to choose the best round.
    public var validationFraction = 0.25

    public init() {}
}

/// Why a scheduler cannot be trained.
public enum ServingTrainingError: Error, Equatable, CustomStringConvertible {
    case invalidOptions(String)
    /// The checkpoint to resume from was made by another training.
    case checkpointMismatch(path: String, field: String, checkpoint: String, requested: String)

    public var description: String {
        switch self {
        case let .invalidOptions(detail): return "serve train: \(detail)"
        case let .checkpointMismatch(path, field, checkpoint, requested):
            return "\(path) was made by another training: its \(field) is \(checkpoint), this run's is \(requested); "
                + "use another checkpoint directory (or remove this one) to start afresh"
        }
    }
}

/// Trains a ``ServingPolicyModel`` in rounds: the scorer by the chosen method, the knobs by SPSA,
/// then the hard policy is run on the held-back validation requests and the best round so far is
/// kept. A checkpoint after each round lets an interrupted run resume where it stopped, bitwise
/// (each round depends only on the checkpointed state and the round's own random key).
public enum ServingTraining {
    /// - Parameters:
    ///   - trace: the training requests (already scaled to the training load).
    ///   - simulator: the server (cost model, KV capacity, SLO, guard).
    ///   - options: the method, rounds, knobs and windows.
    ///   - traceName: the trace's name, recorded in the model and checked on resume.
    ///   - load: the load the trace was scaled to, recorded and checked likewise.
    ///   - store: checkpoints (resumed from when it holds one); `nil` trains without.
    ///   - progress: after each round: the round, the total, and a line to show.
    public static func train(_ trace: [ServingRequest], simulator: ServingSimulator, options: ServingTrainingOptions, traceName: String,
                             load: Double, store: CheckpointStore? = nil,
                             progress: (Int, Int, String) -> Void = { _, _, _ in }) throws -> ServingPolicyModel {
        try checkOptions(options, requests: trace.count)
        let cut = trace.count - Swift.max(1, Int((Double(trace.count) * options.validationFraction).rounded()))
        let fit = Array(trace[..<cut]), validation = Array(trace[cut...])
        let key = RandomKey(seed: options.seed)
        var scorer = try ServingScorer.fcfs()
        var adam = try Adam(learningRate: .constant(options.learningRate))
        var knobs = (Foundation.log2(Double(options.initialKnobs.tokenBudget)), Foundation.log2(Double(options.initialKnobs.maxBatch)))
        func model(_ s: ServingScorer, _ k: (Double, Double), round: Int, best: Double?) -> ServingPolicyModel {
            ServingPolicyModel(scorer: s, metadata: .init(knobs: options.trainKnobs ? ServingKnobs.fromLog2(k.0, k.1) : options.initialKnobs,
                                                           method: options.method.rawValue, trace: traceName, model: simulator.cost.model.rawValue,
                                                           load: load, seed: options.seed, rounds: options.rounds, bestRound: round,
                                                           validationMeanLatency: best))
        }
        func validate(_ m: ServingPolicyModel) throws -> Double { try simulator.run(validation, policy: .learned(m)).endToEnd.mean }
        var best = (scorer: scorer, knobs: knobs, round: 0, latency: try validate(model(scorer, knobs, round: 0, best: nil)))
        var first = 0
        let identity = trainingIdentity(trace, simulator: simulator, options: options, traceName: traceName, load: load)
        if let store, let loaded = try store.latest() {
            let meta = loaded.checkpoint.manifest.metadata
            for (field, value) in identity.sorted(by: { $0.key < $1.key }) {
                let stored = meta[field] ?? "(not recorded)"
                guard stored == value else {
                    throw ServingTrainingError.checkpointMismatch(path: loaded.path, field: field, checkpoint: stored, requested: value)
                }
            }
            try loaded.checkpoint.restore(model: &scorer, optimizer: &adam)
            let extra = loaded.checkpoint.tensors(under: "extra")
            guard let k = extra["knobs"]?.doubles, k.count == 2, let bw = extra["bestWeights"]?.doubles, let bk = extra["bestKnobs"]?.doubles,
                  bk.count == 2, let round = Int(meta["round"] ?? ""), let bestRound = Int(meta["bestRound"] ?? ""),
                  let latency = extra["bestLatency"]?.doubles.first else {
                throw ServingTrainingError.checkpointMismatch(path: loaded.path, field: "training state", checkpoint: "incomplete", requested: "knobs, best round")
            }
            knobs = (k[0], k[1])
            best = (try ServingScorer(weights: bw), (bk[0], bk[1]), bestRound, latency)
            first = round
            progress(first, options.rounds, "resumed after round \(first) (\(loaded.path))")
        } else {
            progress(0, options.rounds, String(format: "round 0: the initial policy (FCFS order, %@): validation mean latency %.3f s",
                                               model(scorer, knobs, round: 0, best: nil).knobs.description, best.latency))
        }
        for round in first..<options.rounds {
            let roundKey = key.fold(in: 100 + UInt64(round))
            let temperature = Swift.max(0.05, Foundation.pow(0.5, Double(round)))
            let current = model(scorer, knobs, round: round, best: nil)
            let objective: Double
            switch options.method {
            case .relaxed:
                objective = try relaxedRound(&scorer, &adam, fit, simulator: simulator, knobs: current.knobs, options: options,
                                             temperature: temperature, key: roundKey)
            case .imitation:
                objective = try imitationRound(&scorer, &adam, fit, simulator: simulator, model: current, options: options)
            case .scoreFunction:
                objective = try scoreFunctionRound(&scorer, &adam, fit, simulator: simulator, model: current, options: options,
                                                   temperature: temperature, key: roundKey)
            }
            if options.trainKnobs {
                knobs = try knobRound(scorer, knobs, fit, simulator: simulator, options: options, round: round, key: roundKey.fold(in: 9))
            }
            let trained = model(scorer, knobs, round: round + 1, best: nil)
            let latency = try validate(trained)
            if latency < best.latency { best = (scorer, knobs, round + 1, latency) }
            if let store {
                let extra = ["knobs": try Tensor([knobs.0, knobs.1], shape: [2]), "bestWeights": best.scorer.w,
                             "bestKnobs": try Tensor([best.knobs.0, best.knobs.1], shape: [2]), "bestLatency": try Tensor([best.latency], shape: [1])]
                _ = try store.save(Checkpoint(model: scorer, optimizer: adam, extra: extra,
                                              metadata: identity.merging(["round": "\(round + 1)", "bestRound": "\(best.round)"]) { a, _ in a }))
            }
            progress(round + 1, options.rounds, String(
                format: "round %d: %@ objective %.4f; %@; weights %@; validation mean latency %.3f s (best: round %d)",
                round + 1, options.method.rawValue, objective, trained.knobs.description,
                scorer.weights.map { String(format: "%.3f", $0) }.joined(separator: " "), latency, best.round))
        }
        return model(best.scorer, best.knobs, round: best.round, best: best.latency)
    }

    static func checkOptions(_ options: ServingTrainingOptions, requests: Int) throws {
        func check(_ ok: Bool, _ detail: String) throws { if !ok { throw ServingTrainingError.invalidOptions(detail) } }
        try check((1 ... 10_000).contains(options.rounds), "rounds \(options.rounds) outside 1 ... 10000")
        try check(options.learningRate.isFinite && options.learningRate > 0 && options.learningRate <= 10, "learning rate \(options.learningRate) outside (0, 10]")
        try check((2 ... 4096).contains(options.window), "window \(options.window) outside 2 ... 4096 requests")
        try check((1 ... 1024).contains(options.windowsPerRound), "windows per round \(options.windowsPerRound) outside 1 ... 1024")
        try check((2 ... 1024).contains(options.candidates), "candidates \(options.candidates) outside 2 ... 1024")
        try check((0 ... 100).contains(options.knobSteps), "knob steps \(options.knobSteps) outside 0 ... 100")
        try check(options.knobStepSize.isFinite && options.knobStepSize > 0 && options.knobStepSize <= 8, "knob step \(options.knobStepSize) outside (0, 8]")
        try check(options.validationFraction > 0 && options.validationFraction < 1, "validation fraction \(options.validationFraction) outside (0, 1)")
        try check(ServingKnobs.tokenBudgetRange.contains(options.initialKnobs.tokenBudget) && ServingKnobs.maxBatchRange.contains(options.initialKnobs.maxBatch),
                  "initial knobs \(options.initialKnobs) outside \(ServingKnobs.tokenBudgetRange) and \(ServingKnobs.maxBatchRange)")
        try check(requests >= 8, "\(requests) requests; training needs at least 8 (a fit part and a validation part)")
    }

    /// What a checkpoint must match to be resumed.
    static func trainingIdentity(_ trace: [ServingRequest], simulator: ServingSimulator, options: ServingTrainingOptions,
                                 traceName: String, load: Double) -> [String: String] {
        var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325
        for r in trace {
            for word in [r.arrival.bitPattern, UInt64(r.promptTokens), UInt64(r.outputTokens), UInt64(r.tenant)] {
                fingerprint = (fingerprint ^ word) &* 0x0000_0100_0000_01B3
            }
        }
        let c = simulator.configuration
        return ["trace": traceName, "requests": "\(trace.count)", "workloadFingerprint": String(fingerprint, radix: 16), "load": "\(load)",
                "model": simulator.cost.model.rawValue, "method": options.method.rawValue, "seed": "\(options.seed)",
                "server": "kv=\(c.kvBlocks.map(String.init) ?? "gpu"),prefix=\(c.prefixCacheBlocks),slo=\(c.slo),maxWait=\(c.guardSettings.maxWait)",
                "options": "lr=\(options.learningRate),knobs=\(options.trainKnobs):\(options.initialKnobs.tokenBudget)/\(options.initialKnobs.maxBatch)"
                    + ",steps=\(options.knobSteps)x\(options.knobStepSize),window=\(options.window)x\(options.windowsPerRound),k=\(options.candidates)"
                    + ",validation=\(options.validationFraction)"]
    }

    /// A random start for a window of `length` in `count` requests.
    static func start(_ key: RandomKey, block: UInt64, count: Int, length: Int) -> Int {
        let bits = key.bits(block: block)
        return Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(Swift.max(1, count - length + 1)))
    }

    static func relaxedRound(_ scorer: inout ServingScorer, _ adam: inout Adam, _ fit: [ServingRequest], simulator: ServingSimulator,
                             knobs: ServingKnobs, options: ServingTrainingOptions, temperature: Double, key: RandomKey) throws -> Double {
        var total = 0.0
        for w in 0..<options.windowsPerRound {
            let from = start(key, block: UInt64(w), count: fit.count, length: options.window)
            let window = try RelaxedServingSimulator.window(fit, start: from, count: options.window, cost: simulator.cost, knobs: knobs)
            let (value, gradient) = try RelaxedServingSimulator.valueWithGradient(scorer, window: window, knobs: knobs, temperature: temperature)
            try adam.update(&scorer, along: gradient)
            total += value
        }
        return total / Double(options.windowsPerRound)
    }

    /// Admissions seen in a run: each one's candidates (features, row-major), and the chosen one.
    struct Decisions {
        var features: [Double] = [], counts: [Int] = [], chosen: [Int] = []

        /// `Σ log softmax(−s/τ)[chosen]` over the decisions (a differentiable scalar), padding each
        /// decision to the widest with masked candidates.
        func logLikelihood(_ scorer: ServingScorer, temperature: Double) throws -> Tensor {
            let d = ServingFeatures.count, width = counts.max() ?? 1, m = counts.count
            var x = [Double](repeating: 0, count: m * width * d), mask = [Double](repeating: -1e9, count: m * width)
            var pick = [Double](repeating: 0, count: m * width)
            var offset = 0
            for (k, count) in counts.enumerated() {
                for c in 0..<count {
                    for j in 0..<d { x[(k * width + c) * d + j] = features[(offset + c) * d + j] }
                    mask[k * width + c] = 0
                }
                pick[k * width + chosen[k]] = 1
                offset += count
            }
            let scores = try scorer.scores(try Tensor(x, shape: [m * width, d])).reshaped([m, width])
            let logp = try (scores / -temperature + Tensor(mask, shape: [m, width])).logSoftmax(axis: 1)
            return try (logp * Tensor(pick, shape: [m, width])).sum()
        }
    }

    static func record(_ trace: [ServingRequest], simulator: ServingSimulator, policy: SchedulingPolicy, candidates: Int,
                       sampling: (temperature: Double, key: RandomKey)? = nil) throws -> (Decisions, ServingReport) {
        var decisions = Decisions()
        var hooks = ServingHooks()
        hooks.candidates = candidates
        hooks.sampling = sampling
        hooks.observe = { features, count, chosen in
            guard count > 1 else { return }
            decisions.features += features
            decisions.counts.append(count)
            decisions.chosen.append(chosen)
        }
        let report = try simulator.run(trace, policy: policy, hooks: hooks)
        return (decisions, report)
    }

    static func imitationRound(_ scorer: inout ServingScorer, _ adam: inout Adam, _ fit: [ServingRequest], simulator: ServingSimulator,
                               model: ServingPolicyModel, options: ServingTrainingOptions) throws -> Double {
        // The oracle's admissions at the policy's knobs (its batching, the oracle's order).
        let server = try ServingSimulator(cost: simulator.cost, configuration: {
            var c = simulator.configuration
            (c.tokenBudget, c.maxBatch) = (model.knobs.tokenBudget, model.knobs.maxBatch)
            return c
        }())
        let (decisions, _) = try record(fit, simulator: server, policy: .clairvoyant, candidates: options.candidates)
        guard !decisions.counts.isEmpty else { return 0 }
        var loss = 0.0
        for _ in 0..<20 {
            let (value, gradient) = try valueWithGradient(at: scorer) { s in
                try decisions.logLikelihood(s, temperature: 1).neg() / Double(decisions.counts.count)
            }
            try adam.update(&scorer, along: gradient)
            loss = try value.untracked.item()
        }
        return loss
    }

    static func scoreFunctionRound(_ scorer: inout ServingScorer, _ adam: inout Adam, _ fit: [ServingRequest], simulator: ServingSimulator,
                                   model: ServingPolicyModel, options: ServingTrainingOptions, temperature: Double, key: RandomKey) throws -> Double {
        let length = Swift.min(fit.count, options.window * 8)
        var total = 0.0
        for w in 0..<options.windowsPerRound {
            let from = start(key, block: UInt64(w), count: fit.count, length: length)
            let slice = Array(fit[from..<(from + length)])
            let rollouts = try (0..<2).map { r in
                try record(slice, simulator: simulator, policy: .learned(model), candidates: options.candidates,
                           sampling: (temperature, key.fold(in: 1000 + UInt64(w) * 2 + UInt64(r))))
            }
            let costs = rollouts.map { $0.1.endToEnd.mean }
            let mean = costs.reduce(0, +) / 2
            total += mean
            let gradient = try gradient(at: scorer) { s in
                var objective = Tensor(0.0)
                for (r, rollout) in rollouts.enumerated() where !rollout.0.counts.isEmpty {
                    objective = try objective + rollout.0.logLikelihood(s, temperature: temperature) * ((costs[r] - mean) / 2)
                }
                return objective
            }
            try adam.update(&scorer, along: gradient)
        }
        return total / Double(options.windowsPerRound)
    }

    /// `knobSteps` sign-SPSA steps on (log₂ budget, log₂ batch): each compares the fit part's mean
    /// latency at `k ± cΔ` (common trace, Δ = ±1 per knob) and moves `η·sign(ĝ)`.
    static func knobRound(_ scorer: ServingScorer, _ knobs: (Double, Double), _ fit: [ServingRequest], simulator: ServingSimulator,
                          options: ServingTrainingOptions, round: Int, key: RandomKey) throws -> (Double, Double) {
        var k = knobs
        let step = options.knobStepSize * Foundation.pow(0.7, Double(round))
        var stream = RandomStream(key: key)
        for _ in 0..<options.knobSteps {
            let theta = try Tensor([k.0, k.1], shape: [2])
            let g = try SPSA.gradient(of: { t in
                let v = t.doubles
                let m = ServingPolicyModel(scorer: scorer, metadata: .init(knobs: .fromLog2(v[0], v[1]), method: "", trace: "", model: "", load: 1,
                                                                           seed: 0, rounds: 0, bestRound: 0, validationMeanLatency: nil))
                return try simulator.run(fit, policy: .learned(m)).endToEnd.mean
            }, at: theta, perturbation: step, samples: 1, stream: &stream).doubles
            func move(_ v: Double, _ gi: Double, _ range: ClosedRange<Int>) -> Double {
                let next = gi == 0 ? v : v - step * (gi > 0 ? 1 : -1)
                return Swift.min(Foundation.log2(Double(range.upperBound)), Swift.max(Foundation.log2(Double(range.lowerBound)), next))
            }
            k = (move(k.0, g[0], ServingKnobs.tokenBudgetRange), move(k.1, g[1], ServingKnobs.maxBatchRange))
        }
        return k
    }
}
