import AdjointAutodiff
import AdjointTensor

/// How gradients cross a discrete action: declared at the boundary, used in training; deployment
/// always takes the hard decision.
public enum DerivativeSemantics: Sendable, CustomStringConvertible {
    /// No gradient through the action.
    case stop
    /// Forward: the hard (sampled) action; backward: as if it were the probabilities
    /// (`hard + p − stop(p)`). Biased unless the cost is linear in the action.
    case straightThrough
    /// Forward and backward through a continuous relaxation at `temperature`.
    case relaxed(temperature: Double, form: Relaxation)
    /// REINFORCE: the objective gets `(cost − b)·∇log p(a)`; unbiased for the expected cost.
    case scoreFunction(baseline: Baseline)
    /// Finite perturbations of the logits with common random numbers
    /// (``EffectBoundary/spsaObjective(_:logits:cost:)``), or of any parameters (``SPSA``).
    case spsa(perturbation: Double, samples: Int)
    /// The gradient of a differentiable cost model fitted to observed (context, action, cost).
    case surrogate(LinearSurrogate)

    public var description: String {
        switch self {
        case .stop: return "stop"
        case .straightThrough: return "straightThrough"
        case let .relaxed(t, form): return "relaxed(\(form), temperature: \(t))"
        case let .scoreFunction(baseline): return "scoreFunction(baseline: \(baseline))"
        case let .spsa(c, n): return "spsa(perturbation: \(c), samples: \(n))"
        case .surrogate: return "surrogate"
        }
    }
}

/// Continuous stand-ins for a discrete choice.
public enum Relaxation: String, Sendable {
    /// `softmax(z/τ)` (categorical) — deterministic.
    case softmax
    /// `sigmoid(z/τ)` (binary) — deterministic.
    case sigmoid
    /// Gumbel-softmax / binary concrete: `softmax((z + g)/τ)`, g Gumbel noise from the boundary's
    /// stream (for binary decisions, `sigmoid((z + logistic noise)/τ)`). As τ → 0 its expectation
    /// approaches the discrete one.
    case gumbelSoftmax
}

/// The baseline a score-function estimator subtracts from the cost (it lowers variance without
/// adding bias, because it does not depend on the sampled action).
public enum Baseline: Sendable, CustomStringConvertible {
    case none
    /// An exponential moving average of past costs: `b ← decay·b + (1 − decay)·cost`.
    case movingAverage(decay: Double)
    /// A linear function of the context, `b = w·context + w₀`, fitted online by SGD on (cost − b)².
    case learned(features: Int, learningRate: Double)

    public var description: String {
        switch self {
        case .none: return "none"
        case let .movingAverage(decay): return "movingAverage(decay: \(decay))"
        case let .learned(features, rate): return "learned(features: \(features), learningRate: \(rate))"
        }
    }
}

/// Training uses an estimator; deployment takes the hard decision.
public enum DecisionMode: Sendable { case training, deployment }

/// One decision taken at an ``EffectBoundary``.
public struct Decision {
    /// The hard action: a one-hot tensor (categorical) or 0/1 (binary), untracked.
    public var hard: Tensor
    /// Indices of the chosen options (categorical: the last axis removed) or the 0/1 values.
    public var choice: Tensor
    /// What the system should consume: the hard action with the boundary's derivative attached
    /// (straight-through, relaxed), or the hard action itself.
    public var value: Tensor
    /// `log p(hard)` summed over the decision's elements (tracked), for score-function objectives.
    public var logProbability: Tensor
    /// The action probabilities (tracked).
    public var probabilities: Tensor
    /// Position of the boundary's random stream before this decision (for logs and replays).
    public var randomCounter: UInt64
    /// The uniforms the decision drew (nil in deployment), so it can be re-taken at other logits
    /// with common random numbers (SPSA).
    public var noise: Tensor?
    /// Whether the decision is binary.
    public var isBinary: Bool

    /// The records of this decision for an ``EventLog``: the stream position it drew from and,
    /// for a single categorical or binary choice, the choice.
    public func events(step: Int, boundary: EffectBoundary) -> [Event] {
        var out = [Event.random(step: step, name: boundary.name, key: boundary.stream.key, counter: randomCounter)]
        if choice.elementCount == 1, let value = try? choice.untracked.item() {
            out.append(Event.decision(step: step, name: boundary.name, choice: Int(value), options: hard.elementCount == 1 ? 2 : hard.elementCount))
        }
        return out
    }
}

/// An explicit boundary around a non-differentiable action (evict, route, send, drop): it samples
/// or takes the action, and attaches the gradient its ``DerivativeSemantics`` declares.
///
/// All randomness comes from ``stream`` (keyed Philox with an explicit counter), so a replay that
/// restores the stream draws the same actions.
public struct EffectBoundary {
    public var name: String
    public var semantics: DerivativeSemantics
    public var stream: RandomStream
    /// The moving-average baseline's value, or the learned baseline's weights (last = intercept).
    public private(set) var baselineState: [Double]
    /// Observations the surrogate was fitted on: (context ++ action probabilities, cost).
    public private(set) var observations: [(features: [Double], cost: Double)] = []

    public init(_ name: String, semantics: DerivativeSemantics, key: RandomKey) {
        self.name = name
        self.semantics = semantics
        self.stream = RandomStream(key: key)
        switch semantics {
        case let .scoreFunction(.learned(features, _)): baselineState = [Double](repeating: 0, count: features + 1)
        case .scoreFunction(.movingAverage): baselineState = []
        default: baselineState = []
        }
    }

    /// A categorical decision over the last axis of `logits`.
    public mutating func decide(logits: Tensor, mode: DecisionMode = .training) throws -> Decision {
        try decide(logits: logits, binary: false, mode: mode)
    }

    /// Independent binary decisions, `P(1) = sigmoid(logits)` elementwise.
    public mutating func decideBinary(logits: Tensor, mode: DecisionMode = .training) throws -> Decision {
        try decide(logits: logits, binary: true, mode: mode)
    }

    private mutating func decide(logits z: Tensor, binary: Bool, mode: DecisionMode) throws -> Decision {
        let counter = stream.counter
        let p = binary ? try z.sigmoid() : try z.softmax(axis: -1)
        let depth = binary ? 1 : z.shape.last ?? 1
        // One uniform per element: Gumbel-max for categorical, inverse CDF for binary.
        let u = mode == .training ? try stream.uniform(z.shape, low: 1e-12, high: 1, dtype: z.dtype).untracked : nil
        let zd = z.untracked
        let hard: Tensor, choice: Tensor
        if binary {
            if let u {
                hard = try u.less(p.untracked).cast(to: z.dtype)
            } else {
                hard = try zd.greater(zd.scalarLike(0)).cast(to: z.dtype)
            }
            choice = hard
        } else {
            let scores = try u.map { u in try zd - (try (u.log().neg()).log()) } ?? zd   // z + Gumbel
            choice = try scores.argmax(axis: -1)
            hard = try choice.oneHot(depth: depth, dtype: z.dtype)
        }
        let logProbability: Tensor = binary
            ? try (hard * z.neg().softplus() + (1 - hard) * z.softplus()).neg().sum()   // a·log σ(z) + (1−a)·log σ(−z)
            : try (hard * z.logSoftmax(axis: -1)).sum()
        var value = hard
        if mode == .training {
            switch semantics {
            case .straightThrough:
                value = try hard + (p - p.untracked)
            case let .relaxed(temperature, form):
                value = try relax(z, binary: binary, temperature: temperature, form: form, noise: u!)
            case .stop, .scoreFunction, .spsa, .surrogate:
                break
            }
        }
        return Decision(hard: hard, choice: choice, value: value, logProbability: logProbability, probabilities: p,
                        randomCounter: counter, noise: u, isBinary: binary)
    }

    /// The hard action `decision` would have been at `logits`, with the same random numbers.
    static func hardAction(_ decision: Decision, at z: Tensor) throws -> Tensor {
        let zd = z.untracked
        guard let u = decision.noise else {
            return decision.isBinary ? try zd.greater(zd.scalarLike(0)).cast(to: z.dtype)
                                     : try zd.argmax(axis: -1).oneHot(depth: z.shape.last ?? 1, dtype: z.dtype)
        }
        if decision.isBinary { return try u.less(zd.sigmoid()).cast(to: z.dtype) }
        return try (zd - (try u.log().neg()).log()).argmax(axis: -1).oneHot(depth: z.shape.last ?? 1, dtype: z.dtype)
    }

    /// The objective for ``DerivativeSemantics/spsa(perturbation:samples:)``: SPSA on the logits
    /// with common random numbers. Each sample draws Δ = ±1 per logit from the boundary's stream,
    /// re-takes the decision at `z ± cΔ` with the decision's own uniforms, and evaluates `cost` on
    /// both hard actions; ĝ = mean of `(cost₊ − cost₋)/(2c)·Δ` estimates ∂E[cost]/∂z (bias O(c²) for
    /// the smoothed expectation). The result's value is `cost(hard)` and its gradient flows into the
    /// logits as ĝ (and on to whatever produced them).
    ///
    /// - Throws: `TensorError.invalidArgument` when the boundary's semantics are not `.spsa`.
    public mutating func spsaObjective(_ decision: Decision, logits z: Tensor, cost: (Tensor) throws -> Double) throws -> Tensor {
        guard case let .spsa(c, samples) = semantics, c > 0, samples >= 1 else {
            throw TensorError.invalidArgument(op: "EffectBoundary(\(name))", detail: "spsaObjective needs .spsa semantics with perturbation > 0 and samples ≥ 1, not \(semantics)")
        }
        let base = z.untracked
        var estimate = try base.zerosLike()
        for _ in 0..<samples {
            let delta = try stream.uniform(base.shape, dtype: base.dtype).less(base.scalarLike(0.5)).cast(to: base.dtype) * 2 - 1
            let up = try cost(Self.hardAction(decision, at: base + delta * c))
            let down = try cost(Self.hardAction(decision, at: base - delta * c))
            estimate = try estimate + delta * ((up - down) / (2 * c * Double(samples)))
        }
        let observed = try cost(decision.hard)
        return try (estimate * (z - base)).sum() + observed
    }

    private func relax(_ z: Tensor, binary: Bool, temperature: Double, form: Relaxation, noise u: Tensor) throws -> Tensor {
        guard temperature > 0, temperature.isFinite else {
            throw TensorError.invalidArgument(op: "EffectBoundary(\(name))", detail: "temperature \(temperature) must be finite and > 0")
        }
        switch (form, binary) {
        case (.softmax, false): return try (z / temperature).softmax(axis: -1)
        case (.sigmoid, true), (.softmax, true): return try (z / temperature).sigmoid()
        case (.sigmoid, false): return try (z / temperature).softmax(axis: -1)
        case (.gumbelSoftmax, false): return try ((z - (try u.log().neg()).log()) / temperature).softmax(axis: -1)
        case (.gumbelSoftmax, true): return try ((z + u.log() - (1 - u).log()) / temperature).sigmoid()
        }
    }

    /// The scalar to differentiate for a decision whose consequence cost `cost` (a scalar tensor,
    /// tracked through whatever the system did with ``Decision/value``). Its value is the cost; its
    /// gradient is the boundary's estimator:
    ///
    /// - score function: `∇cost + (cost − b)·∇log p(a)`, then the baseline learns from the cost;
    /// - surrogate: `∇cost + ∇ŝ(context, p)`, ŝ the linear model fitted to past (context, action,
    ///   cost) (the observation is added, and the model refitted every 32 observations);
    /// - the others: `∇cost` (what flows through ``Decision/value``).
    ///
    /// - Parameters:
    ///   - decision: the decision ``decide(logits:mode:)`` returned.
    ///   - cost: the consequence's cost, a scalar tensor tracked through ``Decision/value``.
    ///   - context: features of the state the decision was taken in (learned baseline,
    ///     surrogate); empty when unused.
    public mutating func objective(_ decision: Decision, cost: Tensor, context: [Double] = []) throws -> Tensor {
        let observed = try cost.untracked.item()
        switch semantics {
        case let .scoreFunction(baseline):
            let b = try baselineValue(baseline, context: context)
            let weight = try cost.scalarLike(observed - b)
            let logp = decision.logProbability
            try updateBaseline(baseline, cost: observed, context: context, prediction: b)
            return try cost + weight * (logp - logp.untracked)
        case let .surrogate(model):
            let features = context + decision.hard.untracked.doubles
            observations.append((features, observed))
            if observations.count % 32 == 0 || model.weights.isEmpty {
                semantics = .surrogate(try LinearSurrogate.fit(observations, ridge: model.ridge))
            }
            guard case let .surrogate(fitted) = semantics, !fitted.weights.isEmpty else { return cost }
            let predicted = try fitted.predict(context: context, action: decision.probabilities.reshaped([-1]))
            return try cost + (predicted - predicted.untracked)
        default:
            return cost
        }
    }

    private func baselineValue(_ baseline: Baseline, context: [Double]) throws -> Double {
        switch baseline {
        case .none: return 0
        case .movingAverage: return baselineState.first ?? 0
        case let .learned(features, _):
            guard context.count == features else {
                throw TensorError.invalidArgument(op: "EffectBoundary(\(name))", detail: "the learned baseline takes \(features) context features, got \(context.count)")
            }
            return zip(context, baselineState).reduce(baselineState[features]) { $0 + $1.0 * $1.1 }
        }
    }

    private mutating func updateBaseline(_ baseline: Baseline, cost: Double, context: [Double], prediction: Double) throws {
        switch baseline {
        case .none: break
        case let .movingAverage(decay):
            baselineState = [baselineState.isEmpty ? cost : decay * baselineState[0] + (1 - decay) * cost]
        case let .learned(features, rate):
            let error = prediction - cost
            for i in 0..<features { baselineState[i] -= rate * error * context[i] }
            baselineState[features] -= rate * error
        }
    }
}
