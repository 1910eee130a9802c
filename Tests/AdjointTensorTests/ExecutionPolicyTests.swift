import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Execution policies", .serialized)
struct ExecutionPolicyTests {
    /// A long full sum, a long MSE and a GEMM big enough to be cut into blocks.
    static func workload() throws -> [Tensor] {
        let x = try Tensor.uniform([1_000_003], key: RandomKey(seed: 21), low: -1, high: 1)
        let a = try Tensor.uniform([300, 400], key: RandomKey(seed: 22), dtype: .float32)
        let b = try Tensor.uniform([400, 250], key: RandomKey(seed: 23), dtype: .float32)
        return [try x.sum(), try x.meanSquaredError(x.tanh()), try a.matmul(b)]
    }

    @Test("every policy reproduces itself at a fixed thread count", arguments: DeterminismPolicy.allCases)
    func reproducible(_ policy: DeterminismPolicy) throws {
        // .fast promises nothing with several threads; with one it has no order to vary.
        let threads = policy == .fast ? 1 : 2
        try withThreads(threads) {
            let first = try ExecutionPolicy.with(ExecutionPolicy(determinism: policy), Self.workload)
            let second = try ExecutionPolicy.with(ExecutionPolicy(determinism: policy), Self.workload)
            #expect(zip(first, second).allSatisfy(bitwiseEqual))
        }
    }

    @Test("bestEffort cuts long sums per worker: same value, other bits than strict with 2 threads")
    func bestEffortMovesTheCut() throws {
        try withThreads(2) {
            let strict = try ExecutionPolicy.with(.strict, Self.workload)
            let best = try ExecutionPolicy.with(.bestEffort, Self.workload)
            #expect(!bitwiseEqual(strict[0], best[0]), "the policy must reach the summation kernel")
            for (s, b) in zip(strict, best) { #expect(isClose(s.doubles, b.doubles, tolerance: 1e-5)) }
        }
    }

    @Test("float64 debug computes float32 operators in float64 and keeps the dtype")
    func float64Debug() throws {
        let x = try Tensor([1e8, 1, -1e8], shape: [3]).cast(to: .float32)
        #expect(try x.sum().item() == 0)   // (1e8 + 1) rounds to 1e8 in float32
        let debug = ExecutionPolicy(determinism: .strict, float64Debug: true)
        let promoted = try ExecutionPolicy.with(debug) { try x.sum() }
        #expect(promoted.dtype == .float32)
        #expect(try promoted.item() == 1)
        // Mixed dtypes still fail as without the policy.
        #expect(throws: TensorError.self) { try ExecutionPolicy.with(debug) { try x + t([1, 2, 3]) } }
        // Gradients flow through the promoted operators with the original dtypes.
        let g = try ExecutionPolicy.with(debug) { try gradient(at: x) { try ($0 * $0).sum() } }
        #expect(g.dtype == .float32 && g.doubles == [2e8, 2, -2e8])
    }

    @Test("overrides nest on the calling thread; other threads see the process default")
    func scoping() throws {
        #expect(ExecutionPolicy.current == ExecutionPolicy.processDefault)
        ExecutionPolicy.with(.fast) {
            #expect(ExecutionPolicy.current == .fast)
            ExecutionPolicy.with(.bestEffort) { #expect(ExecutionPolicy.current == .bestEffort) }
            #expect(ExecutionPolicy.current == .fast)
            final class Box: @unchecked Sendable { var seen: ExecutionPolicy? }
            let box = Box(), done = DispatchSemaphore(value: 0)
            Thread { box.seen = ExecutionPolicy.current; done.signal() }.start()
            done.wait()
            #expect(box.seen == ExecutionPolicy.processDefault)
        }
        #expect(ExecutionPolicy.current == ExecutionPolicy.processDefault)
    }

    @Test("text form round-trips", arguments: ["strict", "bestEffort", "fast", "strict+float64Debug", "fast+float64Debug"])
    func parsing(_ text: String) {
        #expect(ExecutionPolicy(parsing: text)?.description == text)
    }

    @Test("unknown policy names do not parse", arguments: ["", "Strict", "fast+", "fast+float32Debug", "strict+float64Debug+x"])
    func badParsing(_ text: String) {
        #expect(ExecutionPolicy(parsing: text) == nil)
    }
}

@Suite("Thread-count overrides")
struct ThreadCountTests {
    @Test("withThreadCount overrides the calling thread only and nests")
    func scoped() throws {
        let base = Parallelism.threadCount
        Parallelism.withThreadCount(3) {
            #expect(Parallelism.threadCount == 3)
            Parallelism.withThreadCount(0) { #expect(Parallelism.threadCount == 1) }
            final class Box: @unchecked Sendable { var seen = 0 }
            let box = Box(), done = DispatchSemaphore(value: 0)
            Thread { box.seen = Parallelism.threadCount; done.signal() }.start()
            done.wait()
            #expect(box.seen != 3 || base == 3)
        }
        #expect(Parallelism.threadCount == base)
    }
}

@Suite("Policy and precision settings")
struct NumericSettingsTests {
    @Test("the execution policy and the mixed-precision type nest independently")
    func independent() throws {
        try ExecutionPolicy.with(.fast) {
            try MixedPrecision.with(.bfloat16) {
                #expect(ExecutionPolicy.current == .fast && MixedPrecision.current == .bfloat16)
                ExecutionPolicy.with(ExecutionPolicy(determinism: .bestEffort, float64Debug: true)) {
                    #expect(MixedPrecision.current == .bfloat16 && ExecutionPolicy.current.float64Debug)
                }
                try MixedPrecision.with(.float16) { #expect(ExecutionPolicy.current == .fast && MixedPrecision.current == .float16) }
                #expect(MixedPrecision.current == .bfloat16)
            }
            #expect(ExecutionPolicy.current == .fast && MixedPrecision.current == nil)
        }
        #expect(ExecutionPolicy.current == ExecutionPolicy.processDefault && MixedPrecision.current == MixedPrecision.processDefault)
    }
}
