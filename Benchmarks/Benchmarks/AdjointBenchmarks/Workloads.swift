import Adjoint
import AdjointExamples

/// The workloads, shared by the package-benchmark suite and by `side-by-side` runs.
enum Workloads {
    // MARK: Scalar chain: 2 × 20,000 dependent float64 scalar operations, forward and backward.
    static let chainLength = 20_000

    /// x ← x·a + b, 20,000 times; returns dL/d(a, b) for L = x_final.
    static func scalarChain() throws -> (Tensor, Tensor) {
        let a = Tensor(0.999_9), b = Tensor(0.001)
        return try gradient(at: a, b) { a, b in
            var x = Tensor(1.0)
            for _ in 0..<chainLength { x = try x * a + b }
            return x
        }
    }

    // MARK: MLP 784-512-512-10, batch 256, float32, plain SGD.
    struct MLP: ParameterCollection {
        var w1, b1, w2, b2, w3, b3: Tensor
        mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("w1", &w1); try visit("b1", &b1); try visit("w2", &w2)
            try visit("b2", &b2); try visit("w3", &w3); try visit("b3", &b3)
        }

        init(key: RandomKey) throws {
            func layer(_ i: Int, _ fanIn: Int, _ fanOut: Int) throws -> Tensor {
                let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
                return try Tensor.uniform([fanIn, fanOut], key: key.fold(in: UInt64(i)), low: -bound, high: bound, dtype: .float32)
            }
            w1 = try layer(1, 784, 512); b1 = try .zeros([512], dtype: .float32)
            w2 = try layer(2, 512, 512); b2 = try .zeros([512], dtype: .float32)
            w3 = try layer(3, 512, 10); b3 = try .zeros([10], dtype: .float32)
        }

        init(tensors t: [Tensor]) { (w1, b1, w2, b2, w3, b3) = (t[0], t[1], t[2], t[3], t[4], t[5]) }

        func loss(_ x: Tensor, _ labels: Tensor) throws -> Tensor {
            let h1 = try (x.matmul(w1) + b1).relu()
            let h2 = try (h1.matmul(w2) + b2).relu()
            return try (h2.matmul(w3) + b3).crossEntropy(labels: labels).mean()
        }
    }

    struct MLPBatch {
        let x: Tensor, labels: Tensor
        init(key: RandomKey) throws {
            x = try Tensor.uniform([256, 784], key: key.fold(in: 100), dtype: .float32)
            labels = try (Tensor.uniform([256], key: key.fold(in: 101)) * 10).cast(to: .int64)
        }
    }

    /// One training step: forward, backward, w ← w + (−lr)·g in place, one pass per parameter (as
    /// PyTorch's `p.add_(g, alpha=-lr)`).
    static func trainStep(_ model: inout MLP, _ batch: MLPBatch, learningRate: Double = 0.01) throws -> Tensor {
        let (loss, grads) = try valueWithGradient(at: model) { m in try m.loss(batch.x, batch.labels) }
        let lr = try Tensor(-learningRate, dtype: .float32)
        let g = grads.tensors
        var i = 0
        try model.visitTensors { _, w in
            try w.multiplyAdd_(g[i], lr)
            i += 1
        }
        return loss
    }
}

// MARK: Forward mode and second order (issue: forward mode, Jacobians, HVPs)
extension Workloads {
    /// Σᵢ 100 (x_{i+1} − x_i²)² + (1 − x_i)², written with slices as in the PyTorch and JAX peers.
    static func rosenbrock(_ x: Tensor) throws -> Tensor { try Rosenbrock.value(x) }

    /// A 100 → 100 two-layer tanh MLP (hidden 100, float64), for Jacobians.
    struct SmallMLP {
        let w1, b1, w2, b2: Tensor
        init(key: RandomKey, width: Int = 100) throws {
            let bound = (1.0 / Double(width)).squareRoot()
            w1 = try Tensor.uniform([width, width], key: key.fold(in: 1), low: -bound, high: bound)
            b1 = try Tensor.uniform([width], key: key.fold(in: 2), low: -bound, high: bound)
            w2 = try Tensor.uniform([width, width], key: key.fold(in: 3), low: -bound, high: bound)
            b2 = try Tensor.uniform([width], key: key.fold(in: 4), low: -bound, high: bound)
        }
        func callAsFunction(_ x: Tensor) throws -> Tensor {
            let h = try (w1.matmul(x.reshaped([-1, 1])).reshaped([-1]) + b1).tanh()
            return try w2.matmul(h.reshaped([-1, 1])).reshaped([-1]) + b2
        }
    }

    /// A smooth 1,000-parameter function for full Hessians: Σ softplus(A x) + ½‖x‖², A 200 × 1000.
    struct SoftplusRegression {
        let a: Tensor
        init(key: RandomKey) throws { a = try Tensor.uniform([200, 1000], key: key.fold(in: 5), low: -0.05, high: 0.05) }
        func callAsFunction(_ x: Tensor) throws -> Tensor {
            try a.matmul(x.reshaped([-1, 1])).softplus().sum() + (x * x).sum() * 0.5
        }
    }

    /// The full Hessian assembled from one HVP per basis vector (each reruns f and its gradient).
    static func hessianByHVPs(_ f: (Tensor) throws -> Tensor, at x: Tensor) throws -> Tensor {
        let n = x.elementCount
        let identity = try Tensor.arange(0, Double(n)).cast(to: .int64).oneHot(depth: n)
        let columns = try (0..<n).map { j in try hvp(at: x, direction: identity.slice(starts: [j, 0], ends: [j + 1, n]).reshaped([n]), of: f) }
        return try Tensor.stack(columns, axis: 1)
    }

    /// The thermal step and the gradient of `(mean slab after it − 23)²` with respect to the state
    /// and the parameters, traced into one graph and compiled; with its arguments (state, forcing,
    /// parameters).
    static func thermalGradientProgram() throws -> (CompiledProgram, [Tensor]) {
        let m = ThermalModel()
        let s = m.initialState
        let n = s.tensors.count
        let arguments = s.tensors + [m.forcing(100), m.nominalParameters]
        let step = m.step
        func gradient(_ a: [Tensor]) throws -> [Tensor] {
            let x = a[n]
            let (loss, pullback) = try vjp(at: Array(a[0..<n]) + [a[n + 1]]) { (v: [Tensor]) throws -> Tensor in
                let next: ThermalModel.State = try step.body(s.replacingTensors(with: Array(v[0..<n])), x, v[n]).state
                return try (next.slab.mean() - 23).pow(2)
            }
            let seed = try loss.onesLike()
            return [loss] + (try pullback(seed))
        }
        let (bundle, _) = try traceGraph(gradient, at: arguments)
        return (try bundle.compiled(), arguments)
    }
}
