import AdjointAutodiff
import AdjointTensor
import Foundation

/// Gradient clipping, applied between computing a gradient and the optimizer step.
public enum GradientClipping {
    /// The ℓ₂ norm of every tensor of `gradient` taken together, `√(Σ‖gᵢ‖²)`, in float64.
    public static func globalNorm<P: ParameterCollection>(_ gradient: P) throws -> Double {
        try InterpreterStack.current.withoutLevels {
            var total = 0.0
            for t in gradient.tensors where t.dtype.isFloatingPoint {
                let t64 = t.dtype == .float64 ? t : try t.cast(to: .float64)
                total += try (t64 * t64).sum().item()
            }
            return total.squareRoot()
        }
    }

    /// Scales `gradient` by `maxNorm / ‖gradient‖` when its global norm exceeds `maxNorm` (PyTorch's
    /// `clip_grad_norm_`); returns the norm before clipping. A non-finite norm leaves the gradient
    /// unchanged and is returned as is, so the caller can skip the step.
    @discardableResult
    public static func clipByGlobalNorm<P: ParameterCollection>(_ gradient: inout P, maxNorm: Double) throws -> Double {
        try require("maximum norm", maxNorm, { $0 > 0 }, "a value > 0")
        let norm = try globalNorm(gradient)
        guard norm.isFinite, norm > maxNorm else { return norm }
        let scale = maxNorm / norm
        gradient = try InterpreterStack.current.withoutLevels { try gradient.mapTensors { try $0 * scale } }
        return norm
    }

    /// Clamps every element of `gradient` to `[-limit, limit]` (NaN stays NaN).
    public static func clipByValue<P: ParameterCollection>(_ gradient: inout P, limit: Double) throws {
        try require("clipping limit", limit, { $0 > 0 }, "a value > 0")
        gradient = try InterpreterStack.current.withoutLevels {
            try gradient.mapTensors { t in try t.maximum(t.scalarLike(-limit)).minimum(t.scalarLike(limit)) }
        }
    }
}
