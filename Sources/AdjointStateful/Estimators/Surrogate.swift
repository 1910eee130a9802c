import AdjointAutodiff
import AdjointTensor

/// A differentiable cost model `ŝ(context, action) = w·[context, action] + w₀`, fitted by ridge
/// regression to observed (context, action, cost): the gradient the ``DerivativeSemantics/surrogate(_:)``
/// boundary passes back is `∂ŝ/∂action` through the action probabilities.
public struct LinearSurrogate: Sendable {
    /// `[w…, w₀]`; empty before the first fit.
    public var weights: [Double]
    public var ridge: Double

    /// An unfitted model (fitted from the boundary's observations as they arrive).
    public init(ridge: Double = 1e-3) {
        weights = []
        self.ridge = ridge
    }

    /// Least squares with an L2 penalty `ridge·‖w‖²` (the intercept is not penalized), by the normal
    /// equations (features are few: context plus options).
    public static func fit(_ observations: [(features: [Double], cost: Double)], ridge: Double) throws -> LinearSurrogate {
        guard let width = observations.first?.features.count, observations.allSatisfy({ $0.features.count == width }) else {
            return LinearSurrogate(ridge: ridge)
        }
        let n = width + 1
        var a = [Double](repeating: 0, count: n * n), b = [Double](repeating: 0, count: n)
        for (x, y) in observations {
            let row = x + [1]
            for i in 0..<n {
                b[i] += row[i] * y
                for j in 0..<n { a[i * n + j] += row[i] * row[j] }
            }
        }
        for i in 0..<width { a[i * n + i] += ridge }
        var model = LinearSurrogate(ridge: ridge)
        model.weights = try solve(a, b, n)
        return model
    }

    /// `ŝ` for `context` and the (tracked) action probabilities, as a scalar tensor.
    public func predict(context: [Double], action: Tensor) throws -> Tensor {
        let w = weights
        let contextPart = zip(context, w).reduce(w.last ?? 0) { $0 + $1.0 * $1.1 }
        let actionWeights = try Tensor(Array(w[context.count..<(w.count - 1)]), shape: [w.count - 1 - context.count]).cast(to: action.dtype)
        guard actionWeights.elementCount == action.elementCount else {
            throw TensorError.shapeMismatch(op: "LinearSurrogate.predict", detail: "fitted for \(actionWeights.elementCount) action features, got \(action.elementCount)")
        }
        return try (actionWeights * action).sum() + contextPart
    }

    /// Gaussian elimination with partial pivoting.
    static func solve(_ matrix: [Double], _ rhs: [Double], _ n: Int) throws -> [Double] {
        var a = matrix, b = rhs
        for column in 0..<n {
            let pivot = (column..<n).max { Swift.abs(a[$0 * n + column]) < Swift.abs(a[$1 * n + column]) }!
            guard Swift.abs(a[pivot * n + column]) > 1e-300 else {
                throw TensorError.invalidValue(op: "LinearSurrogate.fit", detail: "the observations do not determine the model (singular system); add ridge")
            }
            if pivot != column {
                for j in 0..<n { a.swapAt(pivot * n + j, column * n + j) }
                b.swapAt(pivot, column)
            }
            for row in (column + 1)..<n {
                let f = a[row * n + column] / a[column * n + column]
                if f == 0 { continue }
                for j in column..<n { a[row * n + j] -= f * a[column * n + j] }
                b[row] -= f * b[column]
            }
        }
        var x = [Double](repeating: 0, count: n)
        for row in stride(from: n - 1, through: 0, by: -1) {
            var s = b[row]
            for j in (row + 1)..<n { s -= a[row * n + j] * x[j] }
            x[row] = s / a[row * n + row]
        }
        return x
    }
}

/// Simultaneous perturbation stochastic approximation (Spall): a gradient estimate of a function
/// seen only through its values — a whole simulation with hard decisions inside, say.
///
/// Each sample draws Δ with independent ±1 entries from `stream` and evaluates
/// `(f(θ + cΔ) − f(θ − cΔ)) / (2c) · Δ`; the estimate is their mean (2 evaluations per sample,
/// whatever the dimension). For smooth f its bias is O(c²).
public enum SPSA {
    public static func gradient(of f: (Tensor) throws -> Double, at theta: Tensor, perturbation c: Double, samples: Int,
                                stream: inout RandomStream) throws -> Tensor {
        guard c > 0, c.isFinite, samples >= 1 else {
            throw TensorError.invalidArgument(op: "SPSA.gradient", detail: "perturbation \(c) must be > 0 and samples \(samples) ≥ 1")
        }
        let base = theta.untracked
        var total = try base.zerosLike()
        for _ in 0..<samples {
            let delta = try (stream.uniform(base.shape, dtype: base.dtype).less(base.scalarLike(0.5)).cast(to: base.dtype) * 2 - 1)
            let up = try f(base + delta * c), down = try f(base - delta * c)
            total = try total + delta * ((up - down) / (2 * c))
        }
        return try total / Double(samples)
    }
}
