import AdjointTensor
import AdjointTestSupport
import Testing

@Suite("Random streams")
struct RandomStreamTests {
    @Test("a stream never repeats a draw, and a restored stream continues identically")
    func stream() throws {
        var a = RandomStream(key: RandomKey(seed: 3))
        let first = try a.uniform([5]), second = try a.uniform([5])
        #expect(!bitwiseEqual(first, second) && a.counter == 10)
        var restored = RandomStream(key: RandomKey(seed: 3), counter: a.counter)
        #expect(bitwiseEqual(try a.normal([7], dtype: .float32), try restored.normal([7], dtype: .float32)))
    }
}
