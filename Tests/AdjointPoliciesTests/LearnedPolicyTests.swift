import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Learned eviction policy")
struct LearnedPolicyTests {
    @Test("the compiled scorer agrees with the tensor scorer", arguments: [0, 8])
    func compiled(_ hidden: Int) throws {
        let scorer = try EvictionScorer(hidden: hidden, key: RandomKey(seed: 4))
        let x = try Tensor.normal([5, ObjectFeatures.count], key: RandomKey(seed: 5))
        let tensorScores = try scorer.scores(x).doubles
        let rows = x.doubles
        let compiled = scorer.compiled()
        for i in 0..<5 {
            let s = rows.withUnsafeBufferPointer { compiled.score($0.baseAddress! + i * ObjectFeatures.count) }
            #expect(Swift.abs(s - tensorScores[i]) < 1e-12)
        }
    }

    @Test("the features' logarithm is log1p to 1e-9; negative, NaN and infinite inputs give NaN")
    func logScale() {
        var x = 0.0
        var values: [Double] = [0, 1e-300, 1e-12, 1e-3, 0.5, 0.41421356, 0.41421357, 1, 2, 3, 1e6, 1e18, Double(Int64.max), 1e300]
        for _ in 0..<10_000 { x = x * 1.37 + 0.11; if x > 1e15 { x = 0.013 }; values.append(x) }
        for v in values { #expect(Swift.abs(ObjectFeatures.logScale(v) - log1p(v)) <= 1e-9 * Swift.max(1, log1p(v)), "\(v)") }
        #expect(Swift.abs(ObjectFeatures.logScale(.greatestFiniteMagnitude) - log1p(.greatestFiniteMagnitude)) < 1e-9)
        for bad in [-0.5, -2, .nan, .infinity, -.infinity] { #expect(ObjectFeatures.logScale(bad).isNaN, "\(bad)") }
    }

    /// Runs `policy` over `requests`, checking every eviction: it scores min(candidates, resident)
    /// distinct resident objects, among them the best-scored half of the previous eviction's other
    /// candidates, and evicts the lowest score of the full normalised feature row (the policy's
    /// folded scorer agrees with it).
    static func checkEvictions(_ policy: inout LearnedPolicy, _ requests: [CacheRequest], scorer: EvictionScorer) -> Int {
        final class State { var resident = Set<UInt64>(); var carried = Set<UInt64>(); var evictions = 0; var failures: [String] = [] }
        let state = State(), compiled = scorer.compiled(), k = policy.candidates, d = ObjectFeatures.count
        policy.observer = { ids, features, victim in
            state.evictions += 1
            if ids.count != Swift.min(k, state.resident.count) { state.failures.append("\(ids.count) candidates of \(state.resident.count)") }
            if Set(ids).count != ids.count || !Set(ids).isSubset(of: state.resident) { state.failures.append("candidates not distinct residents") }
            if !state.carried.isSubset(of: Set(ids)) { state.failures.append("runners-up not carried over") }
            let scores = features.withUnsafeBufferPointer { p in (0..<ids.count).map { compiled.score(p.baseAddress! + $0 * d) } }
            let low = scores.min()!
            if scores[ids.firstIndex(of: victim)!] > low + 1e-9 * Swift.max(1, Swift.abs(low)) { state.failures.append("victim not the lowest score") }
            let order = ids.indices.filter { ids[$0] != victim }.sorted { scores[$0] < scores[$1] }
            state.carried = ids.count < state.resident.count ? Set(order.prefix(k / 2).map { ids[$0] }) : []
            state.resident.remove(victim)
        }
        for r in requests where !policy.access(r) { state.resident.insert(r.id) }
        #expect(state.failures.isEmpty, "\(state.failures.prefix(3))")
        return state.evictions
    }

    @Test("each eviction scores `candidates` residents, carries the best half over, and evicts the lowest score", arguments: [0, 4])
    func candidateSets(_ hidden: Int) throws {
        let requests = try PolicyTests.workload(requests: 6000)
        var scorer = try EvictionScorer(hidden: hidden, key: RandomKey(seed: 11))
        if hidden == 0 { scorer.w1 = try Tensor.normal([ObjectFeatures.count, 1], key: RandomKey(seed: 12)) }
        let rows: [Double] = (0..<700).map { (i: Int) -> Double in Double((i * 37) % 101) * 0.05 + Double(i % 7) }
        let normalization = FeatureNormalization.fit(rows)
        for candidates in [2, 9, 16] {
            var policy = LearnedPolicy(capacity: 80, scorer: scorer, normalization: normalization, candidates: candidates)
            #expect(Self.checkEvictions(&policy, requests, scorer: scorer) > 1000)
        }
    }

    @Test("pinned objects are never evicted: proposals are repaired, and refused when nothing else can go")
    func pinned() throws {
        let requests = try PolicyTests.workload(requests: 8000)
        let hot = Set(requests.prefix(40).map(\.id))
        var policy = LearnedPolicy(capacity: 100, scorer: try EvictionScorer(hidden: 0), candidates: 100, pinned: hot)
        var resident = Set<UInt64>()
        for r in requests {
            let hit = policy.access(r)
            if hot.contains(r.id), resident.contains(r.id) { #expect(hit, "pinned \(r.id) was evicted") }
            resident.insert(r.id)
        }
        #expect(policy.validation.repaired > 0 && policy.validation.reasons["pinned"] == policy.validation.repaired)
        // Every resident object pinned: the proposal is refused and the new object not admitted.
        var full = LearnedPolicy(capacity: 2, scorer: try EvictionScorer(hidden: 0), pinned: [1, 2])
        #expect(!full.access(CacheRequest(time: 0, id: 1)) && !full.access(CacheRequest(time: 1, id: 2)))
        #expect(!full.access(CacheRequest(time: 2, id: 3)) && full.occupied == 2)
        #expect(full.validation.refused == 1)
        #expect(full.access(CacheRequest(time: 3, id: 1)) && full.access(CacheRequest(time: 4, id: 2)))
    }

    @Test("data-parallel imitation (one rank, the sum its identity) learns as well; other methods and bad ranks are refused")
    func parallelImitation() throws {
        var workload = try SyntheticWorkload.standard(requests: 20_000)
        var requests = try workload.readAll()
        NextAccess.annotate(&requests)
        var options = CacheTrainingOptions(capacity: 400)
        (options.rounds, options.epochs, options.admission) = (2, 2, false)
        options.parallelism = CacheTrainingParallelism(rank: 0, size: 1) { $0 }
        var policy = try CacheTraining.train(requests, options: options, traceName: "synthetic").policy(capacity: 400)
        let learned = CacheSimulation.run(&policy, requests: requests, mode: .unit)
        #expect(learned.missRatio < CacheSimulation.run(.lru, capacity: 400, requests: requests, mode: .unit).missRatio)
        options.method = .relaxed
        #expect(throws: CacheTrainingError.invalidOptions("data-parallel training takes the imitation method, not relaxed")) {
            try CacheTraining.train(requests, options: options, traceName: "synthetic")
        }
        options.method = .imitation
        options.parallelism = CacheTrainingParallelism(rank: 2, size: 2) { $0 }
        #expect(throws: CacheTrainingError.invalidOptions("rank 2 of 2 ranks")) { try CacheTraining.train(requests, options: options, traceName: "synthetic") }
    }

    @Test("imitation training beats LRU on the synthetic workload; training resumes bitwise from its checkpoints")
    func imitationAndResume() throws {
        var workload = try SyntheticWorkload.standard(requests: 20_000)
        var requests = try workload.readAll()
        NextAccess.annotate(&requests)
        var options = CacheTrainingOptions(capacity: 400)
        options.rounds = 3
        options.epochs = 2
        options.admission = false   // (the gate is trained after the rounds: AdmissionTests)
        let straight = try CacheTraining.train(requests, options: options, traceName: "synthetic")
        var policy = straight.policy(capacity: 400)
        let learned = CacheSimulation.run(&policy, requests: requests, mode: .unit)
        let lru = CacheSimulation.run(.lru, capacity: 400, requests: requests, mode: .unit)
        #expect(learned.missRatio < lru.missRatio - 0.02, "learned \(learned.missRatio), LRU \(lru.missRatio)")

        let store = try CheckpointStore(directory: temporaryDirectory("cache-train"))
        var partial = options
        partial.rounds = 2
        _ = try CacheTraining.train(requests, options: partial, traceName: "synthetic", store: store)
        var messages: [String] = []
        let resumed = try CacheTraining.train(requests, options: options, traceName: "synthetic", store: store) { _, _, m in messages.append(m) }
        #expect(messages.first?.hasPrefix("resumed after round 2") == true && messages.count == 2)
        #expect(zip(resumed.scorer.tensors, straight.scorer.tensors).allSatisfy(bitwiseEqual))
        // A checkpoint of another training is refused, naming what differs.
        var otherSize = options
        otherSize.capacity += 1
        #expect { try CacheTraining.train(requests, options: otherSize, traceName: "synthetic", store: store) } throws: { error in
            guard case let CacheTrainingError.checkpointMismatch(_, field, checkpoint, requested) = error else { return false }
            return field == "cacheSize" && checkpoint == "\(options.capacity)" && requested == "\(options.capacity + 1)"
        }
        var otherRequests = requests
        otherRequests[17].id &+= 1
        #expect { try CacheTraining.train(otherRequests, options: options, traceName: "synthetic", store: store) } throws: { error in
            guard case let CacheTrainingError.checkpointMismatch(_, field, _, _) = error else { return false }
            return field == "workloadFingerprint"
        }
    }

    @Test("training keeps the round with the best validation miss ratio, says so each round, and stops after `patience` rounds without one")
    func validationAndEarlyStopping() throws {
        let requests = try PolicyTests.workload(requests: 12_000)
        var options = CacheTrainingOptions(capacity: 200)
        options.method = .scoreFunction
        options.rounds = 4
        options.patience = 1
        options.window = 150
        options.windowsPerRound = 3
        options.admission = false
        var messages: [String] = []
        let model = try CacheTraining.train(requests, options: options, traceName: "synthetic") { _, _, m in messages.append(m) }
        #expect(messages.first?.hasPrefix("round 0: the initial scorer") == true)
        #expect(messages.dropFirst().filter { $0.hasPrefix("round ") }.allSatisfy { $0.contains("validation") && $0.contains("LRU") })
        let best = model.metadata.bestRound!
        #expect(messages.last?.hasPrefix("stopping early") == true || messages.count == options.rounds + 1, "\(messages)")
        // The kept scorer's miss ratio on the held-back slice (after the 4 × 2,400 requests before
        // it, warming the cache) is the one recorded.
        let validation = Array(requests[(requests.count - 2400)...])
        var policy = LearnedPolicy(capacity: 200, scorer: model.scorer, normalization: model.metadata.normalization, candidates: options.candidates,
                                   key: RandomKey(seed: options.seed).fold(in: 99))
        for r in requests[(requests.count - 5 * 2400)..<(requests.count - 2400)] { _ = policy.access(r) }
        #expect(CacheSimulation.run(&policy, requests: validation, mode: .unit).missRatio == model.metadata.validationMissRatio)
        #expect(messages.contains { $0.contains("round \(best):") || best == 0 })
        #expect { try CacheTraining.train([], options: options, traceName: "empty") } throws: { "\($0)".contains("no eviction") }
        var bad = options
        bad.validationFraction = 1
        #expect(throws: CacheTrainingError.self) { try CacheTraining.train(requests, options: bad, traceName: "synthetic") }
    }

    @Test("gradients through the relaxed simulator match finite differences of its loss")
    func relaxedGradient() throws {
        let requests = try PolicyTests.workload(requests: 2000)
        let window = try RelaxedCacheSimulator.window(requests, start: 1500, length: 25, capacity: 20, normalization: .identity)
        let step = RelaxedCacheSimulator.step(capacity: 20, temperature: 0.7, straightThrough: false)
        func loss(_ s: EvictionScorer) throws -> UnrollResult<RelaxedCacheSimulator.Step> {
            try unroll(step, from: window.initial, parameters: s, inputs: window.inputs, loss: .perStep { _, miss in miss }, schedule: .binomial(snapshots: 4))
        }
        var scorer = try EvictionScorer(hidden: 0)
        scorer.w1 = try Tensor([-0.5, 0.3, -0.1, 0.05, 0.2, -0.4, 0.1], shape: [ObjectFeatures.count, 1])
        let g = try loss(scorer).parameterGradient.w1.doubles
        let h = 1e-6
        for j in 0..<ObjectFeatures.count {
            var up = scorer, down = scorer
            var w = scorer.w1.doubles
            w[j] += h; up.w1 = try Tensor(w, shape: [ObjectFeatures.count, 1])
            w[j] -= 2 * h; down.w1 = try Tensor(w, shape: [ObjectFeatures.count, 1])
            let fd = (try loss(up).loss - loss(down).loss) / (2 * h)
            #expect(Swift.abs(fd - g[j]) <= 1e-5 * Swift.max(1, Swift.abs(fd)), "feature \(j): \(g[j]) vs \(fd)")
        }
        // The soft misses of a window are between 0 and its length; a perfect score order cannot
        // do worse than the bound of distinct new objects.
        let value = try loss(scorer).loss
        #expect(value > 0 && value <= 25)
    }

    @Test("training over several cache sizes learns from each, selects rounds by the mean ratio to LRU, and records the sizes")
    func severalSizes() throws {
        let requests = try PolicyTests.workload(requests: 12_000)
        var options = CacheTrainingOptions(capacity: 200)
        options.extraCapacities = [50, 200, 800, 50]
        options.rounds = 1
        options.admission = false
        #expect(options.capacities == [200, 50, 800])
        // The samples' bound: one eviction in k is recorded once more could happen.
        let all = ImitationTraining.collect(requests, capacity: 50, mode: .unit, scorer: try EvictionScorer(), normalization: .identity,
                                            candidates: 16, key: RandomKey(seed: 1))
        let third = ImitationTraining.collect(requests, capacity: 50, mode: .unit, scorer: try EvictionScorer(), normalization: .identity,
                                              candidates: 16, key: RandomKey(seed: 1), every: 3)
        #expect(all.samples.count > 3000 && third.samples.count == all.samples.count / 3 && third.result == all.result)
        var messages: [String] = []
        let model = try CacheTraining.train(requests, options: options, traceName: "synthetic") { _, _, m in messages.append(m) }
        #expect(model.metadata.trainingSizes == [200, 50, 800] && model.metadata.cacheSize == 200)
        #expect(messages.first?.contains("over 3 cache sizes") == true, "\(messages)")
        // Round 0's figure: LRU's mean over the sizes times the mean ratio of the initial scorer to LRU.
        // Validation is warm: the 4 × 2,400 requests before the held-back slice first.
        let warm = Array(requests[0..<9600]), validation = Array(requests[9600...])
        func missRatio<P: CachePolicy>(_ policy: inout P) -> Double {
            for r in warm { _ = policy.access(r) }
            return CacheSimulation.run(&policy, requests: validation, mode: .unit).missRatio
        }
        let lru = options.capacities.map { capacity -> Double in
            var policy = LRUPolicy(capacity: capacity)
            return missRatio(&policy)
        }
        let initial = try options.capacities.map { capacity -> Double in
            var policy = LearnedPolicy(capacity: capacity, scorer: try EvictionScorer(), normalization: model.metadata.normalization,
                                       candidates: options.candidates, key: RandomKey(seed: options.seed).fold(in: 99))
            return missRatio(&policy)
        }
        let lruMean: Double = lru.reduce(0, +) / 3
        let ratios: [Double] = zip(initial, lru).map { $0 / $1 }
        let figure: Double = lruMean * (ratios.reduce(0, +) / 3)
        #expect(messages.first?.contains(String(format: "validation miss ratio %.4f", figure)) == true, "\(figure): \(messages[0])")
        // Per size, the model records where the best classical policy was at least as good as the
        // learned scorer on the validation slice, and deploys that policy there.
        let perSize = try #require(messages.first { $0.hasPrefix("per size on the validation slice") })
        for capacity in options.capacities {
            let best = CacheTraining.fallbackKinds.map { kind -> (PolicyKind, Double) in
                var policy = kind.make(capacity: capacity)
                return (kind, missRatio(&policy))
            }.min { $0.1 < $1.1 }!
            #expect(perSize.contains(String(format: "best classical %@ %.4f", best.0.rawValue, best.1)), "\(capacity): \(best) in \(perSize)")
            let fallback = model.metadata.fallbacks?.first { $0.size == capacity }
            #expect(fallback == nil || fallback!.policy == best.0.rawValue)
            #expect(perSize.contains("\(capacity): ") && model.fallback(capacity: capacity)?.rawValue == fallback?.policy)
            var deployed = model.deployed(capacity: capacity, mode: .unit)
            #expect(deployed.name == "Learned" && (deployed is LearnedPolicy) == (fallback == nil))
            _ = deployed.access(CacheRequest(time: 0, id: 1))
        }
        #expect(model.fallback(capacity: 60) == model.fallback(capacity: 50) && model.fallback(capacity: 700) == model.fallback(capacity: 800))
        // A checkpoint of a single-size training is not resumed by a several-size one.
        let store = try CheckpointStore(directory: temporaryDirectory("cache-sizes"))
        var single = options
        single.extraCapacities = []
        _ = try CacheTraining.train(requests, options: single, traceName: "synthetic", store: store)
        #expect { _ = try CacheTraining.train(requests, options: options, traceName: "synthetic", store: store) } throws: { "\($0)".contains("extraCapacities") }
    }

    @Test("no training method ends worse than its LRU-like start on the validation slice; the gradient methods improve on it", arguments: [CacheTrainingMethod.relaxed, .straightThrough, .scoreFunction])
    func methods(_ method: CacheTrainingMethod) throws {
        let requests = try PolicyTests.workload(requests: 12_000)
        var options = CacheTrainingOptions(capacity: 200)
        options.method = method
        options.rounds = 2
        options.window = 150
        options.windowsPerRound = 3
        let model = try CacheTraining.train(requests, options: options, traceName: "synthetic")
        var policy = model.policy(capacity: 200)
        let learned = CacheSimulation.run(&policy, requests: requests, mode: .unit)
        var start = LearnedPolicy(capacity: 200, scorer: try EvictionScorer(hidden: 0), normalization: model.metadata.normalization,
                                  candidates: options.candidates, key: RandomKey(seed: 7))
        let initial = CacheSimulation.run(&start, requests: requests, mode: .unit)
        // Rounds that do worse on the validation slice are not kept, so no method ends worse than
        // its start; the gradient methods end better (the score function, with two rounds of three
        // windows, does not beat the start on validation and keeps it: round 0).
        #expect(learned.missRatio <= initial.missRatio, "\(method): \(learned.missRatio) vs the initial \(initial.missRatio)")
        if method != .scoreFunction {
            #expect(learned.missRatio < initial.missRatio && model.metadata.bestRound! > 0, "\(method): \(learned.missRatio) vs the initial \(initial.missRatio)")
        }
        #expect(model.metadata.validationMissRatio != nil && model.metadata.lruValidationMissRatio != nil)
    }

    @Test("model files round-trip; foreign files are refused with a reason")
    func modelFiles() throws {
        let dir = temporaryDirectory("cache-model")
        let path = (dir as NSString).appendingPathComponent("m.safetensors")
        let model = CacheModel(scorer: try EvictionScorer(hidden: 4, key: RandomKey(seed: 2)),
                               metadata: .init(normalization: .identity, hidden: 4, candidates: 16, method: "imitation", trace: "t",
                                               cacheSize: 100, sizeMode: "unit", seed: 1, rounds: 2, trainingMissRatio: 0.5))
        try model.write(to: path)
        let back = try CacheModel.read(path)
        #expect(back.metadata == model.metadata && zip(back.scorer.tensors, model.scorer.tensors).allSatisfy(bitwiseEqual))
        #expect(FileManager.default.fileExists(atPath: path + ".json"))
        let foreign = (dir as NSString).appendingPathComponent("f.safetensors")
        try SafeTensors.write(["w": Tensor(1.0)], to: foreign)
        #expect { try CacheModel.read(foreign) } throws: { "\($0)".contains("not an Adjoint cache model") }
    }

    @Test("the learned policy keeps histories for resident objects and its last historyLimit departures only")
    func boundedHistories() throws {
        // 60,000 requests over 30,000 objects, each named twice, far apart: an unbounded table would hold 30,000.
        var requests = (0..<60_000).map { CacheRequest(time: Int64($0), id: UInt64($0 % 30_000), size: 1) }
        NextAccess.annotate(&requests)
        let scorer = try EvictionScorer(hidden: 0)
        var bounded = LearnedPolicy(capacity: 100, scorer: scorer, candidates: 8, historyLimit: 500)
        var unbounded = LearnedPolicy(capacity: 100, scorer: scorer, candidates: 8)
        var peak = 0
        for r in requests {
            _ = bounded.access(r)
            _ = unbounded.access(r)
            peak = max(peak, bounded.trackedHistories)
        }
        #expect(peak <= 100 + 500 + 1, "peak \(peak)")
        #expect(unbounded.trackedHistories == 30_000)
        // When the limit is not reached, bounding changes nothing.
        var small = (0..<5_000).map { CacheRequest(time: Int64($0), id: UInt64($0 * 7 % 300), size: 1) }
        NextAccess.annotate(&small)
        var limited = LearnedPolicy(capacity: 50, scorer: scorer, candidates: 8, historyLimit: 1_000)
        var free = LearnedPolicy(capacity: 50, scorer: scorer, candidates: 8)
        #expect(CacheSimulation.run(&limited, requests: small, mode: .unit) == CacheSimulation.run(&free, requests: small, mode: .unit))
    }

    static func metadata(_ edit: @Sendable (inout CacheModel.Metadata) -> Void = { _ in }) -> CacheModel.Metadata {
        var m = CacheModel.Metadata(normalization: .identity, hidden: 4, candidates: 16, method: "imitation", trace: "t",
                                    cacheSize: 100, sizeMode: "unit", seed: 1, rounds: 2, trainingMissRatio: 0.5)
        edit(&m)
        return m
    }

    @Test("model files with a valid checksum but values a policy cannot use are refused, naming the field", arguments: [
        ("candidates", { @Sendable (m: inout CacheModel.Metadata) in m.candidates = 0 }),
        ("candidates", { m in m.candidates = -5 }),
        ("candidates", { m in m.candidates = 1 << 40 }),
        ("hidden", { m in m.hidden = 1 << 40 }),
        ("normalization.std", { m in m.normalization.std[2] = 0 }),
        ("normalization.std", { m in m.normalization.std[0] = -1 }),   // (JSON cannot hold NaN or infinity)
        ("normalization", { m in m.normalization.mean.removeLast() }),
        ("cacheSize", { m in m.cacheSize = 0 }),
        ("sizeMode", { m in m.sizeMode = "pages" }),
        ("formatVersion", { m in m.formatVersion = 2 }),
        ("fallbacks", { m in (m.trainingSizes, m.fallbacks) = ([10, 20], [CacheModel.Fallback(size: 20, policy: "Belady")]) }),
        ("fallbacks", { m in (m.trainingSizes, m.fallbacks) = ([10, 20], [CacheModel.Fallback(size: 20, policy: "MRU")]) }),
        ("fallbacks", { m in (m.trainingSizes, m.fallbacks) = ([10, 20], [CacheModel.Fallback(size: 30, policy: "LIRS")]) }),
        ("fallbacks", { m in m.fallbacks = [CacheModel.Fallback(size: 10, policy: "LIRS")] }),
    ] as [(String, @Sendable (inout CacheModel.Metadata) -> Void)])
    func hostileModelMetadata(_ field: String, _ edit: @Sendable (inout CacheModel.Metadata) -> Void) throws {
        let path = (temporaryDirectory("cache-model-bad") as NSString).appendingPathComponent("m.safetensors")
        let metadata = Self.metadata(edit)
        try CacheModel(scorer: try EvictionScorer(hidden: 4, key: RandomKey(seed: 2)), metadata: metadata).write(to: path)
        #expect { try CacheModel.read(path) } throws: { error in
            guard case let CacheModelError.invalid(p, f, _) = error else { return false }
            return p == path && f == field
        }
    }

    @Test("model files: NaN weights, a damaged byte and a sidecar that disagrees are refused")
    func damagedModelFiles() throws {
        let dir = temporaryDirectory("cache-model-damaged")
        let path = (dir as NSString).appendingPathComponent("m.safetensors")
        let scorer = try EvictionScorer(hidden: 4, key: RandomKey(seed: 2))
        var tensors = scorer.tensors
        tensors[0] = try tensors[0] * Double.nan
        try CacheModel(scorer: scorer.replacingTensors(with: tensors), metadata: Self.metadata()).write(to: path)
        #expect { try CacheModel.read(path) } throws: { "\($0)".contains("NaN or infinite") }
        try CacheModel(scorer: scorer, metadata: Self.metadata()).write(to: path)
        _ = try CacheModel.read(path)
        var bytes = try AtomicFile.read(path)
        bytes[bytes.count - 3] ^= 0x20
        try AtomicFile.write(bytes, to: path)
        #expect { try CacheModel.read(path) } throws: { "\($0)".contains("checksum") }
        try CacheModel(scorer: scorer, metadata: Self.metadata()).write(to: path)
        let sidecar = try String(contentsOfFile: path + ".json", encoding: .utf8)
        try sidecar.replacingOccurrences(of: "\"candidates\" : 16", with: "\"candidates\" : 8").write(toFile: path + ".json", atomically: true, encoding: .utf8)
        #expect { try CacheModel.read(path) } throws: { "\($0)".contains("sidecar") && "\($0)".contains("differs") }
        try "not json".write(toFile: path + ".json", atomically: true, encoding: .utf8)
        #expect { try CacheModel.read(path) } throws: { "\($0)".contains("does not decode") }
        try FileManager.default.removeItem(atPath: path + ".json")
        _ = try CacheModel.read(path)   // no sidecar: the model file alone
    }
}

/// The learned cache behind its online guardrail, on a workload that shifts mid-way.
@Suite("Learned cache guardrail")
struct CacheGuardrailTests {
    struct ArraySource: RequestSource {
        var requests: [CacheRequest]
        var position = 0
        var name: String { "array" }
        mutating func next() throws -> CacheRequest? {
            guard position < requests.count else { return nil }
            defer { position += 1 }
            return requests[position]
        }
    }

    /// A model trained on a loop-heavy workload A (keep the old, evict the recent), then A followed
    /// by a drifting Zipf workload B where that is the wrong thing to do.
    static func shifted() throws -> (model: CacheModel, a: [CacheRequest], both: [CacheRequest]) {
        var a = try SyntheticWorkload(.mixture([(.loop(objects: 600), 0.8), (.zipf(objects: 5000, alpha: 0.8), 0.2)]), requests: 30_000, key: RandomKey(seed: 3))
        var b = try SyntheticWorkload(.zipf(objects: 20_000, alpha: 0.9, driftEvery: 2000, driftStep: 300), requests: 20_000, key: RandomKey(seed: 4))
        var ra = try a.readAll(), rb = try b.readAll()
        for i in rb.indices { rb[i].id += 1 << 40 }
        NextAccess.annotate(&ra)
        var options = CacheTrainingOptions(capacity: 400)
        options.rounds = 3
        let model = try CacheTraining.train(ra, options: options, traceName: "A")
        return (model, Array(ra[..<20_000]), Array(ra[..<20_000]) + rb)
    }

    @Test("falls back to the shadow after the shift and not before, beating both policies alone; online updates stay within their bound")
    func shift() throws {
        let (model, a, both) = try Self.shifted()
        var source = ArraySource(requests: both)
        let run = try CacheGuardrail.run(&source, model: model, capacity: 400, mode: .unit, settings: CacheGuardrailSettings(window: 2000, sampling: 4))
        let fallbacks = run.events.filter { $0.action == .fallback }
        #expect(fallbacks.count == 1 && fallbacks[0].window >= 10 && fallbacks[0].learned > fallbacks[0].shadow + 0.01, "\(run.events)")
        var plain = model.policy(capacity: 400)
        let unguarded = CacheSimulation.run(&plain, requests: both, mode: .unit)
        let s3fifo = CacheSimulation.run(.s3fifo, capacity: 400, requests: both, mode: .unit)
        #expect(run.result.missRatio < unguarded.missRatio && run.result.missRatio < s3fifo.missRatio,
                "guarded \(run.result.missRatio), unguarded \(unguarded.missRatio), S3-FIFO \(s3fifo.missRatio)")
        #expect(run.result.requests == both.count && run.windowsOnLearned + run.windowsOnShadow == 20 && run.sampledRequests < both.count / 2)
        var stationary = ArraySource(requests: a)
        #expect(try CacheGuardrail.run(&stationary, model: model, capacity: 400, mode: .unit, settings: CacheGuardrailSettings(window: 2000, sampling: 4)).events.isEmpty)
        var again = ArraySource(requests: both)
        let online = try CacheGuardrail.run(&again, model: model, capacity: 400, mode: .unit,
                                            settings: CacheGuardrailSettings(window: 2000, sampling: 4, onlineLearning: true, maximumUpdate: 0.02))
        let updates = online.events.filter { $0.action == .update }
        #expect(!updates.isEmpty && updates.allSatisfy { $0.update <= 0.02 + 1e-9 })
        for bad in [CacheGuardrailSettings(window: 1), CacheGuardrailSettings(margin: .nan), CacheGuardrailSettings(shadow: .belady),
                    CacheGuardrailSettings(sampling: 0), CacheGuardrailSettings(maximumUpdate: 2)] {
            var s = ArraySource(requests: a)
            #expect(throws: CacheTrainingError.self) { try CacheGuardrail.run(&s, model: model, capacity: 400, mode: .unit, settings: bad) }
        }
    }

    @Test("where the model deploys a classical policy, the guardrail guards that policy, not the learned scorer")
    func guardsTheDeployedPolicy() throws {
        let (trained, _, both) = try Self.shifted()
        var metadata = trained.metadata
        (metadata.trainingSizes, metadata.fallbacks) = ([100, 400], [CacheModel.Fallback(size: 400, policy: "LIRS")])
        let model = CacheModel(scorer: trained.scorer, metadata: metadata)
        // A margin of 1 never falls back: the guarded cache is LIRS alone, hit for hit.
        var source = ArraySource(requests: both)
        let run = try CacheGuardrail.run(&source, model: model, capacity: 400, mode: .unit, settings: CacheGuardrailSettings(window: 2000, margin: 1, sampling: 4))
        let lirs = CacheSimulation.run(.lirs, capacity: 400, requests: both, mode: .unit)
        #expect(run.deployed == .lirs && run.events.isEmpty && run.result.misses == lirs.misses, "\(run.result.misses) against LIRS's \(lirs.misses)")
        // At the other training size the learned scorer is deployed, and guarded.
        var small = ArraySource(requests: both)
        let scorerRun = try CacheGuardrail.run(&small, model: model, capacity: 100, mode: .unit, settings: CacheGuardrailSettings(window: 2000, margin: 1, sampling: 4))
        var plain = model.policy(capacity: 100)
        #expect(scorerRun.deployed == nil && scorerRun.result.misses == CacheSimulation.run(&plain, requests: both, mode: .unit).misses)
        // Online learning updates the learned scorer, which is not what runs at 400.
        var again = ArraySource(requests: both)
        #expect(throws: CacheTrainingError.self) {
            try CacheGuardrail.run(&again, model: model, capacity: 400, mode: .unit, settings: CacheGuardrailSettings(window: 2000, sampling: 4, onlineLearning: true))
        }
    }
}
