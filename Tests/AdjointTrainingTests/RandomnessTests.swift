import Adjoint
import AdjointTestSupport
import Testing

@Suite("Dropout and shuffled batches")
struct RandomnessTests {
    @Test("dropout keeps the expectation, masks the gradient, and validates its rate")
    func dropoutLayer() throws {
        var stream = RandomStream(key: RandomKey(seed: 4))
        let x = try Tensor.ones([100_000], dtype: .float32)
        let y = try dropout(x, rate: 0.25, stream: &stream)
        let kept = y.doubles.filter { $0 != 0 }
        #expect(kept.allSatisfy { Swift.abs($0 - 4.0 / 3) < 1e-6 })
        #expect(Swift.abs(Double(kept.count) / 100_000 - 0.75) < 0.01)
        #expect(Swift.abs(try y.mean().item() - 1) < 0.02)
        // The gradient is the mask: zero where dropped, 1/(1−p) where kept.
        var replay = RandomStream(key: RandomKey(seed: 4))
        let g = try gradient(at: x) { try dropout($0, rate: 0.25, stream: &replay).sum() }
        #expect(g.doubles == y.doubles)
        #expect(bitwiseEqual(try dropout(x, rate: 0, stream: &stream), x))
        for bad in [-0.1, 1, .nan] { #expect(throws: TrainingError.self) { try dropout(x, rate: bad, stream: &stream) } }
        #expect(throws: TensorError.self) { try dropout(Tensor.zeros([2], dtype: .int64), rate: 0.5, stream: &stream) }
    }

    @Test("each epoch is a fresh permutation; a restored position continues the same sequence")
    func batches() throws {
        var data = try ShuffledBatches(count: 10, batchSize: 3, key: RandomKey(seed: 5))
        #expect(data.batchesPerEpoch == 3)
        var epochs: [[Int]] = []
        for _ in 0..<3 {
            var seen: [Int] = []
            for _ in 0..<3 { seen += try data.next().doubles.map { Int($0) } }
            #expect(Set(seen).count == 9 && seen.allSatisfy { (0..<10).contains($0) })
            epochs.append(seen)
        }
        #expect(epochs[0] != epochs[1] && epochs[1] != epochs[2])
        #expect(data.position == DataPosition(epoch: 3, batch: 0))
        var resumed = try ShuffledBatches(count: 10, batchSize: 3, key: RandomKey(seed: 5), position: DataPosition(epoch: 1, batch: 1))
        #expect(try resumed.next().doubles.map { Int($0) } == Array(epochs[1][3..<6]))
        #expect(throws: TrainingError.self) { try ShuffledBatches(count: 10, batchSize: 11, key: RandomKey(seed: 5)) }
        #expect(throws: TrainingError.self) { try ShuffledBatches(count: 10, batchSize: 3, key: RandomKey(seed: 5), position: DataPosition(epoch: 0, batch: 3)) }
    }

    @Test("optimizer state restores refuse unknown slots and negative steps", arguments: [0, 1, 2])
    func optimizerRestore(_ kind: Int) throws {
        let candidates: [any Optimizer] = [try SGD(learningRate: .constant(0.1), momentum: 0.9),
                                           try Adam(learningRate: .constant(0.1)), try AdamW(learningRate: .constant(0.1))]
        var optimizer = candidates[kind]
        #expect(throws: TrainingError.self) { try optimizer.restore(state: ["nope.w": Tensor(1.0)], step: 1) }
        #expect(throws: TrainingError.self) { try optimizer.restore(state: [:], step: -1) }
        #expect(optimizer.step == 0)
        let slot = kind == 0 ? "momentum" : "m"
        try optimizer.restore(state: ["\(slot).w": Tensor(2.0)], step: 4)
        #expect(optimizer.step == 4 && optimizer.state.keys.sorted() == ["\(slot).w"])
    }
}
