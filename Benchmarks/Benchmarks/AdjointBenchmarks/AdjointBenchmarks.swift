import Adjoint
import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(3), maxIterations: 200)
    Parallelism.threadCount = 2

    // 40,000 dependent scalar ops, forward and backward, per iteration.
    Benchmark("scalar chain 2×20000 f64 fwd+bwd", configuration: .init(scalingFactor: .one)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Workloads.scalarChain()) }
    }

    let key = RandomKey(seed: 2026)
    Benchmark("MLP 784-512-512-10 b256 f32 forward") { benchmark in
        let model = try Workloads.MLP(key: key), batch = try Workloads.MLPBatch(key: key)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try model.loss(batch.x, batch.labels)) }
    }
    Benchmark("MLP 784-512-512-10 b256 f32 train step") { benchmark in
        var model = try Workloads.MLP(key: key)
        let batch = try Workloads.MLPBatch(key: key)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try Workloads.trainStep(&model, batch)) }
    }

    Benchmark("matmul 1024³ f32 via dispatch") { benchmark in
        let a = try Tensor.uniform([1024, 1024], key: key.fold(in: 1), dtype: .float32)
        let b = try Tensor.uniform([1024, 1024], key: key.fold(in: 2), dtype: .float32)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(try a.matmul(b)) }
    }
    Benchmark("matmul 1024³ f32 raw OpenBLAS (2 threads)") { benchmark in
        let a = try Tensor.uniform([1024, 1024], key: key.fold(in: 1), dtype: .float32)
        let b = try Tensor.uniform([1024, 1024], key: key.fold(in: 2), dtype: .float32)
        let c = try Tensor.zeros([1024, 1024], dtype: .float32)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _RawBLAS.sgemm(m: 1024, n: 1024, k: 1024, a: a.pointer(Float.self), b: b.pointer(Float.self), c: c.pointer(Float.self), threads: 2)
        }
        blackHole(c)
    }
}
