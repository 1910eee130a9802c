import AdjointTensor
import Testing

@Suite("Operands lent to interpreter levels")
struct ElementwiseOperandsTests {
    @Test("an operand list reads each tensor in place, and an index past it traps rather than reading beyond")
    func boundsChecked() async throws {
        let tensors = [Tensor([1.0, 2.0]), Tensor([3.0])]
        tensors.withUnsafeBufferPointer { list in
            let operands = ElementwiseOperands(list: list)
            #expect(operands.count == 2 && operands.indices == 0..<2)
            #expect(operands[0].pointee.shape == [2] && operands[1].pointee.shape == [1])
            #expect(operands[1] == list.baseAddress! + 1)
        }
        await #expect(processExitsWith: .failure) {
            let one = [Tensor([1.0])]
            one.withUnsafeBufferPointer { list in _ = ElementwiseOperands(list: list)[1] }
        }
    }
}
