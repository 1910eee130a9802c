import AdjointAutodiff
import AdjointTensor
import Foundation

/// Adam (Kingma & Ba) with L2 weight decay added to the gradient, as PyTorch's `Adam`; see ``AdamW``
/// for decoupled decay.
///
/// With d = g + λ·w and t = step + 1: `m ← β₁m + (1−β₁)d`, `v ← β₂v + (1−β₂)d²`,
/// `w ← w − η · (m / (1−β₁ᵗ)) / (√(v / (1−β₂ᵗ)) + ε)`.
public struct Adam: Optimizer {
    var core: AdamCore
    public var schedule: LearningRateSchedule { core.schedule }
    public var step: Int { core.step }
    public var state: [String: Tensor] { core.state }
    public var configuration: OptimizerConfiguration {
        .adam(learningRate: core.schedule, beta1: core.beta1, beta2: core.beta2, epsilon: core.epsilon, weightDecay: core.weightDecay)
    }

    public mutating func restore(state: [String: Tensor], step: Int) throws { try core.restore(state, step: step) }

    public init(learningRate schedule: LearningRateSchedule, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0) throws {
        core = try AdamCore(schedule: schedule, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, decoupled: false)
    }

    public mutating func update<P: ParameterCollection>(_ parameters: inout P, along gradient: P) throws {
        try core.update(&parameters, gradient)
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), as PyTorch's `AdamW`: before the Adam
/// step, `w ← w·(1 − η·λ)`; the moments see the raw gradient.
public struct AdamW: Optimizer {
    var core: AdamCore
    public var schedule: LearningRateSchedule { core.schedule }
    public var step: Int { core.step }
    public var state: [String: Tensor] { core.state }
    public var configuration: OptimizerConfiguration {
        .adamW(learningRate: core.schedule, beta1: core.beta1, beta2: core.beta2, epsilon: core.epsilon, weightDecay: core.weightDecay)
    }

    public mutating func restore(state: [String: Tensor], step: Int) throws { try core.restore(state, step: step) }

    public init(learningRate schedule: LearningRateSchedule, beta1: Double = 0.9, beta2: Double = 0.999,
                epsilon: Double = 1e-8, weightDecay: Double = 0.01) throws {
        core = try AdamCore(schedule: schedule, beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: weightDecay, decoupled: true)
    }

    public mutating func update<P: ParameterCollection>(_ parameters: inout P, along gradient: P) throws {
        try core.update(&parameters, gradient)
    }
}

/// The update shared by ``Adam`` and ``AdamW``.
struct AdamCore {
    let schedule: LearningRateSchedule
    let beta1, beta2, epsilon, weightDecay: Double
    let decoupled: Bool
    private(set) var step = 0
    private var first: [String: Tensor] = [:]
    private var second: [String: Tensor] = [:]

    init(schedule: LearningRateSchedule, beta1: Double, beta2: Double, epsilon: Double, weightDecay: Double, decoupled: Bool) throws {
        try schedule.validate()
        try require("beta1", beta1, { $0 >= 0 && $0 < 1 }, "a value in [0, 1)")
        try require("beta2", beta2, { $0 >= 0 && $0 < 1 }, "a value in [0, 1)")
        try require("epsilon", epsilon, { $0 > 0 }, "a value > 0")
        try require("weight decay", weightDecay, { $0 >= 0 }, "a value ≥ 0")
        self.schedule = schedule
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupled = decoupled
    }

    var state: [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, m) in first { out["m.\(name)"] = m }
        for (name, v) in second { out["v.\(name)"] = v }
        return out
    }

    mutating func restore(_ state: [String: Tensor], step: Int) throws {
        let slots = try stateBySlot(state, slots: ["m", "v"], step: step)
        first = slots["m"]!
        second = slots["v"]!
        self.step = step
    }

    mutating func update<P: ParameterCollection>(_ parameters: inout P, _ gradient: P) throws {
        let rate = schedule.value(at: step)
        let t = Double(step + 1)
        let correction1 = 1 - Foundation.pow(beta1, t), correction2 = 1 - Foundation.pow(beta2, t)
        var first = self.first, second = self.second
        try forEachParameter(&parameters, gradient) { name, w, g in
            var d = g
            if weightDecay != 0 {
                if decoupled { try w.mul_(w.scalarLike(1 - rate * weightDecay)) } else { d = try g + w * weightDecay }
            }
            let m = try first[name].map { try $0 * beta1 + d * (1 - beta1) } ?? d * (1 - beta1)
            let v = try second[name].map { try $0 * beta2 + d * d * (1 - beta2) } ?? d * d * (1 - beta2)
            first[name] = m
            second[name] = v
            let denominator = try (v / correction2).sqrt() + epsilon
            let delta = try (m / correction1) / denominator
            try w.multiplyAdd_(delta, delta.scalarLike(-rate))   // w + delta·(−lr), one pass
        }
        self.first = first
        self.second = second
        step += 1
    }
}
