import Adjoint
@testable import AdjointPolicies
import AdjointTestSupport
import Foundation
import Testing

/// The learned scheduler: its model file, the guard, the relaxed simulator's gradient, training
/// (each method, resume) and the online guardrail on a workload that shifts.
@Suite("LLM serving: learned scheduler, guard, guardrail")
struct ServingLearningTests {
    static func cost() throws -> ServingCostModel { try ServingTests.cost() }

    static func model(_ weights: [Double], budget: Int = 512, batch: Int = 64) throws -> ServingPolicyModel {
        ServingPolicyModel(scorer: try ServingScorer(weights: weights), metadata: .init(
            knobs: ServingKnobs(tokenBudget: budget, maxBatch: batch), method: "test", trace: "t", model: "8b", load: 1, seed: 1, rounds: 0,
            bestRound: 0, validationMeanLatency: nil))
    }

    /// Requests at `rate` per second whose work the prompt predicts (long prompts, long outputs),
    /// then — from `shiftAt` on — requests whose short prompts carry long outputs.
    static func workload(_ count: Int, rate: Double = 30, shiftAt: Int = .max, seed: UInt64 = 3) -> [ServingRequest] {
        let key = RandomKey(seed: seed)
        return (0..<count).map { i in
            let b = key.bits(block: UInt64(i))
            let long = b.0 % 3 == 0
            var prompt = long ? 2000 + Int(b.1 % 2000) : 100 + Int(b.1 % 400)
            var output = long ? 60 + Int(b.2 % 60) : 5 + Int(b.2 % 20)
            if i >= shiftAt { (prompt, output) = long ? (prompt, 2) : (prompt, 600 + Int(b.3 % 400)) }
            return ServingRequest(id: i, arrival: Double(i) / rate, promptTokens: prompt, outputTokens: output)
        }
    }

    @Test("a model file round-trips; a damaged, forged or out-of-range one is refused naming the field")
    func modelFile() throws {
        let dir = temporaryDirectory("serving-model")
        let m = try Self.model([0.5, 0, 0, -1])
        try m.write(to: dir + "/m.safetensors")
        #expect(try ServingPolicyModel.read(dir + "/m.safetensors") == m)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/m.safetensors"))
        bytes[bytes.count - 3] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: dir + "/bad.safetensors"))
        #expect { try ServingPolicyModel.read(dir + "/bad.safetensors") } throws: { "\($0)".contains("checksum") }
        var wide = m
        wide.metadata.knobs.tokenBudget = 1 << 30
        try wide.write(to: dir + "/wide.safetensors")
        #expect { try ServingPolicyModel.read(dir + "/wide.safetensors") } throws: { "\($0)".contains("knobs.tokenBudget") }
        try CacheModel(scorer: try EvictionScorer(), metadata: .init(normalization: .identity, hidden: 0, candidates: 4, method: "x", trace: "t",
                                                                      cacheSize: 4, sizeMode: "unit", seed: 1, rounds: 0, trainingMissRatio: nil))
            .write(to: dir + "/cache.safetensors")
        #expect { try ServingPolicyModel.read(dir + "/cache.safetensors") } throws: { "\($0)".contains("not an Adjoint serving model") }
        #expect(throws: (any Error).self) { try ServingScorer(weights: [1, .nan, 0, 0]) }
        #expect(throws: (any Error).self) { try ServingScorer(weights: [1]) }
    }

    @Test("the learned policy with FCFS weights and the knobs of a server is that server's FCFS, bit for bit")
    func learnedPathIsExact() throws {
        let trace = Self.workload(300)
        var c = ServingConfiguration(tokenBudget: 512, maxBatch: 64)
        c.guardSettings.maxWait = 1e7
        let server = try ServingSimulator(cost: try Self.cost(), configuration: c)
        let fcfs = try server.run(trace, policy: .fcfs)
        let learned = try server.run(trace, policy: .learned(try Self.model([0, 0, 0, -1])))
        #expect(learned.digest == fcfs.digest)
        #expect(learned.validation.accepted == trace.count && learned.validation.repaired == 0)
        // Shortest prompt first as a learned ranking: the same order as SPF.
        let spf = try server.run(trace, policy: .shortestPromptFirst)
        let ranked = try server.run(trace, policy: .learned(try Self.model([1, 0, 0, 0])))
        #expect(ranked.endToEnd.mean < fcfs.endToEnd.mean)
        #expect(abs(ranked.endToEnd.mean - spf.endToEnd.mean) < 0.05 * spf.endToEnd.mean)
    }

    @Test("the validator repairs to an overdue request, then to a starved tenant, and refuses what the KV cache cannot hold")
    func validator() {
        let v = ServingValidator(settings: ServingGuardSettings())
        func context(overdue: Int?, starved: Int?, free: Int) -> ServingValidator.Context {
            .init(overdue: overdue, starvedTenant: starved, freeBlocks: free, blocksNeeded: { $0 == 9 ? 100 : 2 })
        }
        guard case .accept = v.validate(1, in: context(overdue: nil, starved: nil, free: 10)) else { Issue.record("accept"); return }
        guard case .repair(3, "latency budget") = v.validate(1, in: context(overdue: 3, starved: 4, free: 10)) else { Issue.record("overdue"); return }
        guard case .repair(4, "tenant floor") = v.validate(1, in: context(overdue: nil, starved: 4, free: 10)) else { Issue.record("floor"); return }
        guard case .accept = v.validate(3, in: context(overdue: 3, starved: nil, free: 10)) else { Issue.record("own"); return }
        guard case .refuse("KV capacity") = v.validate(9, in: context(overdue: nil, starved: nil, free: 10)) else { Issue.record("kv"); return }
        guard case .refuse = v.validate(1, in: context(overdue: 9, starved: nil, free: 10)) else { Issue.record("kv repaired"); return }
    }

    @Test("the guard bounds the wait a bad ranking imposes, and keeps a starved tenant's share")
    func guardInSimulation() throws {
        let trace = Self.workload(400, rate: 40)
        let newestFirst = try Self.model([0, 0, 0, 1])
        func server(maxWait: Double, floor: Double) throws -> ServingSimulator {
            try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(
                tokenBudget: 512, maxBatch: 64, guardSettings: ServingGuardSettings(maxWait: maxWait, tenantFloor: floor)))
        }
        let unguarded = try server(maxWait: 1e7, floor: 0).run(trace, policy: .learned(newestFirst))
        let guarded = try server(maxWait: 2, floor: 0).run(trace, policy: .learned(newestFirst))
        #expect(guarded.validation.repaired > 0 && guarded.validation.reasons["latency budget"] == guarded.validation.repaired)
        #expect(guarded.ttft.p99 < unguarded.ttft.p99)
        #expect(guarded.validation.total >= trace.count)
        // Tenant 1 sends the long prompts; shortest-prompt-first starves it without the floor.
        let tenanted = trace.map { r -> ServingRequest in var r = r; r.tenant = r.promptTokens >= 2000 ? 1 : 0; return r }
        let spf = try Self.model([1, 0, 0, 0])
        let free = try server(maxWait: 1e7, floor: 0).run(tenanted, policy: .learned(spf))
        let floored = try server(maxWait: 1e7, floor: 0.9).run(tenanted, policy: .learned(spf))
        func meanTTFT(_ r: ServingReport, tenant: Int) -> Double {
            let xs = zip(tenanted, r.requests).filter { $0.0.tenant == tenant }.map(\.1.ttft)
            return xs.reduce(0, +) / Double(xs.count)
        }
        #expect((floored.validation.reasons["tenant floor"] ?? 0) > 0)
        #expect(meanTTFT(floored, tenant: 1) < meanTTFT(free, tenant: 1))
        let spread = ServingRequest.assigningTenants(trace, count: 4)
        #expect(Set(spread.map(\.tenant)) == [0, 1, 2, 3] && ServingRequest.assigningTenants(trace, count: 4) == spread)
    }

    @Test("the relaxed simulator's gradient matches central finite differences of its mean latency")
    func relaxedGradient() throws {
        let trace = Self.workload(8, rate: 1000)
        let knobs = ServingKnobs(tokenBudget: 256, maxBatch: 8)
        let window = try RelaxedServingSimulator.window(trace, start: 0, count: 8, cost: try Self.cost(), knobs: knobs, maximumSteps: 200)
        let weights = [0.3, 0.1, 0.2, -0.7]
        let (value, gradient) = try RelaxedServingSimulator.valueWithGradient(try ServingScorer(weights: weights), window: window, knobs: knobs, temperature: 0.5)
        #expect(value > 0 && gradient.weights.contains { abs($0) > 1e-9 })
        for (start, count) in [(-1, 8), (8, 8), (0, 0), (Int.max, 1)] {
            #expect(throws: ServingTrainingError.self) { try RelaxedServingSimulator.window(trace, start: start, count: count, cost: try Self.cost(), knobs: knobs) }
        }
        #expect(throws: ServingTrainingError.self) {
            try RelaxedServingSimulator.valueWithGradient(try ServingScorer(weights: weights), window: window, knobs: knobs, temperature: .nan)
        }
        for k in [0, 1, 3] {
            let h = 1e-5
            var up = weights, down = weights
            up[k] += h; down[k] -= h
            let fUp = try RelaxedServingSimulator.valueWithGradient(try ServingScorer(weights: up), window: window, knobs: knobs, temperature: 0.5).value
            let fDown = try RelaxedServingSimulator.valueWithGradient(try ServingScorer(weights: down), window: window, knobs: knobs, temperature: 0.5).value
            let numeric = (fUp - fDown) / (2 * h)
            #expect(abs(numeric - gradient.weights[k]) <= 1e-6 * Swift.max(1, abs(numeric)), "weight \(k): \(numeric) vs \(gradient.weights[k])")
        }
    }

    @Test("sampled admissions are reproducible from their key and differ from the greedy run")
    func sampling() throws {
        let trace = Self.workload(200, rate: 40)
        let server = try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(tokenBudget: 512, maxBatch: 64))
        let m = try Self.model([1, 0, 0, -0.5])
        let a = try ServingTraining.record(trace, simulator: server, policy: .learned(m), candidates: 8, sampling: (1, RandomKey(seed: 5)))
        let b = try ServingTraining.record(trace, simulator: server, policy: .learned(m), candidates: 8, sampling: (1, RandomKey(seed: 5)))
        let greedy = try server.run(trace, policy: .learned(m))
        #expect(a.1.digest == b.1.digest && a.0.chosen == b.0.chosen && a.1.digest != greedy.digest)
        #expect(a.0.chosen.contains { $0 != 0 } && a.0.counts.allSatisfy { (2...8).contains($0) })
    }

    @Test("each method trains a policy that beats FCFS on held-out requests; training resumes bitwise", arguments: ServingTrainingMethod.allCases)
    func training(_ method: ServingTrainingMethod) throws {
        let all = Self.workload(640)
        let (train, heldOut) = (Array(all[..<480]), Array(all[480...]))
        let server = try ServingSimulator(cost: try Self.cost())
        var options = ServingTrainingOptions()
        options.method = method
        options.rounds = 2
        options.window = 24
        options.windowsPerRound = 2
        options.knobSteps = 1
        let dir = temporaryDirectory("serve-train-\(method.rawValue)")
        let full = try ServingTraining.train(train, simulator: server, options: options, traceName: "w", load: 1, store: try CheckpointStore(directory: dir + "/a"))
        var half = options
        half.rounds = 1
        var lines: [String] = []
        _ = try ServingTraining.train(train, simulator: server, options: half, traceName: "w", load: 1, store: try CheckpointStore(directory: dir + "/b"))
        let resumed = try ServingTraining.train(train, simulator: server, options: options, traceName: "w", load: 1,
                                                store: try CheckpointStore(directory: dir + "/b")) { _, _, line in lines.append(line) }
        #expect(lines.first?.hasPrefix("resumed after round 1") == true)
        #expect(resumed == full)
        let fcfs = try server.run(heldOut, policy: .fcfs), learned = try server.run(heldOut, policy: .learned(full))
        #expect(learned.endToEnd.mean < fcfs.endToEnd.mean, "\(method): \(learned.endToEnd.mean) vs FCFS \(fcfs.endToEnd.mean)")
        #expect(full.metadata.validationMeanLatency != nil && full.metadata.method == method.rawValue)
        // Another workload refuses the checkpoint.
        #expect { try ServingTraining.train(Array(train.dropLast()), simulator: server, options: options, traceName: "w", load: 1,
                                            store: try CheckpointStore(directory: dir + "/a")) } throws: { "\($0)".contains("requests") }
    }

    @Test("bad training options are typed errors naming the option")
    func trainingOptions() throws {
        let server = try ServingSimulator(cost: try Self.cost())
        for (change, word) in [({ (o: inout ServingTrainingOptions) in o.rounds = 0 }, "rounds"), ({ $0.learningRate = .nan }, "learning rate"),
                               ({ $0.window = 1 }, "window"), ({ $0.validationFraction = 1 }, "validation"),
                               ({ $0.initialKnobs.tokenBudget = 0 }, "initial knobs")] as [((inout ServingTrainingOptions) -> Void, String)] {
            var o = ServingTrainingOptions()
            change(&o)
            #expect { try ServingTraining.train(Self.workload(40), simulator: server, options: o, traceName: "w", load: 1) } throws: { "\($0)".contains(word) }
        }
    }

    @Test("the guardrail falls back after the workload shifts and not before; online updates are bounded")
    func guardrail() throws {
        let server = try ServingSimulator(cost: try Self.cost())
        let trace = Self.workload(1200, shiftAt: 600)
        let spfLike = try Self.model([1, 0, 0, -0.05], budget: 512, batch: 32)
        let run = try ServingGuardrail.run(trace, simulator: server, model: spfLike, settings: ServingGuardrailSettings(window: 100, margin: 0.1))
        let fallbacks = run.events.filter { $0.action == .fallback }
        #expect(!fallbacks.isEmpty && fallbacks.allSatisfy { $0.window >= 6 }, "\(run.events)")
        #expect(fallbacks.allSatisfy { $0.learned > $0.shadow * 1.1 })
        #expect(run.windowsOnLearned + run.windowsOnShadow <= 12 && run.windowsOnShadow > 0)
        let stationary = try ServingGuardrail.run(Array(trace[..<600]), simulator: server, model: spfLike, settings: ServingGuardrailSettings(window: 100))
        #expect(stationary.events.isEmpty && stationary.windowsOnShadow == 0)
        let online = try ServingGuardrail.run(trace, simulator: server, model: spfLike,
                                              settings: ServingGuardrailSettings(window: 100, onlineLearning: true, maximumUpdate: 0.05))
        let updates = online.events.filter { $0.action == .update }
        #expect(!updates.isEmpty && updates.allSatisfy { $0.update <= 0.05 + 1e-12 })
        #expect(online.model != spfLike)
        #expect(throws: ServingSimulationError.self) {
            try ServingGuardrail.run(trace, simulator: server, model: spfLike, settings: ServingGuardrailSettings(window: 1))
        }
    }
}
