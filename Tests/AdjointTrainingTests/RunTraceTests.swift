import Adjoint
import AdjointTestSupport
import Testing

@Suite("Run traces")
struct RunTraceTests {
    static func run(seed: UInt64, perturbAt: Int? = nil, steps: Int = 4) throws -> RunTrace {
        var trace = RunTrace()
        var w = try Tensor.uniform([3, 2], key: RandomKey(seed: seed))
        for step in 1...steps {
            try w.mul_(w.scalarLike(0.5))
            if step == perturbAt { try w.add_(Tensor.full([3, 2], 0, dtype: .float64).adding(t([0, 0, 0, 1e-12, 0, 0], [3, 2]))) }
            trace.record(step: step, [("loss", try w.sum()), ("w", w)])
        }
        return trace
    }

    @Test("identical runs have no difference; recorded values are snapshots, not live references")
    func identical() throws {
        let a = try Self.run(seed: 1), b = try Self.run(seed: 1)
        #expect(a.firstDifference(from: b) == nil && a.entries.count == 8)
        #expect(a.entries[1].tensor.doubles != a.entries[3].tensor.doubles)
    }

    @Test("the first differing step, tensor and element are named")
    func difference() throws {
        let a = try Self.run(seed: 1), b = try Self.run(seed: 1, perturbAt: 3)
        let d = try #require(b.firstDifference(from: a))
        #expect(d.step == 3 && d.tensor == "loss")
        let w = try #require(RunTrace(entries: b.entries.filter { $0.name == "w" }).firstDifference(from: RunTrace(entries: a.entries.filter { $0.name == "w" })))
        #expect(w.step == 3 && w.element == 3 && Swift.abs(w.maxAbsoluteDifference! - 1e-12) < 1e-15)
        #expect("\(w)".contains("step 3, tensor 'w', element 3"))
    }

    @Test("shorter, reordered or retyped traces are reported, not crashed on")
    func structure() throws {
        let a = try Self.run(seed: 1), short = try Self.run(seed: 1, steps: 2)
        #expect(short.firstDifference(from: a)?.step == 3)
        #expect(a.firstDifference(from: short)?.detail == "the other run ends before this entry")
        var retyped = RunTrace()
        for e in a.entries { retyped.record(step: e.step, [(e.name, try e.tensor.cast(to: .float32))]) }
        #expect(retyped.firstDifference(from: a)?.detail.contains("f32") == true)
    }
}

extension RunTrace {
    init(entries: [Entry]) {
        self.init()
        for e in entries { record(step: e.step, [(e.name, e.tensor)]) }
    }
}
