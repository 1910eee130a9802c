import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Event-sourced runs: record, replay, resume, differentiate after the fact")
struct EventSourcedRunTests {
    /// A live run of the fixture system over `steps` inputs, logged with a checkpoint every 25 steps.
    static func live(_ log: any EventLog, steps: Range<Int>, checkpointEvery: Int = 25) throws -> EventSourcedRun<Fixture.Step> {
        let run = try EventSourcedRun(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, log: log, checkpointEvery: checkpointEvery)
        for k in steps {
            try run.advance(input: Fixture.input(k), events: [Event(kind: .external, step: 0, name: "arrival", values: [Double(k)])])
        }
        return run
    }

    @Test("replaying the log rebuilds every state and reproduces the live hashes", arguments: [Backend.memory, .file, .sqlite])
    func replay(_ backend: Backend) throws {
        let log = try backend.open(EventLogTests.path("run"))
        let run = try Self.live(log, steps: 0..<100)
        let recorded = try RecordedTrajectory(log: log)
        #expect(recorded.steps == 100 && recorded.checkpointSteps == [0, 25, 50, 75, 100])
        #expect(recorded.events(at: 42).map(\.values) == [[42]])
        let rebuilt = try recorded.replay(Fixture.step, parameters: Fixture.parameters, like: Fixture.s0)
        #expect(bitwiseEqual(rebuilt, run.state))
        let midway = try recorded.replay(Fixture.step, parameters: Fixture.parameters, like: Fixture.s0, to: 60)
        #expect(Fixture.step.hash(midway) == recorded.hash(at: 60))
        // Other parameters: the replay (from the checkpoint at 75) names the first state that differs.
        var other = Fixture.parameters
        other["b"] = t([0.05, -0.1, 0.2000001])
        #expect { try recorded.replay(Fixture.step, parameters: other, like: Fixture.s0, to: 99) } throws: { error in
            if case let .replayMismatch(step, _) = error as? EventLogError { return step == 76 } else { return false }
        }
    }

    @Test("a run resumed from its log continues exactly; a step torn by a crash is dropped")
    func resume() throws {
        let straightLog = MemoryEventLog()
        let straight = try Self.live(straightLog, steps: 0..<80)

        let path = EventLogTests.path("resume")
        let first = try FileEventLog(path: path)
        _ = try Self.live(first, steps: 0..<50)
        // A crash inside step 50: its input is logged, the state hash is not.
        _ = try first.append(Event.input(step: 50, Fixture.input(50)))
        try first.close()
        let reopened = try FileEventLog(path: path)
        let resumed = try EventSourcedRun(Fixture.step, from: Fixture.s0, parameters: Fixture.parameters, log: reopened, checkpointEvery: 25)
        #expect(resumed.time == 50)
        for k in 50..<80 { try resumed.advance(input: Fixture.input(k), events: [Event(kind: .external, step: 0, name: "arrival", values: [Double(k)])]) }
        #expect(bitwiseEqual(resumed.state, straight.state))
        let a = try RecordedTrajectory(log: reopened), b = try RecordedTrajectory(log: straightLog)
        #expect(a.steps == 80 && (0...80).allSatisfy { a.hash(at: $0) == b.hash(at: $0) })
        #expect(a.events(at: 50).count == 1)
    }

    @Test("differentiating the recorded run equals unrolling the same inputs, bitwise, under any schedule",
          arguments: [CheckpointSchedule.storeAll, .binomial(snapshots: 3), .multiTier(ram: 2, disk: 2)])
    func gradient(_ schedule: CheckpointSchedule) throws {
        let log = MemoryEventLog()
        _ = try Self.live(log, steps: 0..<90)
        let recorded = try RecordedTrajectory(log: log)
        let fromLog = try unroll(Fixture.step, recorded: recorded, parameters: Fixture.parameters, template: Fixture.s0,
                                 loss: Fixture.loss, schedule: schedule)
        let direct = try Fixture.run(90, .storeAll)
        #expect(sameBits(fromLog, direct))
        #expect(fromLog.report.replayChecks >= 90)   // every state at least once against the live hash
        // Segments start from logged checkpoints: no state before a segment is recomputed for it.
        if case .storeAll = schedule { #expect(fromLog.report.forwardSteps == 0 && fromLog.report.recordedSteps == 90) }
    }

    @Test("a step that differs from the one that ran is caught against the live hashes")
    func divergence() throws {
        let log = MemoryEventLog()
        _ = try Self.live(log, steps: 0..<30)
        let recorded = try RecordedTrajectory(log: log)
        let drifting = Fixture.Step { s, x, p in
            let next = try (p["A"]!.matmul(s.reshaped([3, 1])).reshaped([3]) + p["b"]! + x).tanh() * 1.0000001
            return (next, try (next * next).sum())
        }
        #expect(throws: ReplayDivergence.self) {
            try unroll(drifting, recorded: recorded, parameters: Fixture.parameters, template: Fixture.s0, loss: Fixture.loss, schedule: .storeAll)
        }
        #expect(throws: EventLogError.self) { try RecordedTrajectory(log: MemoryEventLog([Event(kind: .marker, step: 0)])) }
    }
}
