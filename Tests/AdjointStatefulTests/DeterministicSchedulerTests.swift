import Adjoint
import AdjointTestSupport
import Testing

@Suite("Deterministic concurrency")
struct DeterministicSchedulerTests {
    struct Shared { var x: Tensor; var theta: Tensor }

    /// `x += 1` and `x *= θ`, each a read into a register and a write back: two atomic operations.
    static var tasks: [SimulatedTask<Shared>] { [
        SimulatedTask("increment", [{ s, r in r["x"] = s.x }, { s, r in s.x = try r["x"]! + 1 }]),
        SimulatedTask("double", [{ s, r in r["x"] = s.x }, { s, r in s.x = try r["x"]! * s.theta }]),
    ] }

    /// Every interleaving of two two-operation tasks, with x₀ = 3, θ = 2: the final x and its
    /// derivatives (∂x/∂x₀, ∂x/∂θ) along that interleaving.
    static let cases: [([Int], Double, Double, Double)] = [
        ([0, 0, 1, 1], 8, 2, 4),     // (x+1)·θ
        ([1, 1, 0, 0], 7, 2, 3),     // x·θ + 1
        ([0, 1, 0, 1], 6, 2, 3),     // both read x; the doubling writes last: x·θ (the increment is lost)
        ([0, 1, 1, 0], 4, 1, 0),     // both read x; the increment writes last: x + 1 (the doubling is lost)
        ([1, 0, 0, 1], 6, 2, 3),
        ([1, 0, 1, 0], 4, 1, 0),
    ]

    static func run(_ order: [Int], log: (any EventLog)?) throws -> (Double, [Double]) {
        var value = 0.0
        let g = try gradient(at: [Tensor(3.0), Tensor(2.0)]) { p in
            var state = Shared(x: p[0], theta: p[1])
            var scheduler = DeterministicScheduler(policy: .fixed(order))
            try scheduler.run(tasks, state: &state, log: log)
            value = try state.x.untracked.item()   // logged, not branched on
            return state.x
        }
        return (value, try g.map { try $0.item() })
    }

    @Test("each interleaving has its own value and derivatives, and its replay from the log reproduces both",
          arguments: cases)
    func interleavings(_ order: [Int], _ value: Double, _ dx0: Double, _ dtheta: Double) throws {
        let log = MemoryEventLog()
        let (v, g) = try Self.run(order, log: log)
        #expect(v == value && g == [dx0, dtheta])
        #expect(try log.allEvents().compactMap(\.choice) == order)
        // Replay: the interleaving comes from the log, not from the policy.
        var replayedValue = 0.0
        let replayed = try gradient(at: [Tensor(3.0), Tensor(2.0)]) { p in
            var state = Shared(x: p[0], theta: p[1])
            #expect(try DeterministicScheduler.replay(Self.tasks, state: &state, log: log) == order)
            replayedValue = try state.x.untracked.item()
            return state.x
        }
        #expect(replayedValue == value)
        #expect(try replayed.map { try $0.item() } == [dx0, dtheta])
    }

    @Test("a random policy is reproducible from its key and recorded; bad fixed schedules are refused")
    func randomAndErrors() throws {
        var seen = Set<[Int]>()
        for seed in 0..<40 {
            var a = DeterministicScheduler(policy: .random(RandomStream(key: RandomKey(seed: UInt64(seed)))))
            var b = DeterministicScheduler(policy: .random(RandomStream(key: RandomKey(seed: UInt64(seed)))))
            var s1 = Shared(x: Tensor(3.0), theta: Tensor(2.0)), s2 = s1
            let log = MemoryEventLog()
            let order = try a.run(Self.tasks, state: &s1, log: log)
            #expect(try b.run(Self.tasks, state: &s2) == order)
            var s3 = Shared(x: Tensor(3.0), theta: Tensor(2.0))
            #expect(try DeterministicScheduler.replay(Self.tasks, state: &s3, log: log) == order)
            #expect(bitwiseEqual(s1.x, s3.x))
            seen.insert(order)
        }
        #expect(seen.count == 6, "40 seeds should reach all 6 interleavings")
        var rr = DeterministicScheduler(policy: .roundRobin)
        var s = Shared(x: Tensor(3.0), theta: Tensor(2.0))
        #expect(try rr.run(Self.tasks, state: &s) == [0, 1, 0, 1])
        for bad in [[0, 0, 0, 1], [0, 1], [2, 0, 1, 1]] {
            var scheduler = DeterministicScheduler(policy: .fixed(bad))
            var state = Shared(x: Tensor(3.0), theta: Tensor(2.0))
            #expect(throws: EventLogError.self) { try scheduler.run(Self.tasks, state: &state) }
        }
    }
}
