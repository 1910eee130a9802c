import Adjoint
import AdjointExamples
import AdjointTestSupport
import Testing

@Suite("MLP training workload")
struct MLPTrainingTests {
    static var small: MLPTraining.Configuration {
        var c = MLPTraining.Configuration()
        c.examples = 512
        c.hidden = 32
        c.batchSize = 32
        return c
    }

    @Test("100 steps straight equal 50, a checkpoint through bytes, a fresh process state, and 50 more — bitwise")
    func bitExactResume() throws {
        var straight = try MLPTraining(Self.small)
        for _ in 0..<100 { try straight.trainStep() }

        var first = try MLPTraining(Self.small)
        for _ in 0..<50 { try first.trainStep() }
        let bytes = try first.checkpoint(run: .current()).encoded()
        // Nothing of `first` survives: a new run from the configuration and the file's bytes only,
        // on another thread count (the strict policy makes that irrelevant).
        var resumed = try MLPTraining(Self.small)
        try resumed.restore(from: Checkpoint.decode(bytes))
        #expect(resumed.step == 50)
        try withThreads(Parallelism.threadCount == 1 ? 2 : 1) { for _ in 0..<50 { try resumed.trainStep() } }

        #expect(resumed.step == 100 && straight.step == 100)
        for (a, b) in zip(straight.stateTensors, resumed.stateTensors) { #expect(a.name == b.name && bitwiseEqual(a.tensor, b.tensor), "\(a.name)") }
        #expect(straight.digest == resumed.digest && straight.lastLoss == resumed.lastLoss)
        // Dropout and shuffling really are in play: the loss falls, and the state differs from a
        // run that resumed without its data position and dropout stream.
        #expect(straight.lastLoss < 1.2)
        var forgetful = try MLPTraining(Self.small)
        var checkpoint = try Checkpoint.decode(bytes)
        checkpoint.manifest.random["dropout"] = RandomStream(key: RandomKey(seed: 1))
        try forgetful.restore(from: checkpoint)
        for _ in 0..<50 { try forgetful.trainStep() }
        #expect(forgetful.digest != straight.digest)
    }

    @Test("a checkpoint from another configuration is refused")
    func otherConfiguration() throws {
        var a = try MLPTraining(Self.small)
        try a.trainStep()
        var other = Self.small
        other.dropout = 0.2
        var b = try MLPTraining(other)
        #expect(throws: CheckpointError.self) { try b.restore(from: a.checkpoint(run: .current())) }
    }
}
