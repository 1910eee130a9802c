import Adjoint
import AdjointTestSupport
import Foundation
import Testing

/// Mean and standard error of per-sample estimates.
func meanAndStandardError(_ xs: [Double]) -> (mean: Double, se: Double) {
    let n = Double(xs.count)
    let mean = xs.reduce(0, +) / n
    let variance = xs.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
    return (mean, (variance / n).squareRoot())
}

@Suite("Effect boundaries and gradient estimators against closed forms")
struct EstimatorTests {
    /// Per-sample score-function gradients of E[cost(a)] for a Bernoulli decision with logit θ.
    static func bernoulliScores(theta: Double, baseline: Baseline, seeds: Int, perSeed: Int) throws -> [Double] {
        var out: [Double] = []
        for seed in 0..<seeds {
            var boundary = EffectBoundary("coin", semantics: .scoreFunction(baseline: baseline), key: RandomKey(seed: UInt64(seed)))
            for _ in 0..<perSeed {
                let g = try gradient(at: Tensor(theta)) { z in
                    let d = try boundary.decideBinary(logits: z)
                    let cost = try d.hard.item() == 1 ? Tensor(3.0) : Tensor(1.0)
                    return try boundary.objective(d, cost: cost)
                }
                out.append(try g.item())
            }
        }
        return out
    }

    @Test("score function on a Bernoulli decision is unbiased (mean within 3 standard errors), with and without a baseline")
    func bernoulliUnbiased() throws {
        let theta = 0.4, p = 1 / (1 + exp(-theta))
        let truth = p * (1 - p) * (3 - 1)
        let plain = meanAndStandardError(try Self.bernoulliScores(theta: theta, baseline: .none, seeds: 100, perSeed: 40))
        let averaged = meanAndStandardError(try Self.bernoulliScores(theta: theta, baseline: .movingAverage(decay: 0.9), seeds: 100, perSeed: 40))
        #expect(Swift.abs(plain.mean - truth) < 3 * plain.se, "\(plain) vs \(truth)")
        #expect(Swift.abs(averaged.mean - truth) < 3 * averaged.se, "\(averaged) vs \(truth)")
        #expect(averaged.se < plain.se, "the baseline should lower the variance")
    }

    @Test("a learned baseline tracks a context-dependent cost: still unbiased, lower variance than a moving average")
    func learnedBaseline() throws {
        let theta = -0.3, p = 1 / (1 + exp(-theta))
        let truth = p * (1 - p) * 2   // cost = context + 2·a, context ~ U(0, 10) independent of a
        func run(_ baseline: Baseline) throws -> (mean: Double, se: Double) {
            var samples: [Double] = []
            for seed in 0..<60 {
                var boundary = EffectBoundary("coin", semantics: .scoreFunction(baseline: baseline), key: RandomKey(seed: 500 + UInt64(seed)))
                var contexts = RandomStream(key: RandomKey(seed: 900 + UInt64(seed)))
                for _ in 0..<60 {
                    let c = try contexts.uniform([], high: 10).item()
                    let g = try gradient(at: Tensor(theta)) { z in
                        let d = try boundary.decideBinary(logits: z)
                        return try boundary.objective(d, cost: Tensor(c + 2 * (try d.hard.item())), context: [c])
                    }
                    samples.append(try g.item())
                }
            }
            return meanAndStandardError(samples)
        }
        let learned = try run(.learned(features: 1, learningRate: 0.01)), averaged = try run(.movingAverage(decay: 0.9))
        #expect(Swift.abs(learned.mean - truth) < 3 * learned.se, "\(learned) vs \(truth)")
        #expect(learned.se < averaged.se * 0.8, "learned \(learned.se), moving average \(averaged.se)")
        var wrong = EffectBoundary("coin", semantics: .scoreFunction(baseline: .learned(features: 2, learningRate: 0.1)), key: RandomKey(seed: 1))
        #expect(throws: TensorError.self) {
            try gradient(at: Tensor(0.0)) { z in try wrong.objective(try wrong.decideBinary(logits: z), cost: Tensor(1.0), context: [1]) }
        }
    }

    @Test("score function on a categorical decision is unbiased in every component")
    func categoricalUnbiased() throws {
        let logits = [0.2, -0.5, 1.0, 0.3], costs = [1.0, 4.0, 2.0, 0.5]
        let e = logits.map(exp), z = e.reduce(0, +), p = e.map { $0 / z }
        let expected = zip(p, costs).reduce(0) { $0 + $1.0 * $1.1 }
        let truth = zip(p, costs).map { $0 * ($1 - expected) }
        var samples: [[Double]] = []
        for seed in 0..<100 {
            var boundary = EffectBoundary("route", semantics: .scoreFunction(baseline: .movingAverage(decay: 0.8)), key: RandomKey(seed: 1000 + UInt64(seed)))
            for _ in 0..<40 {
                let g = try gradient(at: t(logits)) { z in
                    let d = try boundary.decide(logits: z)
                    return try boundary.objective(d, cost: Tensor(costs[Int(try d.choice.item())]))
                }
                samples.append(g.doubles)
            }
        }
        for k in 0..<4 {
            let (mean, se) = meanAndStandardError(samples.map { $0[k] })
            #expect(Swift.abs(mean - truth[k]) < 3 * se, "component \(k): \(mean) ± \(se) vs \(truth[k])")
        }
    }

    /// Per-draw relaxed (binary concrete) gradients of (y − 0.3)² at logit θ and temperature τ.
    static func relaxedGradients(theta: Double, temperature: Double, n: Int = 200_000) throws -> [Double] {
        var boundary = EffectBoundary("coin", semantics: .relaxed(temperature: temperature, form: .gumbelSoftmax), key: RandomKey(seed: 77))
        return try gradient(at: Tensor.full([n], theta)) { z in
            let d = try boundary.decideBinary(logits: z)
            return try (d.value - 0.3).pow(2).sum()
        }.doubles
    }

    @Test("relaxed gradients approach the gradient of the expectation as the temperature falls")
    func relaxedBias() throws {
        let theta = 0.5, p = 1 / (1 + exp(-theta))
        let truth = p * (1 - p) * (0.49 - 0.09)
        let temperatures = [2.0, 1, 0.5, 0.25, 0.1, 0.05, 0.02]
        let estimates = try temperatures.map { meanAndStandardError(try Self.relaxedGradients(theta: theta, temperature: $0)) }
        print("relaxed (binary concrete) gradient of E[(a − 0.3)²], true \(String(format: "%.4f", truth)): "
              + zip(temperatures, estimates).map { String(format: "τ=%.2f: %.4f ± %.4f", $0, $1.mean, $1.se) }.joined(separator: ", "))
        // Clearly biased at τ ≥ 1; at τ ≤ 0.05 consistent with the truth (within 3 standard errors of
        // 200,000 draws) while the variance grows like 1/τ. Between, the bias is O(τ) and changes sign.
        let bias = estimates.map { Swift.abs($0.mean - truth) }
        #expect(bias[0] > 5 * estimates[0].se && bias[1] > 5 * estimates[1].se)
        #expect(bias[0] > 3 * bias[1])
        #expect(bias[5] < 3 * estimates[5].se && bias[6] < 3 * estimates[6].se, "\(bias)")
    }

    @Test("straight-through is biased by a known amount for a nonlinear cost")
    func straightThroughBias() throws {
        // f(a) = (a − 0.3)², p = σ(θ): E[ĝ_ST] = p(1−p)(p·f′(1) + (1−p)·f′(0)) = p(1−p)(2p − 0.6),
        // while ∇E[f(a)] = p(1−p)(f(1) − f(0)) = 0.4·p(1−p). They agree only at p = 0.5.
        let theta = log(4.0), p = 0.8, n = 200_000
        var boundary = EffectBoundary("coin", semantics: .straightThrough, key: RandomKey(seed: 3))
        let estimate = try gradient(at: Tensor(theta)) { z in
            let d = try boundary.decideBinary(logits: z.broadcast(to: [n]))
            return try (d.value - 0.3).pow(2).mean()
        }.item()
        let straightThrough = p * (1 - p) * (2 * p - 0.6), truth = 0.4 * p * (1 - p)
        #expect(Swift.abs(estimate - straightThrough) < 0.002 && Swift.abs(estimate - truth) > 0.05, "\(estimate)")
    }

    @Test("SPSA agrees with finite differences on a smooth function")
    func spsa() throws {
        let a = t([2, 0.5, 0, 0, 0.1, 0.5, 1, 0.3, 0, 0, 0, 0.3, 1.5, 0.2, 0, 0, 0, 0.2, 1, 0.4, 0.1, 0, 0, 0.4, 3], [5, 5])
        func f(_ x: Tensor) throws -> Double {
            try (x.sin().sum() + (x.reshaped([1, 5]).matmul(a).matmul(x.reshaped([5, 1])) * 0.5).sum()).item()
        }
        let x = t([0.3, -0.2, 0.8, 0.1, -0.5])
        let h = 1e-5
        let fd = try (0..<5).map { i -> Double in
            var up = x.doubles, down = x.doubles
            up[i] += h; down[i] -= h
            return (try f(t(up)) - f(t(down))) / (2 * h)
        }
        var stream = RandomStream(key: RandomKey(seed: 11))
        let estimate = try SPSA.gradient(of: f, at: x, perturbation: 1e-3, samples: 4000, stream: &stream).doubles
        let error = zip(estimate, fd).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
        let norm = fd.map { $0 * $0 }.reduce(0, +).squareRoot()
        #expect(error < 0.05 * norm, "SPSA \(estimate) vs FD \(fd)")
        #expect(throws: TensorError.self) { try SPSA.gradient(of: f, at: x, perturbation: 0, samples: 1, stream: &stream) }
    }

    @Test("SPSA at the boundary, with common random numbers, estimates the gradient of the expected cost")
    func spsaBoundary() throws {
        let logits = [0.2, -0.5, 1.0, 0.3], costs = [1.0, 4.0, 2.0, 0.5]
        let e = logits.map(exp), z = e.reduce(0, +), p = e.map { $0 / z }
        let expected = zip(p, costs).reduce(0) { $0 + $1.0 * $1.1 }
        let truth = zip(p, costs).map { $0 * ($1 - expected) }
        var boundary = EffectBoundary("route", semantics: .spsa(perturbation: 0.3, samples: 4), key: RandomKey(seed: 31))
        var samples: [[Double]] = []
        func cost(_ hard: Tensor) throws -> Double { zip(hard.doubles, costs).reduce(0) { $0 + $1.0 * $1.1 } }
        for _ in 0..<6000 {
            let g = try gradient(at: t(logits)) { z in
                let d = try boundary.decide(logits: z)
                return try boundary.spsaObjective(d, logits: z, cost: cost)
            }
            samples.append(g.doubles)
        }
        for k in 0..<4 {
            let (mean, se) = meanAndStandardError(samples.map { $0[k] })
            #expect(Swift.abs(mean - truth[k]) < 3 * se + 0.01, "component \(k): \(mean) ± \(se) vs \(truth[k])")
        }
        var wrong = EffectBoundary("x", semantics: .stop, key: RandomKey(seed: 1))
        #expect(throws: TensorError.self) { try wrong.spsaObjective(try wrong.decide(logits: t(logits)), logits: t(logits), cost: cost) }
    }

    @Test("a surrogate fitted to a linear cost passes back the exact gradient of the expected cost")
    func surrogate() throws {
        let w = [1.0, 4.0, 2.0], logits = t([0.1, -0.3, 0.4])
        var boundary = EffectBoundary("route", semantics: .surrogate(LinearSurrogate(ridge: 1e-9)), key: RandomKey(seed: 5))
        var g = Tensor(0.0)
        for _ in 0..<64 {
            g = try gradient(at: logits) { z in
                let d = try boundary.decide(logits: z)
                return try boundary.objective(d, cost: Tensor(w[Int(try d.choice.item())]))
            }
        }
        let p = try logits.softmax().doubles
        let expected = zip(p, w).reduce(0) { $0 + $1.0 * $1.1 }
        #expect(isClose(g.doubles, zip(p, w).map { $0 * ($1 - expected) }, tolerance: 1e-5), "\(g.doubles)")
    }

    @Test("decisions replay from the stream; deployment is the hard argmax and draws nothing")
    func replayAndDeployment() throws {
        let logits = t([0.1, 0.5, -0.2, 0.3])
        var a = EffectBoundary("x", semantics: .stop, key: RandomKey(seed: 9))
        var b = EffectBoundary("x", semantics: .stop, key: RandomKey(seed: 9))
        let first = try (0..<20).map { _ in try a.decide(logits: logits).choice.item() }
        #expect(first == (try (0..<20).map { _ in try b.decide(logits: logits).choice.item() }))
        #expect(Set(first).count > 1)
        let d = try b.decide(logits: logits)
        let events = d.events(step: 7, boundary: b), chosen = Int(try d.choice.item())
        #expect(events.map(\.kind) == [.random, .decision] && events[1].choice == chosen && events[0].randomPosition?.counter == d.randomCounter)
        var c = EffectBoundary("x", semantics: .stop, key: RandomKey(seed: 9))
        c.stream = RandomStream(key: RandomKey(seed: 9), counter: a.stream.counter - 4 * 5)
        #expect(try (0..<5).map { _ in try c.decide(logits: logits).choice.item() } == Array(first[15...]))
        let before = a.stream.counter
        let deployed = try a.decide(logits: logits, mode: .deployment)
        #expect(try deployed.choice.item() == 1 && a.stream.counter == before && bitwiseEqual(deployed.value, deployed.hard))
        let binary = try a.decideBinary(logits: t([0.2, -0.1]), mode: .deployment)
        #expect(binary.hard.doubles == [1, 0])
        var bad = EffectBoundary("x", semantics: .relaxed(temperature: 0, form: .softmax), key: RandomKey(seed: 1))
        #expect(throws: TensorError.self) { try bad.decide(logits: logits) }
    }

    struct Capacity: DecisionValidator {
        func validate(_ proposal: Int, in used: (used: Int, capacity: Int, pinned: Set<Int>)) -> Verdict<Int> {
            if used.pinned.contains(proposal) {
                let other = (0..<10).first { !used.pinned.contains($0) }
                return other.map { .repair($0, reason: "pinned") } ?? .refuse(reason: "everything pinned")
            }
            return .accept
        }
    }

    @Test("validators accept, repair or refuse, and count why")
    func validators() throws {
        var guarded = GuardedDecisions(Capacity())
        #expect(guarded.check(3, in: (5, 8, [1])) == 3)
        #expect(guarded.check(1, in: (5, 8, [1])) == 0)
        #expect(guarded.check(1, in: (5, 8, Set(0..<10))) == nil)
        #expect(guarded.metrics.accepted == 1 && guarded.metrics.repaired == 1 && guarded.metrics.refused == 1)
        #expect(guarded.metrics.reasons == ["pinned": 1, "everything pinned": 1] && guarded.metrics.total == 3)
    }
}
