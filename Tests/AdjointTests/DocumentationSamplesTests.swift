import _Differentiation
import Adjoint
import AdjointSwiftAD
import AdjointTestSupport
import Foundation
import Testing

// "Coming from NumPy, JAX or PyTorch": the samples declared at file scope (macros that add
// conformances apply to file-scope types).
@ParameterCollection
struct Mlp {
    var hidden: Tensor
    var output: Tensor
    @ParameterIgnored var activation = "tanh"
}

@differentiable(reverse)
func energy(_ x: Tensor) -> Tensor {
    let t = x.trapping
    return ((t * t).sum() + t.sin().sum()).tensor
}

@SwiftADState
struct Cart: Differentiable, Codable {
    var position: Float
    var velocity: Float
}

@SwiftADStepBody
struct Damped {
    var dt: Float
    @differentiable(reverse, wrt: (state, parameters))
    func callAsFunction(_ state: Cart, _ input: Float, _ parameters: Float) -> Cart {
        Cart(position: state.position + dt * state.velocity,
             velocity: state.velocity + dt * (input - parameters * state.velocity))
    }
}

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

    @Test("Coming from NumPy, JAX or PyTorch")
    func comingFrom() throws {
        do {
            let x = Tensor([Float(-2), 0.5, 3])
            let scaled = try x * Float.pi                           // float32, exactly Float.pi
            let positive = try x.greater(0)                         // bool [false, true, true]
            let relu = try Tensor.select(positive, x, 0.0)          // [0, 0.5, 3]
            let clipped = try x.clamped(to: Float(-1) ... Float(1)) // [-1, 0.5, 1]
            let capped = try x.maximum(0).minimum(2)
            #expect(scaled.scalars(as: Float.self)[2] == 3 * Float.pi && positive.scalars(as: Bool.self) == [false, true, true])
            #expect(relu.doubles == [0, 0.5, 3] && clipped.doubles == [-1, 0.5, 1] && capped.doubles == [0, 0.5, 2])
        }
        do {
            let z = try Tensor.arange(0, 12).reshaped([3, 4])
            let labels = Tensor([Int64(2), 0, -1])
            let picked = try z[Tensor.arange(0, 3, dtype: .int64), labels]   // [2, 4, 11]
            let everyOther = try z[.all, .slice(step: 2)]                    // columns 0 and 2
            let reversed = try z[.slice(step: -1)]                           // rows 2, 1, 0
            let column = try z.takeAlong(Tensor([Int64(1), 3, 0], shape: [3, 1]), axis: 1)
            let counts = try Tensor.zeros([4]).at[Tensor([Int64(0), 0, 3])].add(1.0)   // [2, 0, 0, 1]
            let g = try gradient(at: z) { z in try z[.all, .slice(step: 2)].sum() }      // ones where selected
            #expect(picked.doubles == [2, 4, 11] && everyOther.shape == [3, 2] && reversed.doubles.prefix(4) == [8, 9, 10, 11])
            #expect(column.doubles == [1, 7, 8] && counts.doubles == [2, 0, 0, 1] && g.doubles == [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0])
        }
        do {
            let a = try Tensor([1.0, 2, 3, 4, 5, 6], shape: [2, 3])
            let v = Tensor([1.0, 0, -1])
            let av = try a.matmul(v)   // shape [2]: [-2, -2]
            let vv = try v.matmul(v)   // rank 0: 2
            #expect(av.doubles == [-2, -2] && vv.shape == [] && vv.doubles == [2])
        }
        do {
            func message(_ body: () throws -> Any) -> String {
                do { _ = try body(); return "no error" } catch { return "\(error)" }
            }
            let grid = try Tensor.zeros([3, 4])
            print(message { try grid[.all, 2..<6] })
            // subscript: the slice 2..<6 on axis 1 does not fit a tensor of shape [3,4]: axis 1 has 4 elements, …
            print(message { try Tensor.concat([Tensor(1.0), Tensor(2.0)]) })
            // layout.concat: invalid argument: rank-0 tensors have no axis to join along; use stack …
            print(message { try hessian(of: { x in try x * 2 }, at: Tensor([1.0, 2])) })
            // hessian needs a scalar-valued function, but it returned shape [2]; …
            #expect(message { try grid[.all, 2..<6] }.hasPrefix("subscript: the slice 2..<6 on axis 1 does not fit a tensor of shape [3,4]: axis 1 has 4 elements"))
            #expect(message { try Tensor.concat([Tensor(1.0), Tensor(2.0)]) }.hasPrefix("layout.concat: invalid argument: rank-0 tensors have no axis to join along; use stack"))
            #expect(message { try hessian(of: { x in try x * 2 }, at: Tensor([1.0, 2])) }.hasPrefix("hessian needs a scalar-valued function, but it returned shape [2];"))
        }
        do {
            let decay = TrajectoryLoss<Tensor, NoOutput>.final { s in try s.pow(2).sum() }
            let autonomous = try CompiledStep(loss: decay, state: Tensor([1.0, 0.5]), parameters: Tensor([0.9])) { s, k in
                (try (s * k).tanh(), NoOutput())
            }
            let run = try unroll(autonomous, from: Tensor([1.0, 0.5]), parameters: Tensor([0.9]), steps: 200, loss: decay)
            #expect(run.report.engine == .packed && run.parameterGradient.shape == [1])
        }
        do {
            let (e, pullback) = valueWithPullback(at: Tensor([0.5, -1.0]), of: energy)
            let byCompiler = pullback(TensorTangent(try e.onesLike())).tensor!
            let byAdjoint = try gradient(at: Tensor([0.5, -1.0])) { x in try (x * x).sum() + x.sin().sum() }
            #expect(isClose(byCompiler.doubles, byAdjoint.doubles, tolerance: 1e-15))
        }
        do {
            let key = RandomKey(seed: 3)
            let (w, b) = (try Tensor.normal([3, 2], key: key), try Tensor.zeros([2]))
            let (x, y) = (try Tensor.normal([5, 3], key: key.fold(in: 1)), try Tensor.normal([5, 2], key: key.fold(in: 2)))
            func loss(_ w: Tensor, _ b: Tensor, x: Tensor, y: Tensor) -> Tensor {
                let h = (x.trapping.matmul(w.trapping) + b.trapping).tanh()
                return (h - y.trapping).pow(2).mean().tensor
            }
            let (dw, db) = try gradient(at: w, b) { w, b in loss(w, b, x: x, y: y) }
            let (ew, eb) = try gradient(at: w, b) { w, b in try ((x.matmul(w) + b).tanh() - y).pow(2).mean() }
            #expect(dw.doubles == ew.doubles && db.doubles == eb.doubles)
        }
        do {
            var mlp = Mlp(hidden: try Tensor.ones([2, 2]), output: try Tensor.ones([2]))
            #expect(mlp.namedTensors.map(\.name) == ["hidden", "output"] && mlp.activation == "tanh")
            mlp.visitTensors { _, t in t = try! t * 2 }
            #expect(mlp.output.doubles == [2, 2])
        }
        do {
            let scan = Scan<Tensor, Tensor, Tensor, Tensor>(steps: 500, inputs: { t in Tensor([0.1 * Double(t % 4)]) }) { s, x, k in
                let next = try (s * k[0]).tanh() + x * k[1]
                return (next, next)
            }
            let loss = TrajectoryLoss<Tensor, Tensor>.both(perStep: { _, y in try y.pow(2).sum() }, final: { s in try s.sum() })
            let k = Tensor([0.9, 0.5]), start: (Tensor) throws -> Tensor = { k in try k[..<1] * 2 }   // s[0] = 2·k[0]
            let result = try scan.valueWithGradient(from: start, parameters: k, loss: loss, schedule: .binomial(snapshots: 10))
            let forward = try scan.jvp(from: start, parameters: k, direction: Tensor([1.0, 0]), loss: loss)
            let second = try scan.hvp(from: start, parameters: k, direction: Tensor([1.0, 0]), loss: loss, schedule: .binomial(snapshots: 10))
            #expect(isClose([forward.derivative], [result.parameterGradient.doubles[0]], tolerance: 1e-11))
            #expect(isClose(second.gradient.doubles, result.parameterGradient.doubles) && second.hvp.shape == [2])
            #expect(result.report.peakSnapshots <= 10)
        }
        do {
            let cart = Cart(position: 1, velocity: -2)
            #expect(cart.snapshotByteCount == 8 && cart.zeroTangent == .zero)
            var h1 = StateHasher(), h2 = StateHasher()
            cart.hash(into: &h1)
            Cart(position: 1, velocity: 2).hash(into: &h2)
            #expect(h1.finalize() != h2.finalize())
        }
        do {
            let damped = try unroll(SwiftADBodyStep(Damped(dt: 0.01)), from: Cart(position: 1, velocity: 0), parameters: Float(0.5),
                                    steps: 100, loss: .final { s in Double(s.position * s.position) }, schedule: .storeAll) { _ in Float(1) }
            print(damped.loss, damped.parameterGradient, damped.report.engine)   // engine: loop
            // The same run step by step, and by central differences in the damping.
            let stepwise = try unroll(SwiftADBodyStep(Damped(dt: 0.01)), from: Cart(position: 1, velocity: 0), parameters: Float(0.5),
                                      steps: 100, loss: .final { s in Double(s.position * s.position) }, schedule: .binomial(snapshots: 4),
                                      options: UnrollOptions(engine: .stepFunction)) { _ in Float(1) }
            #expect(damped.report.engine == .loop && stepwise.report.engine == .stepFunction)
            #expect(damped.loss == stepwise.loss && damped.parameterGradient == stepwise.parameterGradient)
            func final(_ c: Float) -> Double {
                var s = Cart(position: 1, velocity: 0)
                for _ in 0..<100 { s = Damped(dt: 0.01)(s, 1, c) }
                return Double(s.position * s.position)
            }
            let h: Float = 1e-2
            let central = (final(0.5 + h) - final(0.5 - h)) / Double(2 * h)
            #expect(damped.parameterGradient < 0 && abs(Double(damped.parameterGradient) - central) < 1e-3 * abs(central))
        }
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
