import Adjoint
import Testing

/// Element-wise closeness with a relative-or-absolute tolerance.
public func isClose(_ a: [Double], _ b: [Double], tolerance: Double = 1e-12) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in
        x == y || Swift.abs(x - y) <= tolerance * Swift.max(1, Swift.abs(x), Swift.abs(y))
    }
}

/// Bitwise equality of two tensors' contents (shape, dtype and bytes).
public func bitwiseEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    guard a.shape == b.shape, a.dtype == b.dtype else { return false }
    return memcmp(a.rawPointer, b.rawPointer, a.elementCount * a.dtype.byteSize) == 0
}

/// Runs `body` with the kernels' thread count set to `n`, restoring it afterwards.
public func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
    let saved = Parallelism.threadCount
    Parallelism.threadCount = n
    defer { Parallelism.threadCount = saved }
    return try body()
}

/// A tensor from a literal list (float64).
public func t(_ values: [Double], _ shape: [Int]? = nil) -> Tensor {
    try! Tensor(values, shape: shape ?? [values.count])
}

#if canImport(Glibc)
import Glibc
#endif
