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

    final class Box {}

    @Test("a reuse pool hands out only objects nothing else refers to, and replaces long-held ones")
    func reusePool() {
        var pool = ReusePool<Box>()
        #expect(pool.takeUnreferenced() == nil)
        var held: [Box] = []
        for _ in 0..<pool.limit {
            let box = Box()
            pool.keep(box)
            held.append(box)
        }
        #expect(pool.takeUnreferenced() == nil, "every pooled object is still held")
        let released = ObjectIdentifier(held.removeLast())   // the pool's reference is the only one left
        #expect(pool.takeUnreferenced().map(ObjectIdentifier.init) == released)
        // A new object takes the oldest slot; the object it displaced stays valid for its holder.
        held.append(Box())
        pool.keep(held.last!)
        #expect(isKnownUniquelyReferenced(&held[0]), "the displaced object is held by its holder alone")
        #expect(pool.takeUnreferenced().map(ObjectIdentifier.init) == released)
        held.removeLast()
        let newest = pool.takeUnreferenced().map(ObjectIdentifier.init)
        #expect(newest != nil && newest != released, "the newest object, no longer held, comes first (slot 0)")
    }

    @Test("a reuse pool's limit follows the object size; objects taken in a row are distinct while held")
    func reusePoolLimit() {
        #expect(ReusePool<Box>.limit(forBytes: 1) == 256 && ReusePool<Box>.limit(forBytes: 1 << 20) == 16)
        #expect(ReusePool<Box>.limit(forBytes: 1 << 30) == 8 && ReusePool<Box>.limit(forBytes: 0) == 256)
        var pool = ReusePool<Box>(limit: 20)
        var held: [Box] = []
        for _ in 0..<20 { pool.keep(Box()) }
        for _ in 0..<20 {
            guard let box = pool.takeUnreferenced() else { Issue.record("a free object was not found"); return }
            #expect(!held.contains { $0 === box })
            held.append(box)
        }
        #expect(pool.takeUnreferenced() == nil)
        held.remove(at: 7)
        #expect(pool.takeUnreferenced() != nil)
    }
}
