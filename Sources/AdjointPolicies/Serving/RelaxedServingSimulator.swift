import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import Foundation

/// A differentiable fluid relaxation of the serving simulator over a window of requests, for
/// training the ``ServingScorer`` with `unroll`.
///
/// **State** `[p; d]` ∈ ℝ²ᴺ: prompt tokens still to prefill and output tokens still to generate,
/// per request of the window. **One step** is one iteration of fixed length δ (the cost model's
/// latency of an iteration that fills the token budget `B` beside a typical decode batch):
///
/// - a request that has arrived (`m = 1`) and finished its prefill decodes one token:
///   `dec = m·(1 − min(1, p))·min(1, d)`;
/// - the rest of the budget, `B′ = relu(B − Σ dec)`, goes to prefills in a **soft service
///   order**: request i gets `min(mᵢpᵢ, B′·πᵢ)` with `π = softmax(−s/τ)` over the requests with
///   prompt tokens left (lower score, larger share), and what that leaves of `B′` is shared the
///   same way among the demands still open — as τ → 0 the best-ranked requests take the budget
///   in order, as in the hard simulator's greedy fill;
/// - the step's output is the time the window's requests spend in the system during the step,
///   `δ/N · Σ mᵢ(1 − exp(−(pᵢ + dᵢ)/κ))` (κ = 4 tokens, a smooth "not finished"), whose sum over
///   the steps is the mean end-to-end latency (Little's law).
///
/// Scores use the ``ServingFeatures`` of the hard policy, computed from the state (tokens to
/// prefill, tokens generated) and the inputs (waiting time, prefix hits); the true output length
/// is the environment's, never a feature.
public enum RelaxedServingSimulator {
    public typealias Step = TensorStep<Tensor, Tensor, ServingScorer, Tensor>

    /// A window of requests, ready to unroll.
    public struct Window {
        public var requests: Int
        /// `[p₀; d₀]`: the prompts (less prefix hits) and the output lengths.
        public var initial: Tensor
        /// Per step [N, 3]: arrived (0/1), seconds waited, prefix-hit fraction.
        public var inputs: [Tensor]
        /// Output lengths [N] (the environment's: it decides when a request is done).
        public var outputs: Tensor
        /// Seconds per step.
        public var stepSeconds: Double
    }

    /// The window of `count` requests starting at `start` (arrivals rebased to its first), stepped
    /// until the fluid model has served them all (at most `maximumSteps`).
    public static func window(_ trace: [ServingRequest], start: Int, count: Int, cost: ServingCostModel, knobs: ServingKnobs,
                              maximumSteps: Int = 4000) throws -> Window {
        guard (0 ..< trace.count).contains(start), (1 ... 4096).contains(count), (1 ... 1 << 20).contains(maximumSteps) else {
            throw ServingTrainingError.invalidOptions("a relaxed window needs a start in 0 ..< \(trace.count) (got \(start)), 1 ... 4096 requests (got \(count)) "
                                                      + "and 1 ... 2^20 steps (got \(maximumSteps))")
        }
        let slice = Array(trace[start..<(start + Swift.min(trace.count - start, count))])
        let n = slice.count
        let budget = knobs.tokenBudget
        let typicalDecodes = Swift.min(knobs.maxBatch, Swift.max(1, budget / 4))
        let delta = cost.iterationMs(prefillTokens: Swift.max(1, budget - typicalDecodes), decodeBatch: typicalDecodes,
                                     decodeContext: typicalDecodes * 1024) / 1000
        let t0 = slice.first?.arrival ?? 0
        let span = (slice.last?.arrival ?? 0) - t0
        let prompts = slice.reduce(0) { $0 + $1.promptTokens }, longest = slice.map(\.outputTokens).max() ?? 0
        let steps = Swift.min(maximumSteps, Int((span / delta).rounded(.up)) + 2 * prompts / Swift.max(1, budget / 2) + longest + 8)
        var inputs: [Tensor] = []
        inputs.reserveCapacity(steps)
        var row = [Double](repeating: 0, count: n * 3)
        for t in 0..<steps {
            let now = Double(t) * delta
            for (k, r) in slice.enumerated() {
                let arrived = r.arrival - t0 <= now
                row[k * 3] = arrived ? 1 : 0
                row[k * 3 + 1] = arrived ? now - (r.arrival - t0) : 0
                row[k * 3 + 2] = 0
            }
            inputs.append(try Tensor(row, shape: [n, 3]))
        }
        let initial = slice.map { Double($0.promptTokens) } + slice.map { Double($0.outputTokens) }
        return Window(requests: n, initial: try Tensor(initial, shape: [2 * n]), inputs: inputs,
                      outputs: try Tensor(slice.map { Double($0.outputTokens) }, shape: [n]), stepSeconds: delta)
    }

    /// The relaxed step at temperature `τ` with token budget `budget`.
    public static func step(window: Window, budget: Double, temperature: Double, smoothing kappa: Double = 4) -> Step {
        let n = window.requests, delta = window.stepSeconds, outputs = window.outputs
        return Step { state, input, scorer in
            let p = try state.slice(starts: [0], ends: [n]), d = try state.slice(starts: [n], ends: [2 * n])
            let m = try input.slice(starts: [0, 0], ends: [n, 1]).reshaped([n])
            let waited = try input.slice(starts: [0, 1], ends: [n, 2]).reshaped([n])
            let prefix = try input.slice(starts: [0, 2], ends: [n, 3]).reshaped([n])
            let generated = try (outputs - d).relu()
            let x = try Tensor.stack([(p.relu() + 1).log() / Foundation.log(2.0), (generated + 1).log() / Foundation.log(2.0), prefix, waited], axis: 1)
            let s = try scorer.scores(x)
            let prefilled = try 1 - (1 - p).relu()                // min(1, p)
            let decoding = try m * (1 - prefilled) * (1 - (1 - d).relu())
            let left = try (budget - decoding.sum()).relu()
            let demand = try m * p
            // Soft service order: the budget is shared by softmax(−s/τ) over the requests with
            // prompt tokens to prefill, each taking at most its demand; what is left over is shared
            // again among the rest (two rounds of water filling). As τ → 0 the best-ranked request
            // takes the budget first, as in the hard simulator.
            func share(_ budget: Tensor, _ demand: Tensor) throws -> Tensor {
                let waiting = try demand.untracked.greater(0).cast(to: .float64)
                let weights = try (s / -temperature + (waiting - 1) * 1e9).softmax(axis: 0) * waiting
                return try demand - (demand - weights * budget).relu()   // min(demand, share)
            }
            let first = try share(left, demand)
            let served = try first + share((left - first.sum()).relu(), demand - first)
            let nextP = try p - served, nextD = try d - decoding
            let inSystem = try (m * (1 - ((nextP + nextD).relu() / -kappa).exp())).sum() * (delta / Double(n))
            return (try Tensor.concat([nextP, nextD], axis: 0), inSystem)
        }
    }

    /// The window's relaxed mean latency and its gradient with respect to the scorer.
    public static func valueWithGradient(_ scorer: ServingScorer, window: Window, knobs: ServingKnobs,
                                         temperature: Double) throws -> (value: Double, gradient: ServingScorer) {
        guard temperature.isFinite, temperature > 0 else { throw ServingTrainingError.invalidOptions("temperature \(temperature) must be finite and above 0") }
        let step = self.step(window: window, budget: Double(knobs.tokenBudget), temperature: temperature)
        let result = try unroll(step, from: window.initial, parameters: scorer, inputs: window.inputs,
                                loss: .perStep { _, y in y }, schedule: .binomial(snapshots: 16))
        return (result.loss, result.parameterGradient)
    }
}
