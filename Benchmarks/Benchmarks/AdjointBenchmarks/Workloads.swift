import Adjoint

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

    /// One training step: forward, backward, w ← w − lr·g in place.
    static func trainStep(_ model: inout MLP, _ batch: MLPBatch, learningRate: Double = 0.01) throws -> Tensor {
        let (loss, grads) = try valueWithGradient(at: model) { m in try m.loss(batch.x, batch.labels) }
        let lr = try Tensor(-learningRate, dtype: .float32)
        var g = grads.tensors
        var i = 0
        try model.visitTensors { _, w in
            try g[i].mul_(lr)
            try w.add_(g[i])
            i += 1
        }
        return loss
    }
}
