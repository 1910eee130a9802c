import AdjointAutodiff
import AdjointTensor

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay
/// (PyTorch's `SGD` without dampening).
///
/// With d = g + λ·w: `b ← μ·b + d` (b = d at the first step), then `w ← w − η·(d + μ·b)` with
/// Nesterov or `w ← w − η·b` without; μ = 0 is plain `w ← w − η·d`.
public struct SGD: Optimizer {
    public let schedule: LearningRateSchedule
    public let momentum: Double
    public let nesterov: Bool
    public let weightDecay: Double
    public private(set) var step = 0
    private var buffers: [String: Tensor] = [:]

    /// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` for an invalid schedule,
    ///   momentum outside [0, 1), negative weight decay, or Nesterov without momentum.
    public init(learningRate schedule: LearningRateSchedule, momentum: Double = 0, nesterov: Bool = false, weightDecay: Double = 0) throws {
        try schedule.validate()
        try require("momentum", momentum, { $0 >= 0 && $0 < 1 }, "a value in [0, 1)")
        try require("weight decay", weightDecay, { $0 >= 0 }, "a value ≥ 0")
        if nesterov && momentum == 0 {
            throw TrainingError.invalidOption(name: "nesterov", value: "true", expected: "a momentum > 0 (Nesterov needs momentum)")
        }
        self.schedule = schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.weightDecay = weightDecay
    }

    public var state: [String: Tensor] { Dictionary(uniqueKeysWithValues: buffers.map { ("momentum.\($0.key)", $0.value) }) }

    public var configuration: OptimizerConfiguration {
        .sgd(learningRate: schedule, momentum: momentum, nesterov: nesterov, weightDecay: weightDecay)
    }

    public mutating func restore(state: [String: Tensor], step: Int) throws {
        buffers = try stateBySlot(state, slots: ["momentum"], step: step)["momentum"]!
        self.step = step
    }

    public mutating func update<P: ParameterCollection>(_ parameters: inout P, along gradient: P) throws {
        let rate = schedule.value(at: step)
        var buffers = self.buffers
        try forEachParameter(&parameters, gradient) { name, w, g in
            let d = weightDecay == 0 ? g : try g + w * weightDecay
            var direction = d
            if momentum != 0 {
                let b = try buffers[name].map { try $0 * momentum + d } ?? d
                buffers[name] = b
                direction = nesterov ? try d + b * momentum : b
            }
            try w.multiplyAdd_(direction, direction.scalarLike(-rate))   // w + d·(−lr), one pass
        }
        self.buffers = buffers
        step += 1
    }
}
