import Adjoint
import AdjointExamples
import Benchmark

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .throughput, .mallocCountTotal, .peakMemoryResident],
        maxDuration: .seconds(3), maxIterations: 200)
    Parallelism.threadCount = 2

    // 40,000 dependent scalar ops, forward and backward, per iteration.
    // Cache simulation in steady state: 100,000 requests through a policy that has already seen
    // them once (so the cache is full); mallocs per iteration should be ~0.
    let cacheRequests: [CacheRequest] = {
        var w = try! SyntheticWorkload.standard(requests: 100_000)
        var r = try! w.readAll()
        NextAccess.annotate(&r)
        return r
    }()
    for kind in [PolicyKind.lru, .arc, .s3fifo, .sieve] {
        Benchmark("cache \(kind.rawValue) 100k requests, 2000 objects, steady state", configuration: .init(scalingFactor: .one)) { benchmark in
            var policy = kind.make(capacity: 2000)
            _ = CacheSimulation.run(&policy, requests: cacheRequests, mode: .unit)
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { blackHole(CacheSimulation.run(&policy, requests: cacheRequests, mode: .unit)) }
        }
    }
    Benchmark("cache Learned 100k requests, 2000 objects, steady state", configuration: .init(scalingFactor: .one)) { benchmark in
        var policy = LearnedPolicy(capacity: 2000, scorer: try EvictionScorer(hidden: 0))
        _ = CacheSimulation.run(&policy, requests: cacheRequests, mode: .unit)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations { blackHole(CacheSimulation.run(&policy, requests: cacheRequests, mode: .unit)) }
    }

    // The thermal step's forward and backward pass as one compiled program, 1,000 runs on one
    // frame: no allocation per operation, so mallocs per iteration should be 0.
    Benchmark("thermal step fwd+bwd compiled program ×1000, one frame", configuration: .init(scalingFactor: .one)) { benchmark in
        let (program, arguments) = try Workloads.thermalGradientProgram()
        let frame = program.makeFrame()
        try program.bind(arguments, in: frame)
        try program.run(program.positions, in: frame)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            for _ in 0..<1000 { try program.run(program.positions, in: frame) }
        }
        benchmark.stopMeasurement()
        blackHole(try program.scalarOutput(0, in: frame))
    }
    // A simulated day (2,880 steps, binomial:32) end to end: per-step costs of the adapters.
    let thermal = ThermalModel()
    let compiledThermal = try! CompiledStep(thermal.step, loss: thermal.loss(target: 23), state: thermal.initialState,
                                            input: thermal.forcing(0), parameters: thermal.nominalParameters)
    Benchmark("thermal day gradient, CompiledStep, binomial:32", configuration: .init(scalingFactor: .one)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try unroll(compiledThermal, from: thermal.initialState, parameters: thermal.nominalParameters, steps: 2880,
                                 loss: thermal.loss(target: 23), schedule: .binomial(snapshots: 32),
                                 options: UnrollOptions(verifyReplay: false), inputs: thermal.forcing).loss)
        }
    }
    Benchmark("thermal day gradient, TensorStep, binomial:32", configuration: .init(scalingFactor: .one, maxIterations: 10)) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try thermal.gradient(parameters: thermal.nominalParameters, steps: 2880, schedule: .binomial(snapshots: 32),
                                           options: UnrollOptions(verifyReplay: false)).loss)
        }
    }

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
    Benchmark("MLP 784-512-512-10 b256 f32 train step compiled") { benchmark in
        // The same SGD step traced and compiled once (`compile`): loss, gradient and update as one program.
        let step = compile { (a: [Tensor]) throws -> [Tensor] in
            let model = Workloads.MLP(tensors: Array(a[0..<6]))
            let (loss, grads) = try valueWithGradient(at: model) { m in try m.loss(a[6], a[7]) }
            let lr = try Tensor(-0.01, dtype: .float32)
            return [loss] + (try zip(model.tensors, grads.tensors).map { w, g in try w.multiplied(by: Tensor(1, dtype: .float32), adding: g * lr) })
        }
        var parameters = try Workloads.MLP(key: key).tensors
        let batch = try Workloads.MLPBatch(key: key)
        _ = try step(parameters + [batch.x, batch.labels])
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let out = try step(parameters + [batch.x, batch.labels])
            parameters = Array(out[1...])
            blackHole(out[0])
        }
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

    // Forward mode and second order.
    let rosenbrockX = try! Tensor.uniform([1_000_000], key: key.fold(in: 10), low: -1, high: 1)
    let rosenbrockV = try! Tensor.uniform([1_000_000], key: key.fold(in: 11), low: -1, high: 1)
    Benchmark("Rosenbrock 1e6 f64 gradient") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try gradient(at: rosenbrockX, of: Workloads.rosenbrock)) }
    }
    Benchmark("Rosenbrock 1e6 f64 HVP") { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try hvp(at: rosenbrockX, direction: rosenbrockV, of: Workloads.rosenbrock)) }
    }
    let mlp = try! Workloads.SmallMLP(key: key)
    let mlpX = try! Tensor.uniform([100], key: key.fold(in: 12), low: -1, high: 1)
    for mode in JacobianMode.allCases {
        Benchmark("MLP 100-100-100 f64 Jacobian \(mode.rawValue)") { benchmark in
            for _ in benchmark.scaledIterations { blackHole(try jacobian(of: { try mlp($0) }, at: mlpX, mode: mode)) }
        }
    }
    // Per-example gradients (vmap of gradient): 256 examples of 64 features, tanh(W1 x + b1) · w2.
    let exampleParameters = [try! Tensor.uniform([128, 64], key: key.fold(in: 20), low: -0.1, high: 0.1),
                             try! Tensor.uniform([128, 1], key: key.fold(in: 21), low: -0.1, high: 0.1),
                             try! Tensor.uniform([1, 128], key: key.fold(in: 22), low: -0.1, high: 0.1)]
    let examples = [try! Tensor.uniform([256, 64, 1], key: key.fold(in: 23), low: -1, high: 1),
                    try! Tensor.uniform([256, 1, 1], key: key.fold(in: 24), low: -1, high: 1)]
    Benchmark("per-example gradients 256 x (64-128-1) f64") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(try vmap(at: examples) { e in
                try gradient(at: exampleParameters) { p in try (p[2].matmul((p[0].matmul(e[0]) + p[1]).tanh()) - e[1]).pow(2).sum() }
            })
        }
    }
    let regression = try! Workloads.SoftplusRegression(key: key)
    let regressionX = try! Tensor.uniform([1000], key: key.fold(in: 13), low: -1, high: 1)
    Benchmark("Hessian 1000 params full", configuration: .init(maxDuration: .seconds(10), maxIterations: 5)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try hessian(of: { try regression($0) }, at: regressionX)) }
    }
    Benchmark("Hessian 1000 params by 1000 HVPs", configuration: .init(maxDuration: .seconds(10), maxIterations: 5)) { benchmark in
        for _ in benchmark.scaledIterations { blackHole(try Workloads.hessianByHVPs({ try regression($0) }, at: regressionX)) }
    }
}
