import Adjoint
import AdjointTestSupport
import Testing

/// Every kernel must give bitwise-identical results with 1, 2, 3 and 8 threads.
@Suite("Determinism across thread counts", .serialized)
struct DeterminismTests {
    static var workloads: [(String, () throws -> [Tensor])] { [
        ("elementwise", {
            let x = try Tensor.uniform([300_001], key: RandomKey(seed: 1), low: -3, high: 3)
            return [try x.exp(), try x.tanh() * x + x.sigmoid(), try x.softplus()]
        }),
        ("broadcast", {
            let x = try Tensor.uniform([257, 1031], key: RandomKey(seed: 2))
            return [try x + Tensor.uniform([1031], key: RandomKey(seed: 3)), try x * Tensor.uniform([257, 1], key: RandomKey(seed: 4))]
        }),
        ("reductions", {
            let x = try Tensor.uniform([1_000_003], key: RandomKey(seed: 5), low: -1, high: 1)
            let m = try Tensor.uniform([64, 3000, 7], key: RandomKey(seed: 6), dtype: .float32)
            return [try x.sum(), try x.mean(), try x.logsumexp(), try x.max(), try m.sum(axes: [1]), try m.mean(axes: [0, 2]),
                    try m.logsumexp(axes: [1]), try m.sum(axes: [0])]
        }),
        ("nn", {
            let logits = try Tensor.uniform([4096, 100], key: RandomKey(seed: 7), low: -5, high: 5, dtype: .float32)
            let labels = try (Tensor.uniform([4096], key: RandomKey(seed: 8)) * 100).cast(to: .int64)
            return [try logits.softmax(), try logits.logSoftmax(), try logits.crossEntropy(labels: labels),
                    try logits.meanSquaredError(logits.tanh())]
        }),
        ("random", { [try Tensor.normal([100_003], key: RandomKey(seed: 9)), try Tensor.uniform([70_001], key: RandomKey(seed: 10), dtype: .float32)] }),
        ("matmul", {
            let a = try Tensor.uniform([256, 300], key: RandomKey(seed: 11), dtype: .float32)
            let b = try Tensor.uniform([300, 200], key: RandomKey(seed: 12), dtype: .float32)
            return [try a.matmul(b)]
        }),
        ("gradient", {
            let w = try Tensor.uniform([200, 300], key: RandomKey(seed: 13), low: -0.1, high: 0.1)
            let x = try Tensor.uniform([300, 500], key: RandomKey(seed: 14))
            return [try gradient(at: w) { try $0.matmul(x).tanh().logsumexp(axes: [0]).sum() }]
        }),
    ] }

    @Test("bitwise identical with 1, 2, 3 and 8 threads", arguments: workloads.indices)
    func identical(_ index: Int) throws {
        let (name, run) = Self.workloads[index]
        let reference = try withThreads(1, run)
        for threads in [2, 3, 8] {
            let result = try withThreads(threads, run)
            for (i, (a, b)) in zip(reference, result).enumerated() {
                #expect(bitwiseEqual(a, b), "\(name) output \(i) differs between 1 and \(threads) threads")
            }
        }
    }
}
