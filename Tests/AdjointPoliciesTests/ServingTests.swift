import Adjoint
import AdjointTestSupport
import Foundation
import Testing

/// The serving simulator: trace readers (real and hostile), the cost model's fit to the measured
/// table, the simulator's invariants and determinism, and the policies' orderings.
@Suite("LLM serving: traces, cost model, simulator")
struct ServingTests {
    static let servingData = sharedData + "/serving"
    static let haveData = FileManager.default.fileExists(atPath: servingData + "/llm-cost-h200.csv")

    static func file(_ name: String, _ text: String) -> String {
        let path = temporaryDirectory("serving") + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
        return path
    }

    /// A small table in the real one's format (invented numbers, for tests that need no data).
    static let table = """
        phase,model,batch,tokens,context,latency_ms
        prefill,llama-8b-shape,1,64,0,10
        prefill,llama-8b-shape,1,1024,0,26
        prefill,llama-8b-shape,1,4096,0,106
        decode,llama-8b-shape,1,1,512,7.5
        decode,llama-8b-shape,16,1,512,8
        decode,llama-8b-shape,16,1,8192,10
        decode,llama-8b-shape,64,1,2048,10.5
        decode,llama-8b-shape,128,1,2048,13
        prefill,llama-1b-shape,1,64,0,5
        """

    static func cost() throws -> ServingCostModel { try ServingCostModel.fitted(table: file("cost.csv", table), model: .llama8b) }

    /// A burst of long prompts with long outputs, then short ones: ordering matters.
    static func burst() -> [ServingRequest] {
        (0..<60).map { i in
            ServingRequest(id: i, arrival: Double(i) * 0.01, promptTokens: i % 3 == 0 ? 3000 : 200, outputTokens: i % 3 == 0 ? 200 : 20)
        }
    }

    /// (The Azure file holds 8,819 requests; its README says 8,818.)
    @Test("the Azure and Mooncake readers stream the shared traces, in arrival order, scaled by the load",
          .enabled(if: haveData, "needs ../shared/data/serving"))
    func realTraces() throws {
        let azure = try ServingTraceReader.readAll(path: Self.servingData + "/AzureLLMInferenceTrace_code.csv")
        #expect(azure.count == 8819 && azure[0].arrival == 0 && azure[0].promptTokens == 4808 && azure[0].outputTokens == 10)
        #expect(zip(azure, azure.dropFirst()).allSatisfy { $0.arrival <= $1.arrival })
        #expect(abs(azure[1].arrival - 0.052) < 1e-9)
        let doubled = try ServingTraceReader.readAll(path: Self.servingData + "/AzureLLMInferenceTrace_code.csv", load: 2, limit: 10)
        #expect(doubled.count == 10 && abs(doubled[1].arrival - 0.026) < 1e-9)
        let mooncake = try ServingTraceReader.readAll(path: Self.servingData + "/mooncake_synthetic_trace.jsonl")
        #expect(mooncake.count == 3993 && mooncake[0].promptTokens == 40160 && mooncake[0].prefixBlocks.count == 79)
    }

    @Test("hostile trace lines are typed errors naming the line and the field", arguments: [
        ("a.csv", "TIME,ContextTokens,GeneratedTokens\n", 1, "header"),
        ("b.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.98,12,3,4\n", 2, "line"),
        ("c.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.98,-5,3\n", 2, "ContextTokens"),
        ("d.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.98,5,99999999999999999999\n", 2, "GeneratedTokens"),
        ("e.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-13-16 18:17:03.98,5,3\n", 2, "TIMESTAMP"),
        ("f.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:nan,5,3\n", 2, "TIMESTAMP"),
        ("g.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:05,5,3\n2023-11-16 18:17:04,5,3\n", 3, "timestamp"),
        ("h.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:05,3000000,3\n", 2, "ContextTokens"),
        ("i.jsonl", "{\"timestamp\": 0, \"input_length\": 5}\n", 1, "output_length"),
        ("j.jsonl", "{\"timestamp\": \"x\", \"input_length\": 5, \"output_length\": 2}\n", 1, "timestamp"),
        ("k.jsonl", "{\"timestamp\": 0, \"input_length\": 5, \"output_length\": 2\n", 1, "line"),
        ("l.jsonl", "{\"timestamp\": -1, \"input_length\": 5, \"output_length\": 2}\n", 1, "timestamp"),
        ("m.jsonl", "{\"timestamp\": 1e300, \"input_length\": 5, \"output_length\": 2}\n", 1, "timestamp"),
        ("n.jsonl", "{\"timestamp\": 0, \"input_length\": 0, \"output_length\": 2}\n", 1, "input_length"),
    ])
    func hostileLines(_ name: String, _ text: String, _ line: Int, _ field: String) throws {
        let path = Self.file(name, text)
        do {
            _ = try ServingTraceReader.readAll(path: path)
            Issue.record("no error for \(name)")
        } catch let ServingTraceError.invalid(errorPath, errorLine, errorField, _) {
            #expect(errorPath == path && errorLine == line && errorField == field)
        }
    }

    @Test("empty, missing, unending and misconfigured inputs are typed errors")
    func otherHostileInputs() throws {
        #expect(throws: ServingTraceError.self) { try ServingTraceReader.readAll(path: Self.file("empty.jsonl", "")) }
        #expect(throws: ServingTraceError.self) { try ServingTraceReader.readAll(path: Self.file("h.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n")) }
        #expect(throws: ServingTraceError.self) { try ServingTraceReader.readAll(path: "/nonexistent/trace.csv") }
        let long = Self.file("long.jsonl", String(repeating: "x", count: 3 << 20))
        #expect(throws: ServingTraceError.invalid(path: long, line: 1, field: "line", detail: "longer than 1048576 bytes")) {
            try ServingTraceReader.readAll(path: long)
        }
        for load in [0, -1, .nan, .infinity, 1e7] {
            #expect(throws: ServingTraceError.self) { try ServingTraceReader(path: Self.file("ok.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n"), load: load) }
        }
        #expect(throws: ServingTraceError.self) { try ServingCostModel.fitted(table: Self.file("bad.csv", "phase,model\n"), model: .llama8b) }
        #expect(throws: ServingTraceError.self) { try ServingCostModel.fitted(table: Self.file("one.csv", Self.table.replacingOccurrences(of: "prefill,llama-8b-shape,1,1024,0,26\n", with: "").replacingOccurrences(of: "prefill,llama-8b-shape,1,4096,0,106\n", with: "")), model: .llama8b) }
        #expect(throws: ServingTraceError.self) { try ServingCostModel.fitted(table: Self.file("nan.csv", Self.table + "\ndecode,llama-8b-shape,1,1,512,nan"), model: .llama8b) }
        #expect(throws: ServingTraceError.self) { try ServingSLO.parse("ttft=-1") }
        #expect(throws: ServingTraceError.self) { try ServingSLO.parse("latency=2") }
        #expect(try ServingSLO.parse("tpot=50e-3,ttft=1.5s") == ServingSLO(ttft: 1.5, tpot: 0.05))
    }

    @Test("the cost model interpolates the prefill rows exactly, fits the decode rows, and adds a prefill chunk's extra cost to a decode")
    func costModel() throws {
        let c = try Self.cost()
        #expect(c.rowsUsed.prefill == 3 && c.rowsUsed.decode == 5)
        #expect(c.prefillMs(tokens: 1024) == 26 && c.prefillMs(tokens: 4096) == 106 && c.prefillMs(tokens: 10) == 10)
        #expect(abs(c.prefillMs(tokens: 2560) - 66) < 1e-12 && abs(c.prefillMs(tokens: 8192) - 212.66666666666669) < 1e-9)
        for (b, ctx, ms) in [(1, 512, 7.5), (16, 512, 8.0), (16, 8192, 10.0), (64, 2048, 10.5), (128, 2048, 13.0)] {
            #expect(abs(c.decodeMs(batch: b, contextTokens: b * ctx) - ms) < 1.0, "\(b) × \(ctx)")
        }
        #expect(abs(c.iterationMs(prefillTokens: 1024, decodeBatch: 16, decodeContext: 8192) - (c.decodeMs(batch: 16, contextTokens: 8192) + 16)) < 1e-12)
        #expect(c.kvBlocks == ((139 << 30) - 14_000_000_000) / (131_072 * 16))
    }

    @Test("the real table: every row of the model is used, and the fit is within a few milliseconds of each decode row",
          .enabled(if: haveData, "needs ../shared/data/serving"))
    func realTable() throws {
        for model in ServingCostModel.Model.allCases {
            let c = try ServingCostModel.fitted(table: Self.servingData + "/llm-cost-h200.csv", model: model)
            #expect(c.rowsUsed.prefill == 7 && c.rowsUsed.decode == (model == .llama8b ? 17 : 20))
            #expect(c.prefillMs(tokens: 16384) > c.prefillMs(tokens: 1024))
        }
    }

    @Test("every request completes, no latency is negative, the KV cache is never exceeded, and runs are deterministic",
          arguments: SchedulingPolicy.classical)
    func invariants(_ policy: SchedulingPolicy) throws {
        let simulator = try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(kvBlocks: 600))
        let a = try simulator.run(Self.burst(), policy: policy), b = try simulator.run(Self.burst(), policy: policy)
        #expect(a == b && a.digest == b.digest)
        #expect(a.requests.count == 60 && a.peakKVBlocks <= a.kvCapacity)
        for r in a.requests { #expect(r.ttft > 0 && r.ttft <= r.endToEnd && r.tpot >= 0, "\(r)") }
        #expect(a.preemptions > 0, "600 blocks cannot hold the burst: requests must be preempted and recomputed")
        #expect(a.makespan > 0 && a.sloAttainment >= 0 && a.sloAttainment <= 1)
    }

    @Test("orderings: FCFS serves in arrival order, SPF short prompts first, the clairvoyant policy beats FCFS on mean latency")
    func orderings() throws {
        let simulator = try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(tokenBudget: 4096, maxBatch: 4))
        let trace = Self.burst()
        let fcfs = try simulator.run(trace, policy: .fcfs), spf = try simulator.run(trace, policy: .shortestPromptFirst)
        let oracle = try simulator.run(trace, policy: .clairvoyant)
        let firstTokens = fcfs.requests.map { $0.ttft + trace[$0.id].arrival }
        #expect(zip(firstTokens, firstTokens.dropFirst()).allSatisfy { $0 <= $1 + 1e-12 })
        #expect(spf.requests[1].ttft < fcfs.requests[1].ttft)   // a short prompt overtakes the long ones
        #expect(oracle.endToEnd.mean < fcfs.endToEnd.mean)
        // A one-token output finishes at its first token.
        let one = try simulator.run([ServingRequest(id: 0, arrival: 0, promptTokens: 100, outputTokens: 1)], policy: .fcfs)
        #expect(one.requests[0].ttft == one.requests[0].endToEnd && one.requests[0].tpot == 0)
    }

    @Test("prefix caching reuses shared prompt blocks; a request that cannot fit is refused with a typed error")
    func prefixCacheAndLimits() throws {
        let shared: [UInt64] = [1, 2, 3, 4]
        let trace = (0..<6).map { ServingRequest(id: $0, arrival: Double($0), promptTokens: 2048, outputTokens: 5, prefixBlocks: shared) }
        let cached = try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(prefixCacheBlocks: 8)).run(trace, policy: .fcfs)
        let plain = try ServingSimulator(cost: try Self.cost()).run(trace, policy: .fcfs)
        #expect(cached.requests[0].cachedPromptTokens == 0 && cached.requests[5].cachedPromptTokens == 2047)
        #expect(cached.requests[5].ttft < plain.requests[5].ttft)
        #expect(throws: ServingSimulationError.requestTooLarge(id: 0, blocks: 7, capacity: 4)) {
            try ServingSimulator(cost: try Self.cost(), configuration: ServingConfiguration(kvBlocks: 4))
                .run([ServingRequest(id: 0, arrival: 0, promptTokens: 100, outputTokens: 2)], policy: .fcfs)
        }
        for bad in [ServingConfiguration(tokenBudget: 0), ServingConfiguration(maxBatch: 0), ServingConfiguration(kvBlocks: 0),
                    ServingConfiguration(prefixCacheBlocks: -1)] {
            #expect(throws: ServingSimulationError.self) { try ServingSimulator(cost: try Self.cost(), configuration: bad) }
        }
        #expect(throws: ServingSimulationError.self) { try ServingSimulator(cost: try Self.cost()).run(trace, policy: .tokenBudget(0)) }
    }
}
