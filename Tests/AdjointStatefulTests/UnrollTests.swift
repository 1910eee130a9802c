import Adjoint
import AdjointTestSupport
import Foundation
import Synchronization
import Testing

/// A small nonlinear system: s' = tanh(A·s + b + x), y = s'·s', loss = mean((s' − 0.3)²) + 0.01·y,
/// final loss Σ s².
struct Fixture {
    typealias Step = TensorStep<Tensor, Tensor, [String: Tensor], Tensor>
    static var step: Step { Step { s, x, p in
        let pre = try p["A"]!.matmul(s.reshaped([3, 1])).reshaped([3]) + p["b"]! + x
        let next = try pre.tanh()
        return (next, try (next * next).sum())
    } }
    static var loss: Step.Loss { Step.Loss.both(
        perStep: { s, y in try (s - 0.3).pow(2).mean() + y * 0.01 },
        final: { s in try (s * s).sum() }) }
    static let parameters: [String: Tensor] = [
        "A": t([0.5, -0.3, 0.2, 0.1, 0.4, -0.6, 0.3, 0.2, 0.1], [3, 3]),
        "b": t([0.05, -0.1, 0.2]),
    ]
    static let s0 = t([0.1, -0.2, 0.3])
    static func input(_ k: Int) -> Tensor {
        t([sin(Double(k)), cos(0.5 * Double(k)), 0.1 * Double(k % 3)]).multiplyingScalar(0.2)
    }
    static func run(_ steps: Int, _ schedule: CheckpointSchedule, options: UnrollOptions = UnrollOptions(),
                    parameters: [String: Tensor] = parameters, s0: Tensor = s0) throws -> UnrollResult<Step> {
        try unroll(step, from: s0, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                   options: options, inputs: input)
    }
}

extension Tensor {
    func multiplyingScalar(_ c: Double) -> Tensor { try! self * c }
}

func sameBits(_ a: UnrollResult<Fixture.Step>, _ b: UnrollResult<Fixture.Step>) -> Bool {
    a.loss.bitPattern == b.loss.bitPattern
        && zip(a.parameterGradient.tensors, b.parameterGradient.tensors).allSatisfy(bitwiseEqual)
        && bitwiseEqual(a.initialStateGradient, b.initialStateGradient)
        && bitwiseEqual(a.finalState, b.finalState)
}

@Suite("unroll through time")
struct UnrollTests {
    @Test("storeAll gradients match central differences of the loss")
    func finiteDifferences() throws {
        let T = 6
        let result = try Fixture.run(T, .storeAll)
        let h = 1e-6
        for name in ["A", "b"] {
            let base = Fixture.parameters[name]!.doubles
            let g = result.parameterGradient[name]!.doubles
            for i in base.indices {
                var plus = base, minus = base
                plus[i] += h
                minus[i] -= h
                var pp = Fixture.parameters, pm = Fixture.parameters
                pp[name] = try Tensor(plus, shape: Fixture.parameters[name]!.shape)
                pm[name] = try Tensor(minus, shape: Fixture.parameters[name]!.shape)
                let fd = (try Fixture.run(T, .storeAll, parameters: pp).loss - (try Fixture.run(T, .storeAll, parameters: pm).loss)) / (2 * h)
                #expect(abs(fd - g[i]) < 1e-7 * max(1, abs(fd)), "∂L/∂\(name)[\(i)]: \(g[i]) vs \(fd)")
            }
        }
        let s0 = Fixture.s0.doubles
        for i in s0.indices {
            var plus = s0, minus = s0
            plus[i] += h
            minus[i] -= h
            let fd = (try Fixture.run(T, .storeAll, s0: t(plus)).loss - (try Fixture.run(T, .storeAll, s0: t(minus)).loss)) / (2 * h)
            #expect(abs(fd - result.initialStateGradient.doubles[i]) < 1e-7)
        }
    }

    static let schedules: [CheckpointSchedule] = [
        .uniform(every: 1), .uniform(every: 3), .uniform(every: 7), .uniform(every: 100),
        .binomial(snapshots: 1), .binomial(snapshots: 2), .binomial(snapshots: 3), .binomial(snapshots: 5), .binomial(snapshots: 100),
        .online(snapshots: 2), .online(snapshots: 3), .online(snapshots: 6),
        .multiTier(ram: 2, disk: 2), .multiTier(ram: 0, disk: 3),
        .truncated(window: 1000),
    ]

    @Test("every schedule gives storeAll's loss and gradients, bitwise", arguments: schedules)
    func schedulesAgree(_ schedule: CheckpointSchedule) throws {
        for T in [1, 2, 7, 23, 50] {
            let reference = try Fixture.run(T, .storeAll)
            let result = try Fixture.run(T, schedule)
            #expect(sameBits(reference, result), "\(schedule) at T = \(T)")
            #expect(result.report.recordedSteps == T)
        }
    }

    @Test("recomputation finds its inputs in the cache: fewer reads, the same result bitwise",
          arguments: [CheckpointSchedule.binomial(snapshots: 3), .uniform(every: 10), .online(snapshots: 4)])
    func inputCache(_ schedule: CheckpointSchedule) throws {
        let reads = Lock(0)
        func run(_ slots: Int, bytes: Int = 64 << 20) throws -> UnrollResult<Fixture.Step> {
            reads.withLock { $0 = 0 }
            return try unroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, steps: 60, loss: Fixture.loss, schedule: schedule,
                              options: UnrollOptions(inputCacheSlots: slots, inputCacheBytes: bytes)) { k in
                reads.withLock { $0 += 1 }
                return Fixture.input(k)
            }
        }
        let uncached = try run(0)
        let uncachedReads = reads.withLock { $0 }
        #expect(uncached.report.inputReads == uncachedReads && uncachedReads == uncached.report.forwardSteps + uncached.report.recordedSteps)
        let cached = try run(4096)
        #expect(cached.report.inputReads == reads.withLock { $0 } && cached.report.inputReads == 60, "\(cached.report)")
        let small = try run(7)   // slots shared between steps: more reads, never a wrong input
        #expect(small.report.inputReads > 60 && small.report.inputReads <= uncachedReads)
        let budget = try run(4096, bytes: 5 * 24)   // room for five 3-element inputs at a time
        #expect(budget.report.inputReads > 60 && budget.report.inputReads <= uncachedReads)
        let none = try run(4096, bytes: 0)
        #expect(none.report.inputReads == uncachedReads)
        for r in [cached, small, budget, none] {
            #expect(r.loss.bitPattern == uncached.loss.bitPattern && bitwiseEqual(r.initialStateGradient, uncached.initialStateGradient))
            #expect(zip(r.parameterGradient.tensors, uncached.parameterGradient.tensors).allSatisfy(bitwiseEqual))
        }
    }

    @Test("binomial runs exactly the Griewank–Walther optimum of forward steps")
    func revolveCount() throws {
        for s in 1...12 {
            for T in [1, 2, 3, 4, 5, 8, 13, 20, 33, 64, 100, 257, 1000] where s <= 3 ? T <= 257 : true {
                var forward = 0, current = 0, peak = 0, live = 0
                try CheckpointSchedule.binomial(snapshots: s).forEachAction(steps: T) { action in
                    switch action {
                    case let .advance(to): forward += to - current; current = to
                    case let .restore(k): current = k
                    case let .record(k): current = k + 1
                    case .store: live += 1; peak = max(peak, live)
                    case .free: live -= 1
                    default: break
                    }
                }
                #expect(forward == Revolve.forwardSteps(steps: T, snapshots: s), "T = \(T), s = \(s)")
                #expect(peak <= s)
            }
        }
        // Large horizons: the plan alone (no steps run).
        for (T, s) in [(100_000, 10), (1_000_000, 8388), (50_000, 3)] {
            let cost = try CheckpointSchedule.binomial(snapshots: s).cost(steps: T)
            #expect(cost.forwardSteps == Revolve.forwardSteps(steps: T, snapshots: s))
            #expect(cost.peakSnapshots <= s && cost.peakRecordedSteps == 1)
        }
    }

    @Test("the closed form equals the optimum found by exhaustive search")
    func closedFormIsOptimal() {
        // t(l, s) = min over the first advance m of m + t(l − m, s − 1) + t(m, s).
        var best = [[Int]](repeating: [Int](repeating: Int.max / 4, count: 9), count: 61)
        for s in 0...8 { best[1][s] = 0 }
        for l in 2...60 {
            for s in 1...8 {
                for m in 1..<l {
                    let right = l - m == 1 ? 0 : best[l - m][s - 1]
                    best[l][s] = min(best[l][s], m + right + best[m][s])
                }
                #expect(best[l][s] == Revolve.forwardSteps(steps: l, snapshots: s), "l = \(l), s = \(s)")
            }
        }
    }

    @Test("an executed binomial unroll reports the optimum and holds at most s snapshots")
    func binomialReport() throws {
        let result = try Fixture.run(40, .binomial(snapshots: 4))
        #expect(result.report.forwardSteps == Revolve.forwardSteps(steps: 40, snapshots: 4))
        #expect(result.report.recomputations == result.report.forwardSteps)
        #expect(result.report.peakSnapshots <= 4)
        #expect(result.report.peakSnapshotBytes == result.report.peakSnapshots * 24)
        #expect(result.report.peakRecordedSteps == 1)
        #expect(result.report.replayChecks > 0)
        let all = try Fixture.run(40, .storeAll)
        #expect(all.report.forwardSteps == 0 && all.report.peakRecordedSteps == 40 && all.report.recomputations == 0)
    }

    @Test("online snapshots never exceed the budget; with 8 or more the cost stays near binomial's")
    func onlineBudget() throws {
        for s in [2, 4, 8, 16, 32] {
            for T in [10, 100, 1000, 10000] {
                let cost = try CheckpointSchedule.online(snapshots: s).cost(steps: T)
                let optimum = Revolve.forwardSteps(steps: T, snapshots: s)
                #expect(cost.peakSnapshots <= s && cost.recordedSteps == T)
                #expect(cost.forwardSteps >= optimum)
                // Measured ratios (Documentation/Checkpointing.md): ≤ 2.4 at s = 8, ≤ 1.5 at s = 16, ≤ 1.1 at s = 32.
                if s >= 8 {
                    let bound = s == 8 ? 2.5 : s == 16 ? 1.5 : 1.1
                    #expect(Double(cost.forwardSteps) <= bound * Double(optimum) + 1, "online:\(s) T = \(T): \(cost.forwardSteps) vs \(optimum)")
                }
            }
        }
    }

    @Test("truncated BPTT equals the sum of per-window gradients")
    func truncatedWindows() throws {
        let T = 10, window = 4
        let result = try Fixture.run(T, .truncated(window: window))
        var state = Fixture.s0
        var expected: [String: Tensor]? = nil
        var loss = 0.0
        var start = 0
        while start < T {
            let end = min(start + window, T)
            let isLast = end == T
            let windowLoss = isLast ? Fixture.loss : Fixture.Step.Loss.perStep(Fixture.loss.perStep!)
            let r = try unroll(Fixture.step, from: state, parameters: Fixture.parameters, steps: end - start,
                               loss: windowLoss, schedule: .storeAll) { Fixture.input(start + $0) }
            loss += r.loss
            expected = expected.map { e in e.merging(r.parameterGradient) { a, b in try! a + b } } ?? r.parameterGradient
            state = r.finalState
            start = end
        }
        #expect(abs(result.loss - loss) < 1e-12)
        for name in ["A", "b"] {
            #expect(isClose(result.parameterGradient[name]!.doubles, expected![name]!.doubles, tolerance: 1e-12))
        }
        #expect(bitwiseEqual(result.finalState, state))
        // Snapshots: the window's states plus the next window's start, never stored twice.
        #expect(result.report.peakSnapshots == window + 1)
        #expect(result.report.peakSnapshotBytes == (window + 1) * 24)
        #expect(try CheckpointSchedule.truncated(window: window).cost(steps: T).peakSnapshots == window + 1)
        // A truncated gradient differs from the full one.
        let full = try Fixture.run(T, .storeAll)
        #expect(!isClose(full.parameterGradient["A"]!.doubles, result.parameterGradient["A"]!.doubles, tolerance: 1e-6))
    }

    /// The fixture's step plus a drift that grows with every call: recomputations differ.
    static func noisyStep() -> Fixture.Step {
        final class Counter { var calls = 0 }
        let counter = Counter()
        return Fixture.Step { s, x, p in
            counter.calls += 1
            let (next, y) = try Fixture.step.body(s, x, p)
            return (try next + Double(counter.calls) * 1e-15, y)
        }
    }

    @Test("a non-deterministic step raises ReplayDivergence naming the state and both hashes")
    func replayDivergence() throws {
        let noisy = Self.noisyStep()
        do {
            _ = try unroll(noisy, from: Fixture.s0, parameters: Fixture.parameters, steps: 12, loss: Fixture.loss,
                           schedule: .binomial(snapshots: 3), inputs: Fixture.input)
            Issue.record("no divergence detected")
        } catch let error as ReplayDivergence {
            #expect(error.step > 0 && error.step <= 12)
            #expect(error.original != error.recomputed)
            #expect(error.description.contains("s[\(error.step)]") && error.description.contains("\(error.original)"))
        }
        // With checking off the same run completes (and its gradient is of a different trajectory).
        let unchecked = try unroll(noisy, from: Fixture.s0, parameters: Fixture.parameters, steps: 12, loss: Fixture.loss,
                                   schedule: .binomial(snapshots: 3), options: UnrollOptions(verifyReplay: false),
                                   inputs: Fixture.input)
        #expect(unchecked.report.replayChecks == 0)
    }

    @Test("replay verification keeps at most verificationHashes hashes, checks every S-th state beyond, and still catches divergence")
    func boundedVerification() throws {
        let noisy = Self.noisyStep()
        let options = UnrollOptions(verificationHashes: 8)
        do {
            _ = try unroll(noisy, from: Fixture.s0, parameters: Fixture.parameters, steps: 100, loss: Fixture.loss,
                           schedule: .binomial(snapshots: 4), options: options, inputs: Fixture.input)
            Issue.record("no divergence detected")
        } catch let error as ReplayDivergence {
            #expect(error.checkedEvery == 17 && (error.step % 17 == 0 || error.step == 100))
            #expect(error.description.contains("checked every 17 steps"))
        }
        let exact = try Fixture.run(100, .binomial(snapshots: 4), options: options)
        #expect(exact.report.verificationHashes <= 8 && exact.report.checkedEvery == 17 && exact.report.replayChecks > 0)
        #expect(exact.report.description.contains("every 17-th state; \(exact.report.verificationHashes) hashes"))
        let everyState = try Fixture.run(6, .binomial(snapshots: 2), options: UnrollOptions(verificationHashes: 8))
        #expect(everyState.report.checkedEvery == 1 && everyState.report.verificationHashes == 8)
        // The same gradient whatever the budget: verification observes, never changes, the run.
        let full = try Fixture.run(100, .binomial(snapshots: 4))
        #expect(bitwiseEqual(full.parameterGradient["A"]!, exact.parameterGradient["A"]!))
        #expect(full.report.checkedEvery == 1 && full.report.verificationHashes == 102)
    }

    @Test("multi-tier snapshots go to files in the directory given, which are removed afterwards")
    func multiTierFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-mt-\(UUID().uuidString)").path
        var writes: [String] = []
        let result = try Fixture.run(30, .multiTier(ram: 2, disk: 2), options: UnrollOptions(snapshotDirectory: dir, progress: { _, _ in
            writes = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? writes
        }))
        #expect(result.report.diskWrites > 0 && result.report.diskReads > 0)
        #expect(writes.allSatisfy { $0.hasSuffix(".snapshot") } && !writes.isEmpty)
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).isEmpty)
        #expect(sameBits(result, try Fixture.run(30, .storeAll)))
    }

    @Test("progress counts every step evaluation")
    func progress() throws {
        var last = (0, 0)
        let result = try Fixture.run(25, .binomial(snapshots: 3), options: UnrollOptions(progress: { last = ($0, $1) }))
        #expect(last.0 == last.1)
        #expect(last.1 == result.report.forwardSteps + result.report.recordedSteps)
    }

    @Test("schedules print as the text they parse from")
    func scheduleText() throws {
        let all: [CheckpointSchedule] = [.storeAll, .uniform(every: 10), .binomial(snapshots: 32), .online(snapshots: 16),
                                         .multiTier(ram: 8, disk: 4), .truncated(window: 50)]
        for schedule in all {
            #expect(CheckpointSchedule(schedule.description) == schedule)
        }
        #expect(CheckpointSchedule("revolve:4") == .binomial(snapshots: 4))
        for bad in ["binomial", "binomial:x", "binomial:0", "uniform:-1", "online:1", "multiTier:3", "multiTier:0+0",
                    "storeAll:3", "lru:4"] {
            #expect(throws: UnrollError.self, "\(bad)") { try CheckpointSchedule.parse(bad) }
        }
        #expect(try CheckpointSchedule.binomial(snapshots: 2).actions(steps: 3).map(\.description) == [
            "store 0", "restore 0", "advance→1", "store 1", "restore 1", "advance→2", "record 2", "pullback 2",
            "restore 1", "record 1", "pullback 1", "free 1", "restore 0", "record 0", "pullback 0", "free 0",
        ])
    }

    @Test("bad arguments are typed errors")
    func badArguments() throws {
        #expect(throws: UnrollError.invalidSteps(0)) { try Fixture.run(0, .storeAll) }
        #expect(throws: UnrollError.missingInput(step: 3, available: 3)) {
            try unroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters,
                       inputs: (0..<3).map(Fixture.input), steps: 5, loss: Fixture.loss)
        }
        #expect(throws: UnrollError.self) { try Fixture.run(5, .binomial(snapshots: 0)) }
        // A per-step loss must be one element, in reverse and in forward mode.
        let vectorLoss = Fixture.Step.Loss.perStep { s, _ in s }
        #expect(throws: AutodiffError.nonScalarOutput(shape: [3])) {
            try unroll(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, steps: 3, loss: vectorLoss,
                       schedule: .storeAll, inputs: Fixture.input)
        }
        #expect(throws: AutodiffError.nonScalarOutput(shape: [3])) {
            var online = try OnlineSensitivity(Fixture.step, state: Fixture.s0, parameters: Fixture.parameters, loss: vectorLoss)
            try online.advance(input: Fixture.input(0))
        }
    }
}
