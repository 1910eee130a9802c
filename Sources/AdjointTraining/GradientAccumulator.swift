import AdjointAutodiff
import AdjointTensor

/// Sums gradients over micro-batches: `zeroGrad()`, then `accumulate(_:weight:)` once per
/// micro-batch, then read ``gradient()`` for the optimizer step.
///
/// For a loss that is a mean over the batch, weighting each micro-batch by its share of the batch
/// (`size / batchSize`) gives the gradient of the whole batch; a test checks it against one large
/// batch.
public struct GradientAccumulator<P: ParameterCollection> {
    private var sum: P?
    /// Micro-batches accumulated since the last ``zeroGrad()``.
    public private(set) var count = 0

    public init() {}

    /// Forgets everything accumulated.
    public mutating func zeroGrad() {
        sum = nil
        count = 0
    }

    /// Adds `weight · gradient` to the running sum.
    ///
    /// - Throws: ``TrainingError/gradientMismatch(parameter:detail:)`` when `gradient` does not have
    ///   the structure of the gradients accumulated before it; the sum is unchanged then.
    public mutating func accumulate(_ gradient: P, weight: Double = 1) throws {
        try require("accumulation weight", weight, { _ in true }, "a finite weight")
        let scaled = try InterpreterStack.current.withoutLevels {
            try weight == 1 ? withoutDerivative(at: gradient) : gradient.mapTensors { try $0.untracked * weight }
        }
        guard var total = sum else {
            sum = scaled
            count = 1
            return
        }
        try forEachParameter(&total, scaled) { _, t, g in t = try t + g }
        sum = total
        count += 1
    }

    /// The accumulated sum.
    /// - Throws: ``TrainingError/nothingAccumulated`` after ``zeroGrad()`` with nothing added.
    public func gradient() throws -> P {
        guard let sum else { throw TrainingError.nothingAccumulated }
        return sum
    }
}
