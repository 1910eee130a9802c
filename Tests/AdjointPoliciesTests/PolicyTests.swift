import Adjoint
@testable import AdjointPolicies
import AdjointTestSupport
import Foundation
import Testing

@Suite("Cache policies")
struct PolicyTests {
    static func workload(sizes: SyntheticWorkload.Sizes = .unit, requests: Int = 20_000) throws -> [CacheRequest] {
        var w = try SyntheticWorkload(.mixture([(.zipf(objects: 2000, alpha: 0.9, driftEvery: 5000, driftStep: 300), 0.8), (.scan, 0.1), (.loop(objects: 300), 0.1)]),
                                      requests: requests, key: RandomKey(seed: 12), sizes: sizes)
        var r = try w.readAll()
        NextAccess.annotate(&r)
        return r
    }

    static func allPolicies(_ capacity: Int64) throws -> [any CachePolicy] {
        PolicyKind.allCases.map { $0.make(capacity: capacity) }
            + [LearnedPolicy(capacity: capacity, scorer: try EvictionScorer(hidden: 8, key: RandomKey(seed: 3)), candidates: 16)]
    }

    @Test("capacity is never exceeded and hits are only of objects seen before", arguments: SizeMode.allCases)
    func invariants(_ mode: SizeMode) throws {
        let requests = try Self.workload(sizes: .perObject(min: 1, max: 50))
        let capacity: Int64 = mode == .unit ? 150 : 4000
        for var policy in try Self.allPolicies(capacity) {
            var seen = Set<UInt64>()
            for var r in requests {
                if mode == .unit { r.size = 1 }
                let hit = policy.access(r)
                #expect(!hit || seen.contains(r.id), "\(policy.name): a hit on a new object")
                #expect(policy.occupied <= capacity, "\(policy.name): \(policy.occupied) > \(capacity)")
                seen.insert(r.id)
                if policy.occupied > capacity { break }
            }
        }
    }

    @Test("zero-byte objects are charged one byte: in a cache measured in bytes every policy evicts them, so they cannot pile up")
    func zeroByteObjects() throws {
        #expect(CacheRequest(time: 0, id: 1, size: 0).size == 1)
        var request = CacheRequest(time: 0, id: 1, size: 5)
        request.size = 0
        #expect(request.size == 1)
        request.size = -3
        #expect(request.size == 1)
        // 5,000 distinct zero-byte objects through a 10-byte cache, then the same 5,000 again: an
        // object hit in the second pass stayed resident since the first, so at most 10 hit (all
        // 5,000 would if they took no room).
        var requests = (0..<10_000).map { CacheRequest(time: Int64($0), id: UInt64($0 % 5000), size: 0) }
        NextAccess.annotate(&requests)
        for var policy in try Self.allPolicies(10) {
            let hits = requests.map { policy.access($0) }
            #expect(hits[5000...].filter { $0 }.count <= 10, "\(policy.name): \(hits[5000...].filter { $0 }.count) hits in the second pass")
            #expect(policy.occupied <= 10, "\(policy.name): \(policy.occupied) bytes resident")
        }
    }

    @Test("Belady misses no more than any policy; simulating a stream equals simulating an array")
    func beladyIsOptimal() throws {
        let requests = try Self.workload()
        for capacity: Int64 in [50, 200, 800] {
            let belady = CacheSimulation.run(.belady, capacity: capacity, requests: requests, mode: .unit)
            for var policy in try Self.allPolicies(capacity) {
                let r = CacheSimulation.run(&policy, requests: requests, mode: .unit)
                #expect(belady.misses <= r.misses, "\(r.policy) at \(capacity): \(r.misses) < Belady \(belady.misses)")
            }
        }
        var stream = try SyntheticWorkload(.zipf(objects: 500, alpha: 1), requests: 5000, key: RandomKey(seed: 1))
        var array = try SyntheticWorkload(.zipf(objects: 500, alpha: 1), requests: 5000, key: RandomKey(seed: 1))
        var a = LRUPolicy(capacity: 100), b = LRUPolicy(capacity: 100)
        #expect(try CacheSimulation.run(&a, source: &stream, mode: .unit) == CacheSimulation.run(&b, requests: try array.readAll(), mode: .unit))
    }

    @Test("side by side with countFrom: the first requests warm every cache and are not counted; the rest count as a single policy's run would")
    func countFrom() throws {
        let requests = try Self.workload(requests: 6000)
        var policies: [any CachePolicy] = [LRUPolicy(capacity: 100), ARCPolicy(capacity: 100)]
        var source = CacheGuardrailTests.ArraySource(requests: requests)
        let results = try CacheSimulation.run(&policies, source: &source, mode: .unit, countFrom: 4000)
        var lru = LRUPolicy(capacity: 100), arc = ARCPolicy(capacity: 100)
        let alone = [lru.hits(requests), arc.hits(requests)]
        for (result, hits) in zip(results, alone) {
            #expect(result.requests == 2000 && result.misses == hits[4000...].filter { !$0 }.count, "\(result)")
        }
    }

    @Test("hand-checked sequences", arguments: [
        (PolicyKind.lru, [false, false, true, false, true, false]),
        (.fifo, [false, false, true, false, false, false]),
        (.lfu, [false, false, true, false, true, false]),
        (.sieve, [false, false, true, false, true, false]),
        (.belady, [false, false, true, false, true, false]),
    ])
    func sequences(_ kind: PolicyKind, _ hits: [Bool]) {
        // Capacity 2; requests 1 2 1 3 1 2. When 3 arrives LRU, LFU, SIEVE and Belady evict 2 (1 is
        // more recent, more frequent, visited, and needed sooner); FIFO evicts 1, the oldest.
        var policy = kind.make(capacity: 2)
        var requests = [1, 2, 1, 3, 1, 2].enumerated().map { CacheRequest(time: Int64($0.offset), id: UInt64($0.element)) }
        NextAccess.annotate(&requests)
        #expect(requests.map { policy.access($0) } == hits, "\(kind)")
        #expect(PolicyKind(name: "S3FIFO") == .s3fifo && PolicyKind(name: "TwoQ") == .twoQ && PolicyKind(name: "sieve") == .sieve && PolicyKind(name: "x") == nil)
    }

    @Test("LeCaR: a ghost hit blames the expert that evicted it; both experts' choices are followed; runs are reproducible")
    func lecar() {
        // Capacity 2 under a loop over 3 objects: every eviction is followed, before the ghost
        // history forgets it, by a request for the evicted object, so the weights move.
        var policy = LeCaRPolicy(capacity: 2, seed: 3)
        let loop = (0..<400).map { CacheRequest(time: Int64($0), id: UInt64($0 % 3)) }
        let hits = loop.map { policy.access($0) }
        #expect(policy.weights.lru + policy.weights.lfu > 0.999_999 && policy.weights.lru + policy.weights.lfu < 1.000_001)
        #expect(policy.weights.lru != 0.5 && policy.occupied <= 2)
        var again = LeCaRPolicy(capacity: 2, seed: 3)
        let replay = loop.map { again.access($0) }
        #expect(replay == hits && again.weights.lru == policy.weights.lru)
        // Frequent objects survive a scan better than under LRU once the weights favour LFU.
        var workload: [CacheRequest] = []
        for i in 0..<3000 {
            let id: UInt64 = i % 2 == 0 ? UInt64(i % 10) : UInt64(1_000 + i)
            workload.append(CacheRequest(time: Int64(i), id: id))
        }
        NextAccess.annotate(&workload)
        let lecar = CacheSimulation.run(.lecar, capacity: 12, requests: workload, mode: .unit)
        let lru = CacheSimulation.run(.lru, capacity: 12, requests: workload, mode: .unit)
        #expect(lecar.missRatio <= lru.missRatio, "LeCaR \(lecar.missRatio), LRU \(lru.missRatio)")
        #expect(PolicyKind(name: "lecar") == PolicyKind.lecar)
    }

    @Test("Cacheus: step by step as libCacheSim 0.3.5 where random choices do not matter; CR-LFU evicts the newest of the least frequent; runs are reproducible; memory stays within twice the cache")
    func cacheus() throws {
        // Hits and occupancy per request from libCacheSim 0.3.5 (PyPI): `Cacheus(cache_size=10)`,
        // `get` per request, `get_n_obj()` after each. The cache fills to 10 only because SR grows
        // on returns from the history; then the experts evict objects that are not requested
        // again (after which their choices differ by seed: the output here is the same for every
        // seed, so no random choice decides it).
        let ids: [UInt64] = [1, 2, 3, 4, 5, 6, 1, 7, 2, 8, 9, 3, 10, 11, 20, 21, 22, 12]
        let libCacheSim = "1:0:1 2:0:2 3:0:3 4:0:4 5:0:5 6:0:5 1:0:6 7:0:6 2:0:7 8:0:8 9:0:8 3:0:9 10:0:10 11:0:10 "
            + "20:0:10 21:0:10 22:0:10 12:0:10"
        for seed: UInt64 in 1...8 {
            var policy = CacheusPolicy(capacity: 10, seed: seed)
            let steps = ids.map { id in "\(id):\(policy.access(CacheRequest(time: 0, id: id)) ? 1 : 0):\(policy.occupied)" }
            #expect(steps.joined(separator: " ") == libCacheSim, "seed \(seed)")
            #expect(policy.scanResistantCapacity > 5)
        }

        // CR-LFU's order: the newest of the least frequent; a count kept in the history resumes.
        var lists = FrequencyLists()
        let a = lists.insert(id: 1, size: 1), b = lists.insert(id: 2, size: 1), c = lists.insert(id: 3, size: 1, count: 3)
        #expect(lists.newestOfLeastFrequent == b && lists.victim == a)
        lists.remove(b)
        lists.remove(a)
        #expect(lists.newestOfLeastFrequent == c && lists.minimum == 3)
        let d = lists.insert(id: 4, size: 1, count: 5)
        #expect(lists.minimum == 3 && lists.maximum == 5)
        lists.remove(c)
        #expect(lists.newestOfLeastFrequent == d && lists.minimum == 5)
        lists.remove(d)
        let e = lists.insert(id: 5, size: 1, count: 7)
        #expect(lists.newestOfLeastFrequent == e && lists.minimum == 7)

        // Reproducible per seed; the weights stay normalised.
        let requests = try Self.workload()
        var first = CacheusPolicy(capacity: 150, seed: 5), second = CacheusPolicy(capacity: 150, seed: 5)
        #expect(requests.map { first.access($0) } == requests.map { second.access($0) })
        #expect(Swift.abs(first.weights.lru + first.weights.lfu - 1) < 1e-12 && first.weights.lru != 0.5)
        #expect(PolicyKind(name: "cacheus") == .cacheus)

        // Tiny caches (SR and R of zero or one object) and byte sizes: no trap, capacity kept.
        for capacity: Int64 in [0, 1, 2, 3] {
            var tiny = CacheusPolicy(capacity: capacity)
            for r in requests.prefix(2000) { _ = tiny.access(r); #expect(tiny.occupied <= capacity) }
        }
        var bytes = CacheusPolicy(capacity: 3000)
        for r in try Self.workload(sizes: .perObject(min: 1, max: 2000)) { _ = bytes.access(r); #expect(bytes.occupied <= 3000) }

        // A stream of distinct objects: resident, history and ghost entries stay bounded by the
        // capacity, not by the objects seen.
        var policy = CacheusPolicy(capacity: 100)
        for i in 0..<50_000 { _ = policy.access(CacheRequest(time: Int64(i), id: UInt64(i % 3 == 0 ? i % 40 : i))) }
        #expect(policy.index.count <= 200 && policy.ghostIndex.count <= 100 && policy.entries.ids.count <= 201,
                "\(policy.index.count) entries, \(policy.ghostIndex.count) ghosts, pool \(policy.entries.ids.count)")
    }

    @Test("W-TinyLFU: a scan of one-hit objects does not displace a frequently used working set; XXH64 is the specification's")
    func wTinyLFU() {
        // A working set of 50 objects, each requested 20 times, then a scan of 5,000 new objects
        // interleaved with the working set: under LRU the scan flushes it, W-TinyLFU keeps it.
        var requests: [CacheRequest] = []
        for _ in 0..<20 { for id in 0..<50 { requests.append(CacheRequest(time: Int64(requests.count), id: UInt64(id))) } }
        for i in 0..<5_000 {
            requests.append(CacheRequest(time: Int64(requests.count), id: UInt64(10_000 + i)))
            if i % 4 == 0 { requests.append(CacheRequest(time: Int64(requests.count), id: UInt64(i / 4 % 50))) }
        }
        NextAccess.annotate(&requests)
        let tiny = CacheSimulation.run(.wtinylfu, capacity: 100, requests: requests, mode: .unit)
        let lru = CacheSimulation.run(.lru, capacity: 100, requests: requests, mode: .unit)
        #expect(tiny.missRatio < lru.missRatio - 0.05, "W-TinyLFU \(tiny.missRatio), LRU \(lru.missRatio)")
        // Known XXH64 values (the xxhash reference implementation, 8-byte little-endian input).
        #expect(WTinyLFUPolicy.xxh64(0, seed: 0) == 0x34C9_6ACD_CADB_1BBB)
        #expect(PolicyKind(name: "WTinyLFU") == PolicyKind.wtinylfu)
    }

    @Test("GDSF evicts the lowest L + frequency · 10⁶ / size and ages by the evicted priority; hits do not grow its heap without bound")
    func gdsf() {
        var policy = GDSFPolicy(capacity: 10)
        func request(_ id: UInt64, _ size: Int64) -> Bool { policy.access(CacheRequest(time: 0, id: id, size: size)) }
        // A (5 bytes): 2·10⁵, B (1): 10⁶, C (4): 2.5·10⁵: full.
        #expect(!request(1, 5) && !request(2, 1) && !request(3, 4) && policy.occupied == 10)
        #expect(!request(4, 2) && policy.inflation == 200_000)   // D evicts A; D = 2·10⁵ + 5·10⁵
        #expect(request(2, 1))                                   // B: 2·10⁵ + 2·10⁶
        #expect(!request(5, 4) && policy.inflation == 250_000)   // E evicts C; E = 2.5·10⁵ + 2.5·10⁵
        #expect(!request(1, 5) && policy.inflation == 500_000)   // A evicts E (5·10⁵ < D's 7·10⁵)
        // Hits: D 5·10⁵ + 2·10⁶/2, B 5·10⁵ + 3·10⁶, A 5·10⁵ + 2·10⁶/5; then C evicts A, the lowest.
        #expect(request(4, 2) && request(2, 1) && request(1, 5) && !request(3, 4))
        #expect(policy.inflation == 900_000 && policy.occupied == 7)
        // 100,000 hits on two objects (the lazily deleted heap is rebuilt as it goes), then a miss
        // that evicts C (9·10⁵ + 2.5·10⁵), still the lowest.
        var hits = 0
        for i in 0..<100_000 where request(i % 2 == 0 ? 4 : 2, i % 2 == 0 ? 2 : 1) { hits += 1 }
        #expect(hits == 100_000 && !request(6, 4) && policy.inflation == 1_150_000 && policy.occupied == 7)
        #expect(PolicyKind(name: "gdsf") == PolicyKind.gdsf)
    }

    @Test("LIRS keeps most of a loop slightly larger than the cache, where LRU keeps nothing")
    func lirs() {
        // A loop over 120 objects through a 100-object cache: LRU always evicts the next one.
        var requests = (0..<12_000).map { CacheRequest(time: Int64($0), id: UInt64($0 % 120)) }
        NextAccess.annotate(&requests)
        let lirs = CacheSimulation.run(.lirs, capacity: 100, requests: requests, mode: .unit)
        let lru = CacheSimulation.run(.lru, capacity: 100, requests: requests, mode: .unit)
        #expect(lru.missRatio == 1 && lirs.missRatio < 0.25, "LIRS \(lirs.missRatio), LRU \(lru.missRatio)")
        var policy = LIRSPolicy(capacity: 100)
        #expect(policy.hirLimit == 1 && policy.lirLimit == 99)
        var peak: Int64 = 0
        for r in requests { _ = policy.access(r); peak = max(peak, policy.occupied) }
        #expect(peak == 100)
        #expect(PolicyKind(name: "lirs") == PolicyKind.lirs)
    }

    @Test("frequency counts stop at Int32.max instead of trapping (LFU, LeCaR)")
    func frequencySaturates() {
        var lists = FrequencyLists()
        let a = lists.insert(id: 1, size: 1), b = lists.insert(id: 2, size: 1)
        // As if b had been requested 2^31 − 2 times.
        lists.pool.unlink(b, &lists.buckets[1]!)
        lists.pool.counters[Int(b)] = Int32.max - 1
        lists.pool.pushHead(b, &lists.buckets[Int32.max - 1, default: NodeList()])
        lists.maximum = Int32.max - 1
        lists.touch(b)
        lists.touch(b)   // at the maximum: stays, as the newest of its group
        #expect(lists.pool.counters[Int(b)] == Int32.max && lists.maximum == Int32.max)
        #expect(lists.victim == a)
        lists.remove(a)
        #expect(lists.victim == b && lists.minimum == Int32.max)
    }

    @Test("every policy takes the largest cache size there is")
    func largestCache() {
        for kind in PolicyKind.allCases {
            var policy = kind.make(capacity: .max)
            var requests = (0..<20).map { CacheRequest(time: Int64($0), id: UInt64($0 % 7), size: 1 << 40) }
            NextAccess.annotate(&requests)
            let hits = requests.filter { policy.access($0) }.count
            #expect(hits == 13 && policy.occupied == 7 << 40, "\(kind): \(hits) hits, \(policy.occupied) occupied")
        }
    }

    @Test("objects larger than the cache are missed and not admitted")
    func oversized() {
        for kind in PolicyKind.allCases {
            var policy = kind.make(capacity: 100)
            let big = CacheRequest(time: 0, id: 1, size: 500, nextAccess: 1)
            #expect(!policy.access(big) && !policy.access(big) && policy.occupied == 0, "\(kind)")
        }
    }

    @Test("LHD: reconfiguration sets each density to the hits after that age over the expected remaining lifetime; coarsening keeps the counts")
    func lhdModel() {
        var lhd = LHDPolicy(capacity: 100)
        let m = LHDPolicy.maxAge
        // Class 3: hits at ages 2 and 5, evictions at age 7.
        lhd.hits[3 * m + 2] = 4; lhd.hits[3 * m + 5] = 2; lhd.evictions[3 * m + 7] = 6
        lhd.reconfigure()
        // After the decay (×0.9): events by age; density(a) = hits at ages ≥ a / Σ_{b ≥ a} events at ages ≥ b.
        let hits: [Int: Double] = [2: 3.6, 5: 1.8], evictions: [Int: Double] = [7: 5.4]
        for a in [0, 1, 2, 3, 5, 6, 7] {
            func events(from b: Int) -> Double {
                var total = 0.0
                for c in b..<m { total += (hits[c] ?? 0) + (evictions[c] ?? 0) }
                return total
            }
            var later = 0.0, lifetime = 0.0
            for b in a..<m { later += hits[b] ?? 0 }
            for b in a...8 { lifetime += events(from: b) }   // (no event after age 7)
            #expect(Swift.abs(Double(lhd.densities[3 * m + a]) - later / lifetime) < 1e-5, "age \(a)")
        }
        #expect(lhd.densities[3 * m + 8] == 0)   // nothing happens after age 7
        // Hit-age classes: 0 → the highest; ≥ maxAge → the lowest.
        #expect(LHDPolicy.hitAgeClass(0) == 15 && LHDPolicy.hitAgeClass(UInt64(m)) == 0 && LHDPolicy.hitAgeClass(UInt64(m / 4)) == 2)
        // Compressing ages by 2² keeps every count (the last age bin aside).
        var coarse = LHDPolicy(capacity: 100)
        for a in 0..<(m - 1) { coarse.hits[a] = Float(a % 7); coarse.evictions[a] = 1 }
        let before = coarse.hits[0..<(m - 1)].reduce(0, +), evictedBefore = coarse.evictions[0..<(m - 1)].reduce(0, +)
        coarse.reconfigurations = 5
        coarse.ewmaObjects = 1   // one object now and 0.9 before: the optimal shift is 1, from 10 (a stretch)
        coarse.adaptAgeCoarsening()
        #expect(coarse.ageShift == 1)
        #expect(Swift.abs(coarse.hits[0..<m].reduce(0, +) - before) / before < 0.01 && Swift.abs(coarse.evictions[0..<m].reduce(0, +) - evictedBefore) / evictedBefore < 0.01)
    }

}

extension CachePolicy {
    /// Hit or miss for each request, in order.
    mutating func hits(_ requests: [CacheRequest]) -> [Bool] { requests.map { access($0) } }
}
