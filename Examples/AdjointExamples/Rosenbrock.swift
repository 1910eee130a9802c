import Adjoint

/// Rosenbrock's function of `n` variables, `Σᵢ 100 (x_{i+1} − x_i²)² + (1 − x_i)²`, written with
/// two slices of `x` as the PyTorch and JAX peers write it: a stencil whose gradient reads its
/// neighbours (the benchmark of gradients, HVPs and `compile` over 10⁶ variables).
public enum Rosenbrock {
    /// The function's value at `x` (rank 1, at least two elements).
    public static func value(_ x: Tensor) throws -> Tensor {
        let n = x.shape[0]
        let head = try x.slice(starts: [0], ends: [n - 1]), tail = try x.slice(starts: [1], ends: [n])
        let a = try tail - head * head, b = try 1 - head
        return try (a * a * 100 + b * b).sum()
    }
}
