@testable import AdjointStateful
import Testing

@Suite("Unroll bookkeeping")
struct StepTableTests {
    @Test("a step table agrees with a dictionary under stack-order and random-order use")
    func matchesDictionary() {
        var table = StepTable<Int>()
        var reference: [Int: Int] = [:]
        var generator = SystemRandomNumberGenerator()
        // Stack order (how checkpoint schedules use it), then arbitrary order.
        for k in 0..<50 { table.set(k * 10, at: k); reference[k] = k * 10 }
        for k in stride(from: 49, through: 30, by: -1) { #expect(table.remove(k) == reference.removeValue(forKey: k)) }
        for _ in 0..<2_000 {
            let k = Int.random(in: 0..<60, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                table.set(k + 1_000, at: k)
                reference[k] = k + 1_000
            case 1:
                #expect(table.remove(k) == reference.removeValue(forKey: k))
            default:
                #expect(table[k] == reference[k])
            }
            #expect(table.count == reference.count)
        }
        #expect(table.entries.map(\.step) == reference.keys.sorted())
        #expect(table.entries.map(\.value) == reference.keys.sorted().map { reference[$0]! })
        table.removeAll()
        #expect(table.count == 0 && table[3] == nil && table.remove(3) == nil)
    }

    @Test("the packed recorder keeps as many free records as fit in 16 MiB, at least 8 and at most 256")
    func recordLimit() {
        #expect(PackedStep.Recorder.limit(forBytes: 1) == 256 && PackedStep.Recorder.limit(forBytes: 1 << 20) == 16)
        #expect(PackedStep.Recorder.limit(forBytes: 1 << 30) == 8 && PackedStep.Recorder.limit(forBytes: 0) == 256)
    }

    @Test("a record's buffer is written again only when nothing else holds it")
    func recordBuffers() throws {
        var slot: PackedBytes?
        #expect(PackedStep.Recorder.unshared(&slot) == nil, "an empty slot")
        slot = PackedBytes.make(24)
        var held = slot
        #expect(PackedStep.Recorder.unshared(&slot) == nil, "another reference holds the buffer")
        held = nil
        let expected = ObjectIdentifier(slot!)
        let reused = PackedStep.Recorder.unshared(&slot).map(ObjectIdentifier.init)
        #expect(reused == expected && held == nil, "only the slot holds it")
    }
}
