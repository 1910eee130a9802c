import Adjoint
import AdjointTestSupport
import Foundation
import Testing

/// Every code sample of the DocC articles (`Sources/Adjoint/Adjoint.docc`), run here. The last test
/// checks that each sample in the articles appears in this file, so an article cannot drift from
/// code that compiles and runs.
@Suite("Documentation samples")
struct DocumentationSamplesTests {
    @Test("Getting started")
    func gettingStarted() throws {
        let x = try Tensor.uniform([8, 3], key: RandomKey(seed: 1))
        let w = try Tensor.normal([3, 2], key: RandomKey(seed: 2), std: 0.1)
        let (value, dw) = try valueWithGradient(at: w) { w in try x.matmul(w).tanh().sum() }
        let (y, pullback) = try vjp(at: x) { x in try x.sin() * x }
        let dx = try pullback(try y.onesLike())
        let (_, tangent) = try jvp(at: x, direction: try Tensor.ones([8, 3])) { x in try x.sin() * x }
        #expect(dw.shape == [3, 2] && dx.shape == [8, 3] && tangent.shape == [8, 3] && value.isScalar)
        #expect(try dx.doubles == tangent.doubles)   // an elementwise map: VJP of ones = JVP along ones
    }

    @Test("Differentiating through time")
    func throughTime() throws {
        typealias Step = TensorStep<Tensor, Tensor, Tensor, NoOutput>
        let step = Step { s, x, k in (try (s * k).tanh() + x, NoOutput()) }   // s' = tanh(k·s) + x
        let loss = Step.Loss.both(perStep: { s, _ in try s.pow(2).mean() }, final: { s in try s.sum() })
        let forcing: (Int) throws -> Tensor = { t in try Tensor.full([4], sin(Double(t) * 0.01)) }
        let result = try unroll(step, from: try .zeros([4]), parameters: Tensor([0.9]), steps: 1_000,
                                loss: loss, schedule: .binomial(snapshots: 32), inputs: forcing)
        print(result.loss, result.parameterGradient, result.report)

        let compiled = try CompiledStep(step, loss: loss, state: try .zeros([4]), input: try forcing(0), parameters: Tensor([0.9]))
        let fast = try unroll(compiled, from: try .zeros([4]), parameters: Tensor([0.9]), steps: 1_000,
                              loss: loss, schedule: .binomial(snapshots: 32), inputs: forcing)
        // The same numbers, bitwise, on the packed engine.
        #expect(fast.loss == result.loss && fast.report.engine == .packed)
        #expect(fast.parameterGradient.doubles == result.parameterGradient.doubles && result.report.engine == .stepFunction)
    }

    @Test("Event-sourced runs")
    func eventSourced() throws {
        typealias Step = TensorStep<Tensor, Tensor, Tensor, NoOutput>
        let step = Step { s, x, k in (try (s * k).tanh() + x, NoOutput()) }
        let loss = Step.Loss.final { s in try s.sum() }
        let s0 = try Tensor.zeros([4]), θ = Tensor([0.9])
        let path = temporaryDirectory("docs-event-log") + "/run.adjlog"

        let log = try FileEventLog(path: path)
        let run = try EventSourcedRun(step, from: s0, parameters: θ, log: log, checkpointEvery: 25)
        for t in 0..<100 {
            try run.advance(input: try Tensor.full([4], sin(Double(t) * 0.1)),
                            events: [Event(kind: .external, step: 0, name: "door", values: [Double(t % 2)])])
        }
        try log.close()

        // Later, in another process: replay (every state hash checked) and differentiate after the fact.
        let recorded = try RecordedTrajectory(log: try FileEventLog(readingAt: path))
        let state = try recorded.replay(step, parameters: θ, like: s0)
        let result = try unroll(step, recorded: recorded, parameters: θ, template: s0, loss: loss,
                                schedule: .binomial(snapshots: 16))
        #expect(state.doubles == run.state.doubles && result.finalState.doubles == run.state.doubles)
    }

    @Test("Learned policies")
    func learnedPolicies() throws {
        var workload = try SyntheticWorkload.standard(requests: 8_000)
        var requests = try workload.readAll()
        NextAccess.annotate(&requests)                     // Belady's next-access times: the teacher
        var options = CacheTrainingOptions(capacity: 200)
        options.rounds = 1
        let trained = try CacheTraining.train(requests, options: options, traceName: "synthetic")
        var policy = trained.policy(capacity: 200)        // guarded by its validator when deployed
        let learned = CacheSimulation.run(&policy, requests: requests, mode: .unit)
        let lru = CacheSimulation.run(.lru, capacity: 200, requests: requests, mode: .unit)
        print("learned \(learned.missRatio), LRU \(lru.missRatio)")
        #expect(learned.requests == requests.count && lru.requests == requests.count)
    }

    @Test("Adding an operator")
    func addingAnOperator() throws {
        try CustomOperators.register(CustomOperator(
            name: "docs.xy2",                                                   // x·y²
            forward: { xs in try xs[0] * xs[1] * xs[1] },
            vjp: { xs, _, g in [try g * xs[1] * xs[1], try g * xs[0] * xs[1] * 2] },
            jvp: { xs, _, t in
                let dx = try t[0].map { try $0 * xs[1] * xs[1] }
                let dy = try t[1].map { try $0 * xs[0] * xs[1] * 2 }
                switch (dx, dy) {
                case let (dx?, dy?): return try dx + dy
                default: return dx ?? dy
                }
            }), replacing: true)
        let a = Tensor([1.0, 2.0]), b = Tensor([3.0, 4.0])
        let g = try gradient(at: a) { a in try Tensor.custom("docs.xy2", [a, b]).sum() }
        let check = try gradcheck({ try Tensor.custom("docs.xy2", $0).sum() }, at: [a, b], mode: .both)
        #expect(g.doubles == [9, 16] && check.passed)
    }

    @Test("Reproducibility")
    func reproducibility() throws {
        let key = RandomKey(seed: 42)
        let x = try Tensor.normal([100_000], key: key.fold(in: 1))      // the same key gives the same numbers
        let one = try Parallelism.withThreadCount(1) { try x.sum() }
        let eight = try Parallelism.withThreadCount(8) { try x.sum() }   // bitwise equal under .strict
        let fast = try ExecutionPolicy.with(ExecutionPolicy(determinism: .fast)) { try x.sum() }
        #expect(one.doubles == eight.doubles && abs(fast.doubles[0] - one.doubles[0]) < 1e-9)
    }

    @Test("each article's samples appear in this file")
    func samplesAreTested() throws {
        let here = URL(fileURLWithPath: #filePath)
        let catalog = here.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/Adjoint/Adjoint.docc")
        func normalized(_ text: Substring) -> String {
            text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "\n")
        }
        let source = normalized(Substring(try String(contentsOf: here, encoding: .utf8)))
        var samples = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: catalog.path) where name.hasSuffix(".md") {
            let text = try String(contentsOf: catalog.appendingPathComponent(name), encoding: .utf8)
            for block in text.components(separatedBy: "```swift\n").dropFirst() {
                let code = block.components(separatedBy: "```")[0]
                #expect(source.contains(normalized(Substring(code))), "\(name): a sample not run here:\n\(code)")
                samples += 1
            }
        }
        #expect(samples >= 6)
    }
}
