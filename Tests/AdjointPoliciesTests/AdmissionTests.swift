import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Admission gates")
struct AdmissionTests {
    @Test("the frequency sketch never undercounts since its last halving, saturates at 15 and halves after `sample` additions")
    func frequencySketch() {
        var sketch = FrequencySketch(width: 64, sample: 1000)
        #expect(sketch.width == 64)
        var truth: [UInt64: Int] = [:]
        var x: UInt64 = 1
        for _ in 0..<999 {
            x = x &* 6364136223846793005 &+ 1442695040888963407
            let id = (x >> 33) % 300   // 300 ids in 64 counters per row: collisions certain
            sketch.add(id)
            truth[id, default: 0] += 1
        }
        for (id, n) in truth { #expect(sketch.estimate(id) >= Swift.min(n, 15), "\(id): \(sketch.estimate(id)) < \(n)") }
        var saturated = FrequencySketch(width: 1 << 10, sample: .max)
        for _ in 0..<40 { saturated.add(7) }
        #expect(saturated.estimate(7) == 15)
        var halving = FrequencySketch(width: 1 << 10, sample: 10)
        for _ in 0..<9 { halving.add(5) }
        #expect(halving.estimate(5) == 9)
        halving.add(5)   // the tenth addition halves everything
        #expect(halving.estimate(5) == 5)
        #expect(FrequencySketch(width: 0, sample: 0).width == 16 && FrequencySketch(width: .max, sample: 1).width == 1 << 22)
        #expect(FrequencySketch(objects: .max).width == 1 << 22 && FrequencySketch(objects: -3).width == 16)
    }

    @Test("the recency sketch never reports an id older than it is, and nil before it was seen")
    func recencySketch() {
        var sketch = RecencySketch(width: 32)
        var truth: [UInt64: Int64] = [:]
        for t in 0..<500 as Range<Int64> {
            let id = UInt64((t * 7919) % 97)
            sketch.record(id, at: t)
            truth[id] = t
        }
        for (id, t) in truth { #expect(sketch.lastSeen(id)! >= t) }
        #expect(RecencySketch(width: 1 << 12).lastSeen(42) == nil)
    }

    @Test("a gate keeps refused objects out of every policy; `admitting: false` inserts nothing", arguments: PolicyKind.allCases.filter { $0 != .belady })
    func gatedPolicies(_ kind: PolicyKind) {
        // Threshold 2: an object enters on its second request, never on its first.
        func check<P: CachePolicy>(_ p: P) {
            var gated = GatedPolicy(p, gate: FrequencyAdmission(name: "t", sketch: FrequencySketch(width: 1 << 12, sample: .max), countsHits: false))
            #expect(gated.name == kind.rawValue + "+t")
            let first = gated.access(CacheRequest(time: 0, id: 1))
            #expect(!first && gated.occupied == 0 && gated.refused == 1)
            let second = gated.access(CacheRequest(time: 1, id: 1))   // admitted now
            #expect(!second && gated.occupied == 1)
            let third = gated.access(CacheRequest(time: 2, id: 1))
            #expect(third)
            // Under another name the gate still decides (a wrapper forwards the whole request).
            var renamed = Renamed(GatedPolicy(p, gate: FrequencyAdmission(name: "t", sketch: FrequencySketch(width: 1 << 12, sample: .max), countsHits: false)),
                                  name: "renamed")
            let once = renamed.access(CacheRequest(time: 0, id: 1))
            #expect(!once && renamed.occupied == 0 && renamed.base.refused == 1 && renamed.name == "renamed" && renamed.capacity == 100)
        }
        check(kind.make(capacity: 100))
        var plain = kind.make(capacity: 100)
        for i in 0..<5 as Range<UInt64> {
            let hit = plain.access(CacheRequest(time: 0, id: i), admitting: false)
            #expect(!hit)
        }
        #expect(plain.occupied == 0)
    }

    @Test("the learned policy behind a gate: refused objects keep their histories and the cache stays within capacity")
    func gatedLearned() throws {
        let requests = try PolicyTests.workload(requests: 5000)
        var gated = GatedPolicy(LearnedPolicy(capacity: 50, scorer: try EvictionScorer()), gate: FrequencyAdmission.tinyLFU(objects: 50))
        var misses = 0
        for r in requests {
            if !gated.access(r) { misses += 1 }
            #expect(gated.occupied <= 50)
        }
        #expect(gated.refused > 0 && gated.refused < misses)
        #expect(gated.base.trackedHistories <= gated.base.historyLimit + 51)
    }

    @Test("reuse labels equal a brute-force count of the distinct objects (bytes) between two requests", arguments: [SizeMode.unit, .bytes])
    func reuseLabels(_ mode: SizeMode) throws {
        var workload = try SyntheticWorkload(.zipf(objects: 60, alpha: 0.7), requests: 600, key: RandomKey(seed: 9), sizes: .perObject(min: 1, max: 9))
        let requests = try workload.readAll()
        let capacity: Int64 = mode == .unit ? 12 : 50
        let labels = AdmissionTraining.reuseLabels(requests, capacity: capacity, mode: mode)
        for i in requests.indices {
            guard let j = requests[(i + 1)...].firstIndex(where: { $0.id == requests[i].id }) else { #expect(!labels[i]); continue }
            var between: [UInt64: Int64] = [:]
            for k in (i + 1)..<j { between[requests[k].id] = mode == .unit ? 1 : requests[k].size }
            let own = mode == .unit ? 1 : requests[i].size
            #expect(labels[i] == (between.values.reduce(0, +) + own <= capacity), "request \(i)")
        }
    }

    /// A hot set requested over and over, interleaved with one-hit wonders: admitting the wonders
    /// pushes hot objects out.
    static func wonders(_ n: Int) throws -> [CacheRequest] {
        var workload = try SyntheticWorkload(.mixture([(.zipf(objects: 400, alpha: 0.6), 0.5), (.scan, 0.5)]), requests: n, key: RandomKey(seed: 21))
        var requests = try workload.readAll()
        NextAccess.annotate(&requests)
        return requests
    }

    @Test("the learned gate is kept where one-hit wonders dominate, beats admitting everything at every size and TinyLFU's threshold rule at its own")
    func learnedGate() throws {
        let requests = try Self.wonders(30_000)
        let fit = Array(requests[..<20_000]), validation = Array(requests[20_000...])
        var lines: [String] = []
        let model = try #require(try AdmissionTraining.train(fit: fit, validation: validation, options: .init(capacity: 150),
                                                              base: { LRUPolicy(capacity: 150) }, progress: { lines.append($0) }))
        #expect(model.metadata.validationMissRatio < model.metadata.ungatedValidationMissRatio)
        #expect(lines.contains { $0.contains("gate kept") } && lines.contains { $0.hasPrefix("admission round 2") })
        for capacity: Int64 in [60, 150, 300] {
            var gated = GatedPolicy(LRUPolicy(capacity: capacity), gate: model.gate(capacity: capacity, mode: .unit))
            var tiny = GatedPolicy(LRUPolicy(capacity: capacity), gate: FrequencyAdmission.tinyLFU(objects: Int(capacity)))
            let learned = CacheSimulation.run(&gated, requests: validation, mode: .unit).missRatio
            let plain = CacheSimulation.run(.lru, capacity: capacity, requests: validation, mode: .unit).missRatio
            let threshold = CacheSimulation.run(&tiny, requests: validation, mode: .unit).missRatio
            print(String(format: "wonders, cache %lld: learned gate %.4f, LRU %.4f, LRU+TinyLFU %.4f", capacity, learned, plain, threshold))
            // Better than admitting everything at every size; better than TinyLFU's rule at the
            // size it was trained at (at other sizes it can lose to it: its threshold is tuned at 150).
            #expect(learned < plain && (capacity != 150 || learned < threshold), "cache \(capacity): learned \(learned), LRU \(plain), TinyLFU \(threshold)")
        }
    }

    @Test("cache training adds admission after the eviction rounds (bypass, a gate, or both) where it pays, and the model deploys it")
    func trainedWithEviction() throws {
        let requests = try Self.wonders(15_000)
        var options = CacheTrainingOptions(capacity: 150)
        options.rounds = 1
        var lines: [String] = []
        let model = try CacheTraining.train(requests, options: options, traceName: "wonders") { _, _, m in lines.append(m) }
        #expect(lines.contains { $0.hasPrefix("admission by the eviction scorer") } && lines.contains { $0.hasPrefix("admission round 2") })
        #expect(model.metadata.bypass == true || model.admission != nil, "\(lines)")
        if let gate = model.admission {
            #expect(model.metadata.admission == gate.metadata && gate.metadata.validationMissRatio < gate.metadata.ungatedValidationMissRatio)
        }
        var deployed = model.deployed(capacity: 150, mode: .unit), eviction = model.policy(capacity: 150)
        eviction.bypass = false
        let both = CacheSimulation.run(&deployed, requests: requests, mode: .unit).missRatio
        let alone = CacheSimulation.run(&eviction, requests: requests, mode: .unit).missRatio
        #expect(both < alone, "with admission \(both), eviction alone \(alone)")
        options.admission = false
        let without = try CacheTraining.train(requests, options: options, traceName: "wonders")
        #expect(without.admission == nil && without.metadata.bypass == nil)
    }

    @Test("bypass: a missed object that scores below every candidate is not admitted, and nothing is evicted for it")
    func bypass() throws {
        var scorer = try EvictionScorer()
        var w = [Double](repeating: 0, count: ObjectFeatures.count)
        w[1] = 1   // score = log(1 + requests): the least requested object goes first
        scorer.w1 = try Tensor(w, shape: [ObjectFeatures.count, 1])
        for bypass in [true, false] {
            var policy = LearnedPolicy(capacity: 3, scorer: scorer)
            policy.bypass = bypass
            var t: Int64 = 0
            for id in [1, 2, 3, 1, 2, 3] as [UInt64] { _ = policy.access(CacheRequest(time: t, id: id)); t += 1 }
            let hit = policy.access(CacheRequest(time: t, id: 9))   // requested once: below every resident
            let resident = [1, 2, 3].map { policy.find(CacheRequest(time: t + 1, id: $0)) }
            #expect(!hit && policy.occupied == 3)
            #expect(policy.bypassed == (bypass ? 1 : 0))
            // Bypassed: every resident stays. Admitted: one of them made room.
            #expect(resident.filter { $0 }.count == (bypass ? 3 : 2), "\(resident)")
        }
    }

    @Test("the relaxed method trains the gate through the soft-admission simulator and is selected like the labelled one")
    func relaxedMethod() throws {
        let requests = try Self.wonders(12_000)
        var options = AdmissionTraining.Options(capacity: 100)
        options.method = .relaxed
        options.rounds = 1
        options.window = 120
        options.windowsPerRound = 2
        var lines: [String] = []
        let model = try AdmissionTraining.train(fit: Array(requests[..<9000]), validation: Array(requests[9000...]), options: options,
                                                base: { LRUPolicy(capacity: 100) }, progress: { lines.append($0) })
        #expect(lines.first?.contains("relaxed misses per window") == true, "\(lines)")
        #expect(lines.contains { $0.contains("keeping out") })
        if let model { #expect(model.metadata.validationMissRatio < model.metadata.ungatedValidationMissRatio) }
        else { #expect(lines.last?.contains("no gate kept") == true) }
    }

    @Test("no gate is kept where admitting everything is best")
    func noGateWhenUseless() throws {
        // A loop that fits the cache: every object is reused long before it could be evicted.
        var workload = try SyntheticWorkload(.loop(objects: 100), requests: 6000, key: RandomKey(seed: 1))
        var requests = try workload.readAll()
        NextAccess.annotate(&requests)
        var lines: [String] = []
        let model = try AdmissionTraining.train(fit: Array(requests[..<4000]), validation: Array(requests[4000...]), options: .init(capacity: 200),
                                                base: { LRUPolicy(capacity: 200) }, progress: { lines.append($0) })
        #expect(model == nil)
        #expect(lines.last?.contains("no gate kept") == true || lines.last?.contains("no miss") == true, "\(lines)")
    }

    @Test("gradients through the relaxed simulator's soft admission match finite differences of its loss")
    func relaxedAdmissionGradient() throws {
        let requests = try Self.wonders(3000)
        var model = AdmissionModel(scorer: try AdmissionScorer(), metadata: .init(mean: [0.5, 1, 0.7], std: [0.5, 1, 0.3], meanSize: 1, threshold: 0,
                                                                                 validationMissRatio: 0, ungatedValidationMissRatio: 0))
        model.scorer.w = try Tensor([0.8, -0.6, 0.1], shape: [3, 1])
        let window = try RelaxedCacheSimulator.admissionWindow(requests, start: 2500, length: 30, capacity: 20, mode: .unit,
                                                               normalization: .identity, gate: model)
        let step = RelaxedCacheSimulator.admissionStep(capacity: 20, temperature: 0.5, eviction: try EvictionScorer())
        func loss(_ s: AdmissionScorer) throws -> UnrollResult<RelaxedCacheSimulator.AdmissionStep> {
            try unroll(step, from: window.initial, parameters: s, inputs: window.inputs, loss: .perStep { _, miss in miss }, schedule: .binomial(snapshots: 4))
        }
        let g = try loss(model.scorer).parameterGradient
        let h = 1e-6
        for j in 0...AdmissionFeatures.count {
            var up = model.scorer, down = model.scorer
            if j < AdmissionFeatures.count {
                var w = model.scorer.w.doubles
                w[j] += h; up.w = try Tensor(w, shape: [3, 1])
                w[j] -= 2 * h; down.w = try Tensor(w, shape: [3, 1])
            } else {
                up.b = try Tensor([1 + h], shape: [1]); down.b = try Tensor([1 - h], shape: [1])
            }
            let fd = (try loss(up).loss - loss(down).loss) / (2 * h)
            let analytic = j < AdmissionFeatures.count ? g.w.doubles[j] : g.b.doubles[0]
            #expect(Swift.abs(fd - analytic) <= 1e-5 * Swift.max(1, Swift.abs(fd)), "parameter \(j): \(analytic) vs \(fd)")
        }
        #expect(try g.w.doubles.contains { $0 != 0 })
    }

    @Test("model files carry the gate; a gate without its tensors, with NaN weights or a bad normalisation is refused")
    func modelFiles() throws {
        let dir = temporaryDirectory("admission-model")
        let path = (dir as NSString).appendingPathComponent("m.safetensors")
        let gate = AdmissionModel(scorer: AdmissionScorer(w: try Tensor([0.5, -1, 0.25], shape: [3, 1]), b: try Tensor([0.125], shape: [1])),
                                  metadata: .init(mean: [1, 2, 3], std: [1, 1, 2], meanSize: 3, threshold: 0.5, validationMissRatio: 0.2, ungatedValidationMissRatio: 0.3))
        let model = CacheModel(scorer: try EvictionScorer(hidden: 4), metadata: LearnedPolicyTests.metadata(), admission: gate)
        try model.write(to: path)
        let back = try CacheModel.read(path)
        #expect(back.metadata == model.metadata && back.admission?.metadata == gate.metadata)
        var (read, written) = (try #require(back.admission).scorer, gate.scorer)
        let same = zip(read.tensors, written.tensors).allSatisfy(bitwiseEqual)
        #expect(same)
        let deployed = back.deployed(capacity: 10, mode: .unit)
        #expect(deployed.name == "Learned" && deployed is Renamed<GatedPolicy<LearnedPolicy, LearnedAdmission>>)
        #expect(CacheModel(scorer: try EvictionScorer(hidden: 4), metadata: LearnedPolicyTests.metadata()).deployed(capacity: 10, mode: .unit).name == "Learned")
        // The metadata names a gate, the tensors are missing.
        var orphan = CacheModel(scorer: try EvictionScorer(hidden: 4), metadata: LearnedPolicyTests.metadata())
        orphan.metadata.admission = gate.metadata
        let orphanPath = (dir as NSString).appendingPathComponent("o.safetensors")
        try orphan.write(to: orphanPath)
        #expect { try CacheModel.read(orphanPath) } throws: { "\($0)".contains("admission.w") }
        for (name, edit) in [("NaN", { (g: inout AdmissionModel) in g.scorer.b = try Tensor([Double.nan], shape: [1]) }),
                             ("normalization", { (g: inout AdmissionModel) in g.metadata.std[1] = 0 }),
                             ("meanSize", { (g: inout AdmissionModel) in g.metadata.meanSize = 0.5 })] as [(String, (inout AdmissionModel) throws -> Void)] {
            var bad = gate
            try edit(&bad)
            let p = (dir as NSString).appendingPathComponent("\(name).safetensors")
            try CacheModel(scorer: try EvictionScorer(hidden: 4), metadata: LearnedPolicyTests.metadata(), admission: bad).write(to: p)
            #expect(throws: CacheModelError.self, "\(name)") { try CacheModel.read(p) }
        }
    }
}
