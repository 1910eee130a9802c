import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Gradient accumulation and clipping")
struct GradientTests {
    @Test("accumulating micro-batches weighted by their share equals one large batch")
    func accumulation() throws {
        let key = RandomKey(seed: 11)
        let x = try Tensor.uniform([12, 4], key: key), y = try Tensor.uniform([12, 2], key: key.fold(in: 1))
        let params = ["w": try Tensor.uniform([4, 2], key: key.fold(in: 2)), "b": try Tensor.zeros([2])]
        func loss(_ p: [String: Tensor], _ x: Tensor, _ y: Tensor) throws -> Tensor {
            try (x.matmul(p["w"]!) + p["b"]!).tanh().meanSquaredError(y)
        }
        let full = try gradient(at: params) { try loss($0, x, y) }
        var accumulator = GradientAccumulator<[String: Tensor]>()
        for (start, size) in [(0, 5), (5, 4), (9, 3)] {
            let xs = try x.slice(starts: [start, 0], ends: [start + size, 4]), ys = try y.slice(starts: [start, 0], ends: [start + size, 2])
            try accumulator.accumulate(try gradient(at: params) { try loss($0, xs, ys) }, weight: Double(size) / 12)
        }
        #expect(accumulator.count == 3)
        let summed = try accumulator.gradient()
        for name in ["w", "b"] { #expect(isClose(summed[name]!.doubles, full[name]!.doubles, tolerance: 1e-14)) }
        accumulator.zeroGrad()
        #expect(throws: TrainingError.nothingAccumulated) { try accumulator.gradient() }
        try accumulator.accumulate(full)
        #expect(throws: TrainingError.self) { try accumulator.accumulate(["w": t([1])]) }
        #expect(accumulator.count == 1)
    }

    @Test("clipping by global norm scales every tensor together; below the limit nothing changes")
    func globalNorm() throws {
        var g = ["a": t([3, 0]), "b": t([4])]
        #expect(try GradientClipping.globalNorm(g) == 5)
        let before = try GradientClipping.clipByGlobalNorm(&g, maxNorm: 1)
        #expect(before == 5)
        #expect(isClose(g["a"]!.doubles, [0.6, 0]) && isClose(g["b"]!.doubles, [0.8]))
        var small = ["a": t([0.1, 0.2])]
        try GradientClipping.clipByGlobalNorm(&small, maxNorm: 1)
        #expect(small["a"]!.doubles == [0.1, 0.2])
        #expect(throws: TrainingError.self) { try GradientClipping.clipByGlobalNorm(&small, maxNorm: 0) }
        var f32 = [try t([3, 4]).cast(to: .float32)]
        #expect(try GradientClipping.clipByGlobalNorm(&f32, maxNorm: 2.5) == 5)
        #expect(f32[0].dtype == .float32 && isClose(f32[0].doubles, [1.5, 2]))
    }

    @Test("clipping by value clamps elements")
    func byValue() throws {
        var g = [t([-3, 0.5, 2])]
        try GradientClipping.clipByValue(&g, limit: 1)
        #expect(g[0].doubles == [-1, 0.5, 1])
    }
}

@Suite("Learning-rate schedules")
struct LearningRateScheduleTests {
    @Test("step, cosine and warm-up values")
    func values() throws {
        let step = LearningRateSchedule.step(base: 1, every: 10, factor: 0.1)
        #expect(step.value(at: 0) == 1 && step.value(at: 9) == 1 && isClose([step.value(at: 10)], [0.1]) && isClose([step.value(at: 25)], [0.01]))
        let cosine = LearningRateSchedule.cosine(base: 1, minimum: 0.1, steps: 100)
        #expect(cosine.value(at: 0) == 1 && isClose([cosine.value(at: 50)], [0.55]) && cosine.value(at: 100) == 0.1 && cosine.value(at: 500) == 0.1)
        let warm = LearningRateSchedule.warmup(steps: 4, then: .constant(2))
        #expect([0, 1, 2, 3, 4, 10].map(warm.value(at:)) == [0.5, 1, 1.5, 2, 2, 2])
    }

    @Test("schedules are values: they compare, print and round-trip through JSON")
    func codable() throws {
        let s = LearningRateSchedule.warmup(steps: 100, then: .cosine(base: 3e-4, minimum: 0, steps: 10_000))
        let decoded = try JSONDecoder().decode(LearningRateSchedule.self, from: JSONEncoder().encode(s))
        #expect(decoded == s)
        #expect(s.description == "warmup(steps: 100, then: cosine(base: 0.0003, minimum: 0.0, steps: 10000))")
    }

    @Test("invalid schedules are typed errors")
    func invalid() {
        #expect(throws: TrainingError.self) { try LearningRateSchedule.step(base: 1, every: 0, factor: 0.5).validate() }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.step(base: 1, every: 5, factor: 1.5).validate() }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.warmup(steps: 3, then: .constant(.nan)).validate() }
        #expect(throws: TrainingError.self) { try LearningRateSchedule.cosine(base: 1, minimum: -1, steps: 3).validate() }
    }
}
