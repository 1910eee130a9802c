import AdjointAutodiff
import AdjointTensor
import AdjointTraining
import Foundation

/// How the learned policy's scorer is trained.
public enum CacheTrainingMethod: String, CaseIterable, Sendable {
    /// Cross-entropy toward Belady's choice among the sampled candidates, on the policy's own
    /// trajectory (DAgger).
    case imitation
    /// Gradients through a relaxed simulator (soft residency, softmax eviction at a temperature
    /// that anneals), unrolled with checkpointing over windows of the trace.
    case relaxed
    /// Hard evictions in the forward pass, the softmax's gradient in the backward pass.
    case straightThrough
    /// REINFORCE over sampled evictions, cost = misses in the window, moving-average baseline.
    case scoreFunction
}

public struct CacheTrainingOptions: Sendable {
    public var method: CacheTrainingMethod = .imitation
    public var capacity: Int64
    public var mode: SizeMode = .unit
    public var hidden = 0
    /// Objects scored per eviction (see ``LearnedPolicy``).
    public var candidates = CacheTrainingOptions.defaultCandidates
    /// 16: half carried over, half sampled; the cost of an eviction grows with it.
    public static let defaultCandidates = 16
    /// More cache sizes to learn from (imitation: every round collects evictions at each of them
    /// too) and to select rounds by (the validation figure becomes the mean miss ratio over
    /// `capacity` and these). Empty: the model learns at `capacity` alone.
    public var extraCapacities: [Int64] = []
    /// Imitation: the most evictions recorded per round over all sizes (one eviction in k is kept
    /// when more could happen): bounds the samples' memory (about 0.9 KB each with 16 candidates).
    public var maximumSamples = 400_000
    /// `capacity` and the extra capacities, each once.
    public var capacities: [Int64] { [capacity] + extraCapacities.filter { $0 != capacity }.reduce(into: [Int64]()) { if !$0.contains($1) { $0.append($1) } } }
    public var rounds = 4
    public var epochs = 3
    public var learningRate = 0.02
    public var seed: UInt64 = 7
    /// Windows (relaxed, straight-through, score function): requests per window, objects tracked.
    public var window = 400
    public var windowsPerRound = 6
    /// The share of the training requests (their end) held back: after each round the hard policy
    /// runs on it, and the round with the lowest miss ratio is the one kept.
    public var validationFraction = 0.2
    /// Stop after this many rounds without a better validation miss ratio.
    public var patience = 2
    /// Train admission with the kept eviction scorer: try its bypass (a missed object scoring
    /// below every candidate is not admitted) and a gate in front of it (``AdmissionTraining``);
    /// the model keeps each only if it lowers the validation miss ratio.
    public var admission = true
    /// How the admission gate learns (reuse labels, or the relaxed simulator's soft admission).
    public var admissionMethod = AdmissionTraining.Method.labels
    /// How much lower (absolute miss ratio) the validation slice must be for bypass or a gate to be
    /// kept: less is within the noise of one slice.
    public var admissionMargin = 0.001

    /// Data-parallel training over trace shards (imitation only): see ``CacheTrainingParallelism``.
    public var parallelism: CacheTrainingParallelism?

    public init(capacity: Int64) { self.capacity = capacity }
}

/// How the processes of a data-parallel job share imitation training (AdjointDistributed builds
/// one from a communicator; every rank passes the same workload and options).
///
/// Each rank runs the policy and records Belady's choices on its own contiguous shard of the
/// fitting slice (the expensive part: a simulation of every request), then every optimizer step
/// sums the ranks' minibatch gradients, weighted by their sizes, through ``sum``, so every rank
/// takes the same step. Normalization, validation, round selection and admission are computed on
/// every rank from the whole workload, with the same result; only rank 0 writes checkpoints.
public struct CacheTrainingParallelism: Sendable {
    public let rank: Int
    public let size: Int
    /// The elementwise sum over the ranks of each tensor (same shapes on every rank), bitwise the
    /// same on every rank.
    public let sum: @Sendable ([Tensor]) throws -> [Tensor]

    public init(rank: Int, size: Int, sum: @escaping @Sendable ([Tensor]) throws -> [Tensor]) {
        (self.rank, self.size, self.sum) = (rank, size, sum)
    }

    /// This rank's contiguous share of `requests`.
    func shard(_ requests: [CacheRequest]) -> [CacheRequest] {
        Array(requests[(rank * requests.count / size)..<((rank + 1) * requests.count / size)])
    }
}

/// Why a learned policy cannot be trained on a workload.
public enum CacheTrainingError: Error, Equatable, CustomStringConvertible {
    /// The workload at this cache size never evicts, so there is no decision to learn from.
    case noEvictions(requests: Int, capacity: Int64, mode: SizeMode)
    /// The checkpoint to resume from was made by another training (another workload, cache size,
    /// method, model shape or seed).
    case checkpointMismatch(path: String, field: String, checkpoint: String, requested: String)
    /// Options that cannot train (a validation share outside (0, 1), a patience outside 1 … 1000).
    case invalidOptions(String)

    public var description: String {
        switch self {
        case let .invalidOptions(detail): return "cache training: \(detail)"
        case let .noEvictions(requests, capacity, mode):
            return "training sees no eviction: \(requests) requests never fill a cache of \(capacity) \(mode == .unit ? "objects" : "bytes")"
                + " (the workload's footprint fits); choose a smaller cache size or a longer trace"
        case let .checkpointMismatch(path, field, checkpoint, requested):
            return "\(path) was made by another training: its \(field) is \(checkpoint), this run's is \(requested); "
                + "use another checkpoint directory (or remove this one) to start afresh"
        }
    }
}

/// Trains a ``CacheModel`` on a workload, in rounds, checkpointing after each so an interrupted
/// run resumes where it stopped (bitwise: each round depends only on the checkpointed state).
///
/// The last ``CacheTrainingOptions/validationFraction`` of the requests is held back: rounds learn
/// on the rest, and after each the hard policy runs on the held-back slice beside LRU. The model
/// returned is the round with the lowest validation miss ratio (the initial scorer counts as round
/// 0), and training stops early after ``CacheTrainingOptions/patience`` rounds without improvement —
/// so a round that makes things worse is reported, not kept.
public enum CacheTraining {
    /// The classical policies a model may fall back to at a size where one beats it on the
    /// validation slice (every online policy but LRB, which retrains as it runs and on a
    /// validation slice shorter than its first batch is LRU).
    public static let fallbackKinds = PolicyKind.allCases.filter { $0 != .belady && $0 != .lrb }

    /// - Parameters:
    ///   - requests: the training workload, with next accesses (``NextAccess/annotate(_:)``).
    ///   - options: cache size, size mode, rounds, epochs, estimator and the scorer's shape.
    ///   - traceName: the workload's name, recorded in the model and checked on resume.
    ///   - store: checkpoints (resumed from when it holds one); `nil` trains without.
    ///   - progress: after each round: the round, the total, and a line to show.
    /// - Throws: ``CacheTrainingError/noEvictions(requests:capacity:mode:)`` when the workload never
    ///   evicts at `options.capacity`; errors of the checkpoint store and of training.
    public static func train(_ requests: [CacheRequest], options: CacheTrainingOptions, traceName: String,
                             store: CheckpointStore? = nil, progress: (Int, Int, String) -> Void = { _, _, _ in }) throws -> CacheModel {
        guard options.validationFraction > 0, options.validationFraction < 1, (1 ... 1000).contains(options.patience) else {
            throw CacheTrainingError.invalidOptions("validation fraction \(options.validationFraction) must be in (0, 1) and patience \(options.patience) in 1 ... 1000")
        }
        if let parallelism = options.parallelism {
            guard options.method == .imitation else {
                throw CacheTrainingError.invalidOptions("data-parallel training takes the imitation method, not \(options.method.rawValue)")
            }
            guard parallelism.size >= 1, (0..<parallelism.size).contains(parallelism.rank) else {
                throw CacheTrainingError.invalidOptions("rank \(parallelism.rank) of \(parallelism.size) ranks")
            }
        }
        let writesCheckpoints = (options.parallelism?.rank ?? 0) == 0
        // (A workload of one request has nothing to hold back; it is both, and finds no eviction.)
        let cut = requests.count < 2 ? requests.count : requests.count - Swift.max(1, Int((Double(requests.count) * options.validationFraction).rounded()))
        let fit = Array(requests[..<Swift.min(requests.count, Swift.max(1, cut))]), validation = cut < requests.count ? Array(requests[cut...]) : requests
        let key = RandomKey(seed: options.seed)
        let normalization = try calibrate(fit, options: options, key: key)
        var scorer = try EvictionScorer(hidden: options.hidden, key: key.fold(in: 1))
        var adam = try Adam(learningRate: .constant(options.learningRate))
        let capacities = options.capacities
        // Validation runs warm: the policy first sees up to four times as many requests from the end
        // of the fitting slice (so that a large cache is full when the held-back slice starts),
        // and only the held-back slice's misses count.
        let warm = cut < requests.count ? Array(fit.suffix(4 * validation.count)) : []
        func validationMissRatio<P: CachePolicy>(_ policy: inout P) -> Double {
            for var r in warm {
                if options.mode == .unit { r.size = 1 }
                _ = policy.access(r)
            }
            return CacheSimulation.run(&policy, requests: validation, mode: options.mode).missRatio
        }
        let lruBySize = capacities.map { capacity -> Double in
            var lru = LRUPolicy(capacity: capacity)
            return validationMissRatio(&lru)
        }
        let lruValidation = lruBySize.reduce(0, +) / Double(capacities.count)
        /// The validation figure: the miss ratio on the held-back slice; over several sizes, LRU's
        /// mean miss ratio times the mean of the ratios to LRU's at each size (so each size counts
        /// by its relative change, not its absolute one, and one size gives its miss ratio).
        /// The miss ratio on the held-back slice at each size.
        func bySize(_ s: EvictionScorer, bypass: Bool = false) -> [Double] {
            capacities.map { capacity in
                var policy = LearnedPolicy(capacity: capacity, scorer: s, normalization: normalization, candidates: options.candidates,
                                           key: key.fold(in: 99))
                policy.bypass = bypass
                return validationMissRatio(&policy)
            }
        }
        func validate(_ s: EvictionScorer, bypass: Bool = false) -> Double {
            let missRatios = bySize(s, bypass: bypass)
            if missRatios.count == 1 { return missRatios[0] }
            let relative = zip(missRatios, lruBySize).reduce(0.0) { total, size in
                total + (size.1 > 0 ? size.0 / size.1 : size.0 + 1)
            } / Double(capacities.count)
            return lruValidation * relative
        }
        let over = capacities.count == 1 ? "" : " (over \(capacities.count) cache sizes: LRU's mean times the mean ratio to LRU)"
        var best = (scorer: scorer, round: 0, missRatio: validate(scorer))
        var first = 0
        var lastMiss: Double?
        let identity = trainingIdentity(requests, options: options, traceName: traceName)
        if let store, let loaded = try store.latest() {
            for (field, value) in identity.sorted(by: { $0.key < $1.key }) {
                let stored = loaded.checkpoint.manifest.metadata[field] ?? "(not recorded)"
                guard stored == value else {
                    throw CacheTrainingError.checkpointMismatch(path: loaded.path, field: field, checkpoint: stored, requested: value)
                }
            }
            try loaded.checkpoint.restore(model: &scorer, optimizer: &adam)
            let meta = loaded.checkpoint.manifest.metadata
            first = Int(meta["round"] ?? "") ?? 0
            lastMiss = Double(meta["missRatio"] ?? "")
            let stored = loaded.checkpoint.tensors(under: "extra/best")
            guard let bestRound = Int(meta["bestRound"] ?? ""), let bestMiss = Double(meta["bestMissRatio"] ?? ""),
                  scorer.namedTensors.allSatisfy({ stored[$0.name]?.shape == $0.tensor.shape }) else {
                throw CacheTrainingError.checkpointMismatch(path: loaded.path, field: "best round", checkpoint: "(not recorded)", requested: "a best round")
            }
            best = (scorer.replacingTensors(with: scorer.namedTensors.map { stored[$0.name]! }), bestRound, bestMiss)
            progress(first, options.rounds, "resumed after round \(first) (\(loaded.path))")
        } else {
            progress(0, options.rounds, String(format: "round 0: the initial scorer (LRU-like): validation miss ratio %.4f (LRU %.4f) on the last %d requests",
                                               best.missRatio, lruValidation, validation.count) + over)
        }
        for round in first..<options.rounds {
            if round - best.round >= options.patience {
                progress(options.rounds, options.rounds, "stopping early: no better validation miss ratio in \(options.patience) rounds; keeping round \(best.round)")
                break
            }
            let roundKey = key.fold(in: 100 + UInt64(round))
            var message: String
            switch options.method {
            case .imitation:
                // At most one eviction per request and size: keep one in `every` beyond the bound.
                let possible = fit.count * capacities.count, bound = Swift.max(1, options.maximumSamples)
                let every = Swift.max(1, (possible + bound - 1) / bound)
                // Data-parallel: this rank's shard of the fitting slice, with its own draws.
                let shard = options.parallelism?.shard(fit) ?? fit
                let shardKey = options.parallelism.map { roundKey.fold(in: UInt64($0.rank)) } ?? roundKey
                var (samples, result) = ImitationTraining.collect(shard, capacity: options.capacity, mode: options.mode, scorer: scorer,
                                                                   normalization: normalization, candidates: options.candidates, key: shardKey, every: every)
                for capacity in capacities.dropFirst() {
                    samples += ImitationTraining.collect(shard, capacity: capacity, mode: options.mode, scorer: scorer, normalization: normalization,
                                                         candidates: options.candidates, key: shardKey, every: every).samples
                }
                if let parallelism = options.parallelism {
                    let total = try parallelism.sum([Tensor([Double(result.misses), Double(result.requests), Double(samples.count)])])[0].doubles
                    (result.misses, result.requests) = (Int(total[0]), Int(total[1]))
                    guard total[2] > 0 else { throw CacheTrainingError.noEvictions(requests: fit.count, capacity: options.capacity, mode: options.mode) }
                }
                let losses = try fitImitation(&scorer, &adam, samples: samples, options: options, key: shardKey)
                lastMiss = result.missRatio
                message = String(format: "round %d: miss ratio %.4f on the policy's own run, %d evictions, imitation loss %.4f",
                                 round + 1, result.missRatio, samples.count, losses.last ?? .nan)
            case .relaxed, .straightThrough, .scoreFunction:
                let loss = try RelaxedCacheSimulator.round(&scorer, &adam, requests: fit, options: options, normalization: normalization,
                                                     round: round, key: roundKey)
                var policy = LearnedPolicy(capacity: options.capacity, scorer: scorer, normalization: normalization,
                                           candidates: options.candidates, key: roundKey)
                let result = CacheSimulation.run(&policy, requests: fit, mode: options.mode)
                lastMiss = result.missRatio
                message = String(format: "round %d: %@ objective %.4f per window, hard miss ratio %.4f", round + 1,
                                 options.method.rawValue, loss, result.missRatio)
            }
            let validated = validate(scorer)
            if validated < best.missRatio { best = (scorer, round + 1, validated) }
            message += String(format: "; validation %.4f (LRU %.4f)%@", validated, lruValidation,
                              best.round == round + 1 ? ", best so far" : ", worse than round \(best.round): not kept")
            if let store, writesCheckpoints {
                let extra = Dictionary(uniqueKeysWithValues: best.scorer.namedTensors.map { ("best/" + $0.name, $0.tensor) })
                try store.save(Checkpoint(model: scorer, optimizer: adam, extra: extra,
                                          metadata: identity.merging(["round": "\(round + 1)", "missRatio": "\(lastMiss ?? .nan)",
                                                                      "bestRound": "\(best.round)", "bestMissRatio": "\(best.missRatio)"]) { a, _ in a }))
            }
            progress(round + 1, options.rounds, message)
        }
        var metadata = CacheModel.Metadata(normalization: normalization, hidden: options.hidden, candidates: options.candidates,
                                           method: options.method.rawValue, trace: traceName, cacheSize: options.capacity,
                                           sizeMode: options.mode.rawValue, seed: options.seed, rounds: options.rounds, trainingMissRatio: lastMiss)
        (metadata.bestRound, metadata.validationMissRatio, metadata.lruValidationMissRatio) = (best.round, best.missRatio, lruValidation)
        if capacities.count > 1 { metadata.trainingSizes = capacities }
        var gate: AdmissionModel?
        if options.admission {
            // Admission by the eviction scorer itself: the missed object competes with the candidates.
            let bypassMiss = validate(best.scorer, bypass: true)
            metadata.bypass = bypassMiss < best.missRatio - options.admissionMargin
            progress(options.rounds, options.rounds, String(format: "admission by the eviction scorer (bypass a missed object that scores below every candidate): validation miss ratio %.4f against %.4f; %@",
                                                            bypassMiss, best.missRatio, metadata.bypass! ? "kept" : "not kept (it must be more than \(options.admissionMargin) lower)"))
            if metadata.bypass! { best.missRatio = bypassMiss }
        }
        if capacities.count > 1 {
            // Where a classical policy beats the kept scorer on the held-back slice, the model
            // deploys the best one there.
            let learned = bySize(best.scorer, bypass: metadata.bypass ?? false)
            var fallbacks: [CacheModel.Fallback] = [], report: [String] = []
            for (i, capacity) in capacities.enumerated() {
                let (kind, missRatio) = CacheTraining.fallbackKinds.map { kind -> (PolicyKind, Double) in
                    var policy = kind.make(capacity: capacity)
                    return (kind, validationMissRatio(&policy))
                }.min { $0.1 < $1.1 }!
                // (A tie is no evidence for the learned policy: the classical one is deployed.)
                if learned[i] >= missRatio { fallbacks.append(CacheModel.Fallback(size: capacity, policy: kind.rawValue)) }
                report.append(String(format: "%lld: %.4f (LRU %.4f, best classical %@ %.4f%@)", capacity, learned[i], lruBySize[i], kind.rawValue, missRatio,
                                     learned[i] >= missRatio ? ", \(kind.rawValue) deployed here" : ""))
            }
            metadata.fallbacks = fallbacks
            progress(options.rounds, options.rounds, "per size on the validation slice: " + report.joined(separator: ", "))
        }
        if options.admission {
            var admissionOptions = AdmissionTraining.Options(capacity: options.capacity)
            admissionOptions.mode = options.mode
            admissionOptions.seed = options.seed
            admissionOptions.method = options.admissionMethod
            admissionOptions.margin = options.admissionMargin
            (admissionOptions.window, admissionOptions.windowsPerRound) = (options.window, options.windowsPerRound)
            let bypass = metadata.bypass!
            gate = try AdmissionTraining.train(fit: fit, validation: validation, options: admissionOptions, base: {
                var policy = LearnedPolicy(capacity: options.capacity, scorer: best.scorer, normalization: normalization, candidates: options.candidates,
                                           key: key.fold(in: 99))
                policy.bypass = bypass
                return policy
            }, eviction: (best.scorer, normalization), progress: { progress(options.rounds, options.rounds, $0) })
        }
        return CacheModel(scorer: best.scorer, metadata: metadata, admission: gate)
    }

    /// What a checkpoint must match to be resumed: the workload (name, length and a fingerprint of
    /// its ids and sizes), the cache size and everything that shapes training.
    static func trainingIdentity(_ requests: [CacheRequest], options: CacheTrainingOptions, traceName: String) -> [String: String] {
        var fingerprint: UInt64 = 0xCBF2_9CE4_8422_2325   // FNV-1a over (id, size)
        for r in requests {
            for word in [r.id, UInt64(bitPattern: r.size)] {
                for shift in stride(from: 0, to: 64, by: 8) { fingerprint = (fingerprint ^ ((word >> UInt64(shift)) & 0xFF)) &* 0x0000_0100_0000_01B3 }
            }
        }
        var extra: [String: String] = [:]
        if options.capacities.count > 1 { extra["extraCapacities"] = options.capacities.dropFirst().map(String.init).joined(separator: ",") }
        return extra.merging(["trace": traceName, "requests": "\(requests.count)", "workloadFingerprint": String(fingerprint, radix: 16),
                "cacheSize": "\(options.capacity)", "sizeMode": options.mode.rawValue, "method": options.method.rawValue,
                "hidden": "\(options.hidden)", "candidates": "\(options.candidates)", "seed": "\(options.seed)",
                "validation": "\(options.validationFraction)"]) { a, _ in a }
    }

    /// Feature statistics from an LRU-like run of the initial scorer (a deterministic pass).
    static func calibrate(_ requests: [CacheRequest], options: CacheTrainingOptions, key: RandomKey) throws -> FeatureNormalization {
        var rows: [Double] = []
        var policy = LearnedPolicy(capacity: options.capacity, scorer: try EvictionScorer(hidden: 0), candidates: options.candidates, key: key)
        policy.observer = { _, features, _ in if rows.count < 2_000_000 { rows += features } }
        _ = CacheSimulation.run(&policy, requests: requests, mode: options.mode)
        guard !rows.isEmpty else { throw CacheTrainingError.noEvictions(requests: requests.count, capacity: options.capacity, mode: options.mode) }
        return FeatureNormalization.fit(rows)
    }

    static func fitImitation(_ scorer: inout EvictionScorer, _ adam: inout Adam, samples: [EvictionSample], options: CacheTrainingOptions,
                             key: RandomKey) throws -> [Double] {
        if let parallelism = options.parallelism { return try fitImitation(&scorer, &adam, samples: samples, options: options, key: key, parallelism: parallelism) }
        guard !samples.isEmpty else { return [] }
        var batches = try ShuffledBatches(count: samples.count, batchSize: Swift.min(128, samples.count), key: key)
        var losses: [Double] = []
        for _ in 0..<options.epochs {
            var total = 0.0
            for _ in 0..<batches.batchesPerEpoch {
                let batch = ArraySlice(try batches.next().doubles.map { samples[Int($0)] })
                let (value, gradient) = try valueWithGradient(at: scorer) { s in try ImitationTraining.loss(s, batch, candidates: options.candidates) }
                try adam.update(&scorer, along: gradient)
                total += try value.item()
            }
            losses.append(total / Double(batches.batchesPerEpoch))
        }
        return losses
    }

    /// Data-parallel ``fitImitation(_:_:samples:options:key:)``: every rank takes minibatches of
    /// its own samples (as many steps per epoch as the rank with the most batches; a rank without
    /// samples contributes nothing), and each step follows the mean gradient over all the ranks'
    /// minibatch examples.
    static func fitImitation(_ scorer: inout EvictionScorer, _ adam: inout Adam, samples: [EvictionSample], options: CacheTrainingOptions,
                             key: RandomKey, parallelism: CacheTrainingParallelism) throws -> [Double] {
        let batchSize = Swift.min(128, samples.count)
        var batches = samples.isEmpty ? nil : try ShuffledBatches(count: samples.count, batchSize: batchSize, key: key)
        var counts = [Double](repeating: 0, count: parallelism.size)
        counts[parallelism.rank] = Double(batches?.batchesPerEpoch ?? 0)
        let steps = Int(try parallelism.sum([Tensor(counts)])[0].doubles.max() ?? 0)
        var losses: [Double] = []
        for _ in 0..<options.epochs {
            var total = 0.0
            for _ in 0..<steps {
                var contribution = try scorer.tensors.map { try $0.zerosLike() }
                var weighted = [0.0, 0.0]
                if var current = batches {
                    let batch = ArraySlice(try current.next().doubles.map { samples[Int($0)] })
                    batches = current
                    let (value, gradient) = try valueWithGradient(at: scorer) { s in try ImitationTraining.loss(s, batch, candidates: options.candidates) }
                    let n = Double(batch.count)
                    contribution = try gradient.tensors.map { try $0 * Tensor(n, dtype: $0.dtype) }
                    weighted = [try value.item() * n, n]
                }
                let summed = try parallelism.sum(contribution + [Tensor(weighted)])
                let examples = summed.last!.doubles
                let gradient = try scorer.replacingTensors(with: summed.dropLast().map { try $0 / Tensor(examples[1], dtype: $0.dtype) })
                try adam.update(&scorer, along: gradient)
                total += examples[0] / examples[1]
            }
            losses.append(total / Double(Swift.max(steps, 1)))
        }
        return losses
    }
}
