import AdjointTensor

/// Which derivative products ``gradcheck(_:at:differentiable:mode:order:step:tolerance:key:)`` checks.
public enum GradcheckMode: String, Sendable, CaseIterable {
    case forward = "fwd"
    case reverse = "rev"
    case both
}

/// One comparison made by ``gradcheck(_:at:differentiable:mode:order:step:tolerance:key:)``.
public enum GradcheckCheck: String, Sendable, CaseIterable {
    /// Reverse mode: `∇ Σ w⊙f(x)` against central differences, element by element.
    case reverse = "rev"
    /// Forward mode: `J·v` (live forward level) against `(f(x+hv) − f(x−hv)) / 2h`.
    case forward = "fwd"
    /// The full Jacobian built in forward mode (``linearize(at:of:)``) against the one built in
    /// reverse mode.
    case jacobianAgreement = "fwd=rev"
    /// Second order, forward-over-reverse: `∇²L·v` against `(∇L(x+hv) − ∇L(x−hv)) / 2h`.
    case hvpForwardOverReverse = "hvp fwd/rev"
    /// Second order, reverse-over-reverse: `∇⟨∇L, v⟩` against the same differences.
    case hvpReverseOverReverse = "hvp rev/rev"

    /// The checks a mode and order select.
    public static func selected(mode: GradcheckMode, order: Int) -> [GradcheckCheck] {
        switch (mode, order) {
        case (.reverse, 1): return [.reverse]
        case (.forward, 1): return [.forward]
        case (.both, 1): return [.reverse, .forward, .jacobianAgreement]
        case (.reverse, _): return [.hvpReverseOverReverse]
        case (.forward, _): return [.hvpForwardOverReverse]
        case (.both, _): return [.hvpForwardOverReverse, .hvpReverseOverReverse]
        }
    }
}

/// The outcome of a gradcheck: the worst error of every check, per input.
public struct GradcheckResult: Sendable {
    /// For each check made, the largest error per input,
    /// `|analytic − numeric| / max(|analytic|, |numeric|, 1)` (relative for derivatives of magnitude
    /// ≥ 1, absolute below); `nil` for inputs not checked.
    public var errors: [GradcheckCheck: [Double?]]
    /// The tolerance the errors were held to.
    public var tolerance: Double

    /// The largest error per input over every check.
    public var maxRelativeError: [Double?] {
        let count = errors.values.first?.count ?? 0
        return (0..<count).map { i in errors.values.compactMap { $0[i] }.max() }
    }

    /// The largest error of one check over every input (`nil` if it was not made).
    public func worstError(_ check: GradcheckCheck) -> Double? {
        errors[check].map { $0.compactMap { $0 }.max() ?? 0 }
    }

    /// The largest error over every check and input.
    public var worstError: Double { errors.keys.compactMap(worstError).max() ?? 0 }
    public var passed: Bool { worstError <= tolerance && !worstError.isNaN }
}

/// Checks the derivatives of `f` at `inputs` against float64 central differences.
///
/// `f` may return any shape. First order: reverse mode differentiates `L(x) = Σ w ⊙ f(x)` with fixed
/// random weights `w` and compares every element of the gradient; forward mode compares `J·v` for a
/// random direction `v` per input with the central difference of `f` along `v`; `both` also
/// compares the complete Jacobians built in the two modes. Second order compares Hessian-vector
/// products of `L` (forward-over-reverse and/or reverse-over-reverse) with central differences of
/// the reverse-mode gradient. Inputs are promoted to float64 first, so the comparison measures the
/// derivative rules, not rounding.
///
/// - Parameters:
///   - f: the function, of the inputs, to a scalar.
///   - inputs: where to check.
///   - differentiable: which inputs to check (default: every floating-point input).
///   - mode: forward, reverse or both.
///   - order: 1 (first derivatives) or 2 (Hessian-vector products).
///   - step: the finite-difference step, scaled by `max(1, |x|)`.
///   - tolerance: the largest relative error that passes.
///   - key: the random directions' key.
/// - Complexity: first-order reverse: two evaluations of `f` per input element; forward and second
///   order: two evaluations (of `f` or of its gradient) per input; Jacobian agreement: one
///   replay per input and output element.
public func gradcheck(_ f: ([Tensor]) throws -> Tensor, at inputs: [Tensor], differentiable: [Bool]? = nil,
                      mode: GradcheckMode = .reverse, order: Int = 1,
                      step: Double = 1e-6, tolerance: Double = 1e-6, key: RandomKey = RandomKey(seed: 0x5EED)) throws -> GradcheckResult {
    guard order == 1 || order == 2 else {
        throw TensorError.invalidArgument(op: "gradcheck", detail: "order must be 1 or 2, got \(order)")
    }
    let promoted = try inputs.map { $0.dtype.isFloatingPoint ? try $0.untracked.cast(to: .float64) : $0.untracked }
    let checked = differentiable ?? promoted.map { $0.dtype.isFloatingPoint }
    let probe = try f(promoted)
    let weights = try Tensor.uniform(probe.shape, key: key, low: 0.5, high: 1.5, dtype: probe.dtype == .float32 ? .float32 : .float64)
    return try withoutActuallyEscaping(f) { f in
        let problem = GradcheckProblem(f: f, inputs: promoted, indices: checked.indices.filter { checked[$0] }, weights: weights, step: step)
        var errors: [GradcheckCheck: [Double?]] = [:]
        for check in GradcheckCheck.selected(mode: mode, order: order) {
            var perInput = [Double?](repeating: nil, count: inputs.count)
            for i in problem.indices {
                perInput[i] = try problem.error(check, input: i, direction: problem.direction(for: i, key: key.fold(in: UInt64(100 + i))))
            }
            errors[check] = perInput
        }
        return GradcheckResult(errors: errors, tolerance: tolerance)
    }
}

/// `|a − n| / max(|a|, |n|, 1)` over two equal-length lists; NaN counts as infinite.
func worstMixedError(_ analytic: [Double], _ numeric: [Double]) -> Double {
    var worst = 0.0
    for (a, n) in zip(analytic, numeric) {
        let error = Swift.abs(a - n) / Swift.max(Swift.abs(a), Swift.abs(n), 1)
        worst = Swift.max(worst, error.isNaN ? .infinity : error)
    }
    return analytic.count == numeric.count ? worst : .infinity
}

/// The function, point and objective one gradcheck works on.
struct GradcheckProblem {
    let f: ([Tensor]) throws -> Tensor
    let inputs: [Tensor]
    /// Indices of the checked inputs.
    let indices: [Int]
    let weights: Tensor
    let step: Double

    /// `L(x) = Σ w ⊙ f(x)`.
    func objective(_ xs: [Tensor]) throws -> Tensor { try (f(xs) * weights).sum() }

    /// `inputs` with input `i` replaced.
    func replacing(_ i: Int, with x: Tensor) -> [Tensor] {
        var xs = inputs
        xs[i] = x
        return xs
    }

    /// A random direction for input `i`, uniform in [-1, 1].
    func direction(for i: Int, key: RandomKey) throws -> Tensor {
        try Tensor.uniform(inputs[i].shape, key: key, low: -1, high: 1)
    }

    /// The finite-difference step for input `i`.
    func step(for i: Int) -> Double {
        step * Swift.max(1, inputs[i].doubles.map(Swift.abs).max() ?? 1)
    }

    /// The reverse-mode gradient of `L` with respect to every checked input, at `xs`.
    func gradients(at xs: [Tensor]) throws -> Tensor {
        let grads = try gradient(at: indices.map { xs[$0] }) { tracked in
            var all = xs
            for (k, i) in indices.enumerated() { all[i] = tracked[k] }
            return try objective(all)
        }
        return try Tensor.concat(grads.map { try $0.reshaped([-1]) }, axis: 0)
    }

    /// The worst error of `check` for input `i`, along direction `v` where the check uses one.
    func error(_ check: GradcheckCheck, input i: Int, direction v: Tensor) throws -> Double {
        let x = inputs[i]
        let h = step(for: i)
        switch check {
        case .reverse:
            let analytic = try gradient(at: x) { try objective(replacing(i, with: $0)) }.doubles
            var values = x.doubles
            var numeric: [Double] = []
            for e in values.indices {
                let x0 = values[e]
                let he = step * Swift.max(1, Swift.abs(x0))
                func evaluate(_ value: Double) throws -> Double {
                    values[e] = value
                    return try objective(replacing(i, with: Tensor(values, shape: x.shape))).item()
                }
                numeric.append((try evaluate(x0 + he) - evaluate(x0 - he)) / (2 * he))
                values[e] = x0
            }
            return worstMixedError(analytic, numeric)
        case .forward:
            let analytic = try jvp(at: x, direction: v) { try f(replacing(i, with: $0)) }.tangent.doubles
            let plus = try f(replacing(i, with: x + v * h)).doubles, minus = try f(replacing(i, with: x - v * h)).doubles
            return worstMixedError(analytic, zip(plus, minus).map { ($0 - $1) / (2 * h) })
        case .jacobianAgreement:
            let g = { (t: Tensor) in try f(replacing(i, with: t)) }
            return worstMixedError(try jacobian(of: g, at: x, mode: .forward).doubles, try jacobian(of: g, at: x, mode: .reverse).doubles)
        case .hvpForwardOverReverse, .hvpReverseOverReverse:
            let numeric = zip(try gradients(at: replacing(i, with: x + v * h)).doubles,
                              try gradients(at: replacing(i, with: x - v * h)).doubles).map { ($0 - $1) / (2 * h) }
            let analytic: Tensor
            if check == .hvpForwardOverReverse {
                analytic = try jvp(at: x, direction: v) { try gradients(at: replacing(i, with: $0)) }.tangent
            } else {
                // ∇ ⟨∇L, u⟩ over every checked input, with u = v in slot i and zero elsewhere: H·u.
                let u = try Tensor.concat(indices.map { j in try (j == i ? v : inputs[j].zerosLike()).reshaped([-1]) }, axis: 0)
                let outer = try gradient(at: indices.map { inputs[$0] }) { tracked in
                    var all = inputs
                    for (k, j) in indices.enumerated() { all[j] = tracked[k] }
                    return try (gradients(at: all) * u).sum()
                }
                analytic = try Tensor.concat(outer.map { try $0.reshaped([-1]) }, axis: 0)
            }
            return worstMixedError(analytic.doubles, numeric)
        }
    }
}
