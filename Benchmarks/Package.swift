// swift-tools-version: 6.1
// Benchmarks live in their own package so `swift test` in the repository root never builds the
// benchmark harness. Run with `swift package --disable-sandbox benchmark` from this directory.
import PackageDescription

let package = Package(
    name: "AdjointBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Adjoint", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "AdjointBenchmarks",
            dependencies: [
                .product(name: "Adjoint", package: "Adjoint"),
                .product(name: "AdjointExamples", package: "Adjoint"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/AdjointBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // Long-horizon unroll, policy and event-log benchmarks: one configuration per process, so peak
        // RSS is its own. Outside Benchmarks/ so the benchmark plugin does not run it as a suite.
        .executableTarget(
            name: "TimeBenchmarks",
            dependencies: [
                .product(name: "Adjoint", package: "Adjoint"),
                .product(name: "AdjointSwiftAD", package: "Adjoint"),
                .product(name: "AdjointExamples", package: "Adjoint"),
                .product(name: "AdjointSwiftADExamples", package: "Adjoint"),
            ],
            path: "Tools/TimeBenchmarks"
        ),
    ]
)
