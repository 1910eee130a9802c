import Foundation

/// A learning rate as a function of the optimizer step (counted from 0). Schedules are values: they
/// compare, print and serialize, so a checkpoint can record the one in use.
public indirect enum LearningRateSchedule: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The same rate at every step.
    case constant(Double)
    /// `base · factor^⌊step / every⌋` (PyTorch's `StepLR`).
    case step(base: Double, every: Int, factor: Double)
    /// `minimum + (base − minimum) · (1 + cos(π · step / steps)) / 2` for `step < steps`, then
    /// `minimum` (PyTorch's `CosineAnnealingLR` without restarts).
    case cosine(base: Double, minimum: Double, steps: Int)
    /// A linear ramp `(step + 1) / steps` times the inner schedule for the first `steps` steps (so
    /// the first step already moves), then the inner schedule.
    case warmup(steps: Int, then: LearningRateSchedule)

    /// The learning rate at `step`.
    public func value(at step: Int) -> Double {
        switch self {
        case let .constant(rate): return rate
        case let .step(base, every, factor): return base * Foundation.pow(factor, Double(step / every))
        case let .cosine(base, minimum, steps):
            guard step < steps else { return minimum }
            return minimum + (base - minimum) * (1 + Foundation.cos(Double.pi * Double(step) / Double(steps))) / 2
        case let .warmup(steps, inner):
            let rate = inner.value(at: step)
            return step < steps ? rate * Double(step + 1) / Double(steps) : rate
        }
    }

    /// Throws ``TrainingError/invalidOption(name:value:expected:)`` for a negative or non-finite
    /// rate, a non-positive step count or a decay factor outside (0, 1].
    public func validate() throws {
        func rate(_ name: String, _ x: Double) throws {
            guard x.isFinite, x >= 0 else { throw TrainingError.invalidOption(name: name, value: "\(x)", expected: "a finite rate ≥ 0") }
        }
        func count(_ name: String, _ n: Int) throws {
            guard n > 0 else { throw TrainingError.invalidOption(name: name, value: "\(n)", expected: "a step count > 0") }
        }
        switch self {
        case let .constant(r): try rate("learning rate", r)
        case let .step(base, every, factor):
            try rate("base learning rate", base)
            try count("step schedule interval", every)
            guard factor > 0, factor <= 1 else {
                throw TrainingError.invalidOption(name: "step schedule factor", value: "\(factor)", expected: "a factor in (0, 1]")
            }
        case let .cosine(base, minimum, steps):
            try rate("base learning rate", base)
            try rate("minimum learning rate", minimum)
            try count("cosine schedule length", steps)
        case let .warmup(steps, inner):
            try count("warm-up length", steps)
            try inner.validate()
        }
    }

    public var description: String {
        switch self {
        case let .constant(r): return "constant(\(r))"
        case let .step(base, every, factor): return "step(base: \(base), every: \(every), factor: \(factor))"
        case let .cosine(base, minimum, steps): return "cosine(base: \(base), minimum: \(minimum), steps: \(steps))"
        case let .warmup(steps, inner): return "warmup(steps: \(steps), then: \(inner))"
        }
    }
}
