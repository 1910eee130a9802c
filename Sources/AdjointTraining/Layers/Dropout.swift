import AdjointAutodiff
import AdjointTensor

/// Inverted dropout: each element is kept with probability `1 − rate` and scaled by `1 / (1 − rate)`,
/// so the expectation is unchanged; the mask comes from `stream` (and advances it), so a replay or a
/// resumed run drops exactly the same units.
///
/// The mask is a constant for differentiation: the gradient is the mask times the cotangent.
///
/// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` for a rate outside [0, 1);
///   `TensorError` for an integer or boolean `x`.
public func dropout(_ x: Tensor, rate: Double, stream: inout RandomStream) throws -> Tensor {
    try require("dropout rate", rate, { $0 >= 0 && $0 < 1 }, "a value in [0, 1)")
    guard x.dtype.isFloatingPoint else {
        throw TensorError.unsupportedDType(op: "dropout", dtype: x.dtype, detail: "dropout applies to floating-point tensors")
    }
    if rate == 0 { return x }
    let u = try stream.uniform(x.shape, dtype: x.dtype == .float64 ? .float64 : .float32)
    let keep = try u.greaterEqual(u.scalarLike(rate))
    let mask = try keep.cast(to: x.dtype) * (1 / (1 - rate))
    return try x * mask
}
