import AdjointAutodiff
import AdjointTensor

/// Dynamic loss scaling for mixed-precision training: the loss is multiplied by ``scale`` before
/// differentiation so small gradients do not underflow in low precision; the gradient is divided by
/// it (in float32) before the optimizer step. A gradient with a NaN or an infinity means the scale
/// overflowed something: the step is skipped and the scale backs off. After ``growthInterval``
/// good steps in a row the scale grows. The scale may fall below 1 when gradients themselves
/// exceed the low precision's range.
public struct DynamicLossScaler: Codable, Equatable, Sendable {
    public private(set) var scale: Double
    public let growthFactor: Double
    public let backoffFactor: Double
    public let growthInterval: Int
    public let minimumScale: Double
    /// Good steps since the last change of scale.
    public private(set) var goodSteps = 0
    /// Steps skipped because the gradient overflowed.
    public private(set) var skippedSteps = 0

    /// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` for factors or intervals out of range.
    public init(initialScale: Double = 65_536, growthFactor: Double = 2, backoffFactor: Double = 0.5, growthInterval: Int = 2000,
                minimumScale: Double = 0x1p-24) throws {
        try require("initial scale", initialScale, { $0 > 0 }, "a value > 0")
        try require("growth factor", growthFactor, { $0 > 1 }, "a value > 1")
        try require("backoff factor", backoffFactor, { $0 > 0 && $0 < 1 }, "a value in (0, 1)")
        guard growthInterval >= 1 else { throw TrainingError.invalidOption(name: "growth interval", value: "\(growthInterval)", expected: "≥ 1") }
        scale = initialScale
        self.growthFactor = growthFactor
        self.backoffFactor = backoffFactor
        self.growthInterval = growthInterval
        self.minimumScale = minimumScale
    }

    /// `loss · scale`, to differentiate.
    public func scaled(_ loss: Tensor) throws -> Tensor { try loss * scale }

    /// The true gradient (`gradient / scale`, computed outside every level), or `nil` when it
    /// overflowed — then the caller skips the optimizer step; the scale has backed off.
    public mutating func unscale<P: ParameterCollection>(_ gradient: P) throws -> P? {
        let finite = gradient.tensors.allSatisfy { t in !t.dtype.isFloatingPoint || t.doubles.allSatisfy(\.isFinite) }
        guard finite else {
            scale = Swift.max(minimumScale, scale * backoffFactor)
            goodSteps = 0
            skippedSteps += 1
            return nil
        }
        let inverse = 1 / scale
        // In float32 whatever precision policy encloses the call: the master copy is float32.
        let result = try MixedPrecision.with(nil) { try InterpreterStack.current.withoutLevels { try gradient.mapTensors { try $0 * inverse } } }
        goodSteps += 1
        if goodSteps >= growthInterval {
            scale *= growthFactor
            goodSteps = 0
        }
        return result
    }
}
