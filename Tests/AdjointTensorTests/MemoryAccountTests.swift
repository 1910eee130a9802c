import Adjoint
import Foundation
import Testing

@Suite("Memory accounts")
struct MemoryAccountTests {
    @Test("a scope's account counts its own tensors, nested accounts both, and frees on other threads credit back")
    func accounting() throws {
        let outer = MemoryAccount(), inner = MemoryAccount()
        var escaped: Tensor?
        try outer.track {
            let a = try Tensor.zeros([1000])                     // 8,000 bytes → one pool block
            try inner.track { escaped = try Tensor.zeros([2000]) }
            #expect(outer.liveBytes >= 24_000 && inner.liveBytes >= 16_000 && inner.liveBytes < outer.liveBytes)
            _ = a
        }
        #expect(inner.liveBytes > 0 && outer.liveBytes == inner.liveBytes)   // `a` is gone, `escaped` is not
        // Another thread's allocations are not charged; freeing there credits the creator's account.
        let done = DispatchSemaphore(value: 0)
        final class Box: @unchecked Sendable { var tensor: Tensor?; var other: Tensor? }
        let box = Box()
        box.tensor = escaped
        escaped = nil
        Thread { box.other = try? Tensor.zeros([5000]); box.tensor = nil; done.signal() }.start()
        done.wait()
        #expect(inner.liveBytes == 0 && outer.liveBytes == 0 && inner.peakBytes >= 16_000)
    }
}
