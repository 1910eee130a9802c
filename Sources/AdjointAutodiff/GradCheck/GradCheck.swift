import AdjointTensor

/// The outcome of comparing reverse-mode gradients with central finite differences.
public struct GradcheckResult: Sendable {
    /// Largest error per input, `|analytic − numeric| / max(|analytic|, |numeric|, 1)`
    /// (relative for gradients of magnitude ≥ 1, absolute below); `nil` for inputs not checked.
    public var maxRelativeError: [Double?]
    /// The tolerance the errors were held to.
    public var tolerance: Double

    /// The largest error over every checked input.
    public var worstError: Double { maxRelativeError.compactMap { $0 }.max() ?? 0 }
    public var passed: Bool { worstError <= tolerance && !worstError.isNaN }
}

/// Checks the reverse-mode gradient of `f` at `inputs` against float64 central differences.
///
/// `f` may return any shape: the check differentiates `L(x) = Σ w ⊙ f(x)` with fixed random weights
/// `w` (drawn from `key`), which exercises every output element. Inputs are promoted to float64
/// before checking, so the comparison measures the derivative rules, not rounding.
///
/// - Parameters:
///   - differentiable: which inputs to check (default: every floating-point input).
///   - step: the finite-difference step, scaled by `max(1, |x|)` per element.
/// - Complexity: two evaluations of `f` per element of every checked input.
public func gradcheck(_ f: ([Tensor]) throws -> Tensor, at inputs: [Tensor], differentiable: [Bool]? = nil,
                      step: Double = 1e-6, tolerance: Double = 1e-6, key: RandomKey = RandomKey(seed: 0x5EED)) throws -> GradcheckResult {
    let promoted = try inputs.map { $0.dtype.isFloatingPoint ? try $0.untracked.cast(to: .float64) : $0.untracked }
    let checked = differentiable ?? promoted.map { $0.dtype.isFloatingPoint }
    let probe = try f(promoted)
    let weights = try Tensor.uniform(probe.shape, key: key, low: 0.5, high: 1.5, dtype: probe.dtype == .float32 ? .float32 : .float64)
    func objective(_ xs: [Tensor]) throws -> Tensor { try (f(xs) * weights).sum() }

    // Reverse mode with respect to the checked inputs only.
    let indices = checked.indices.filter { checked[$0] }
    let (_, grads) = try valueWithGradient(at: indices.map { promoted[$0] }) { tracked in
        var xs = promoted
        for (k, i) in indices.enumerated() { xs[i] = tracked[k] }
        return try objective(xs)
    }

    var errors = [Double?](repeating: nil, count: inputs.count)
    for (k, i) in indices.enumerated() {
        let analytic = grads[k].doubles
        var values = promoted[i].doubles
        var worst = 0.0
        for e in values.indices {
            let x0 = values[e]
            let h = step * Swift.max(1, Swift.abs(x0))
            func evaluate(_ v: Double) throws -> Double {
                values[e] = v
                var xs = promoted
                xs[i] = try Tensor(values, shape: promoted[i].shape)
                return try objective(xs).item()
            }
            let numeric = (try evaluate(x0 + h) - evaluate(x0 - h)) / (2 * h)
            values[e] = x0
            let a = analytic[e]
            let error = Swift.abs(a - numeric) / Swift.max(Swift.abs(a), Swift.abs(numeric), 1)
            worst = Swift.max(worst, error.isNaN ? .infinity : error)
        }
        errors[i] = worst
    }
    return GradcheckResult(maxRelativeError: errors, tolerance: tolerance)
}
