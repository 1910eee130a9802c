import Adjoint
import AdjointTestSupport
import Testing

/// The non-throwing face gives the throwing operators' results bitwise, differentiates the same,
/// and stops the process with the typed error's message on a mismatch.
@Suite("TrappingTensor: the non-throwing layer")
struct TrappingTensorTests {
    static let key = RandomKey(seed: 11)

    @Test("a small network reads like math and equals the throwing operators bitwise, value and gradient")
    func sameResults() throws {
        let x = try Tensor.normal([5, 3], key: Self.key), target = try Tensor.normal([5, 2], key: Self.key.fold(in: 1))
        let w = try Tensor.normal([3, 2], key: Self.key.fold(in: 2)), b = try Tensor([0.1, -0.2])
        func throwing(_ w: Tensor, _ b: Tensor) throws -> Tensor {
            let h = try (x.matmul(w) + b).tanh()
            return try ((h - target).pow(2).mean() + Tensor.select(h.greater(0), h, 0.0).sum() * 0.01)
        }
        func trapping(_ w: Tensor, _ b: Tensor) -> Tensor {
            let (w, b) = (w.trapping, b.trapping)
            let h = (x.trapping.matmul(w) + b).tanh()
            return ((h - target.trapping).pow(2).mean() + TrappingTensor.select(h.greater(0), h, 0.0).sum() * 0.01).tensor
        }
        #expect(try throwing(w, b).doubles == trapping(w, b).doubles)
        let (gw1, gb1) = try gradient(at: w, b, of: throwing)
        let (gw2, gb2) = try gradient(at: w, b) { w, b in trapping(w, b) }
        #expect(gw1.doubles == gw2.doubles && gb1.doubles == gb2.doubles)
        let v = x.trapping
        #expect((1 - v * 2).doubles == (try (1 - x * 2).doubles))
        #expect(v[1..., .slice(step: 2)].shape == [4, 2] && v.sum(axes: [0]).shape == [3])
        #expect(TrappingTensor.concat([v, v]).shape == [10, 3] && v.matmul(w.trapping).softmax().shape == [5, 2])
    }

    @Test("a mismatch stops the process (with the message the throwing operator would throw)")
    func traps() async throws {
        await #expect(processExitsWith: .failure) {
            let a = try! Tensor.zeros([2, 3]).trapping, b = try! Tensor.zeros([4]).trapping
            _ = a + b
        }
        await #expect(processExitsWith: .failure) {
            _ = try! Tensor.zeros([2, 3]).trapping[5]
        }
    }
}
