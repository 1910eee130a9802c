/// LHD, least hit density (Beckmann, Chen, Cidon, NSDI 2018), as libCacheSim runs it: each
/// eviction samples resident objects and evicts the one with the lowest expected hits per unit of
/// space and time, estimated from the object's age (requests since its last access, coarsened by
/// a shift) and its class (how long ago its last two hits came).
///
/// - **Hit density** of an object of class *c* at age *a*: `density[c][a] / size`, +1 for an
///   "explorer" (1 in 32 insertions or hits while fewer than 50 reconfigurations have happened,
///   within a budget of 1 % of the cache, so every class keeps being observed). An object whose age
///   overflows the table goes first.
/// - **Classes**: 16 by log₂ of (last hit age + the one before); libCacheSim's application id is a
///   constant, so only those 16 of its 256 classes are ever used and only they are kept here.
/// - **Eviction**: the lowest density among 8 random residents (32 after 50 reconfigurations) and
///   the last 8 insertions that looked like victims when they arrived.
/// - **Learning**: hits and evictions are counted per class and age; every 2²⁰ updates (hits and
///   insertions) the counts decay by 0.9 and the densities are recomputed from them
///   (hits after age *a* over the expected remaining lifetime); after the 5th and 25th the age
///   coarsening adapts to the number of resident objects. Until the first reconfiguration the
///   densities are libCacheSim's initial ones, (c + 1)/(a + 1) — so on traces shorter than about a
///   million requests LHD evicts, among its samples, the oldest object that has not been hit.
///
/// Sampling uses its own seeded generator (SplitMix64), not libCacheSim's, so results agree with
/// libCacheSim's up to sampling noise. Memory: the resident objects and 16 × 20,000 × 3 floats.
public struct LHDPolicy: CachePolicy {
    public var name: String { "LHD" }
    public let capacity: Int64
    public private(set) var occupied: Int64 = 0

    struct Tag {
        var id: UInt64
        var timestamp: UInt64
        var lastHitAge: UInt64
        var lastLastHitAge: UInt64
        var size: Float
        var bytes: Int64
        var explorer: Bool
    }

    static let maxAge = 20_000, hitAgeClasses = 16, admissions = 8, reconfigurationInterval = 1 << 20
    static let ewmaDecay: Float = 0.9
    /// libCacheSim's application id (1) gives classes 16 … 31 of its 256.
    static let applicationClassOffset = 16

    var tags: [Tag] = []
    var index: [UInt64: Int] = [:]
    /// Per class, per age: decayed hit and eviction counts, and the hit densities.
    var hits: [Float], evictions: [Float], densities: [Float]
    var timestamp: UInt64 = 0
    var untilReconfiguration = LHDPolicy.reconfigurationInterval
    var reconfigurations = 0
    var ageShift: UInt64 = 10
    var ewmaObjects: Float = 0, ewmaObjectsMass: Float = 0
    var recentlyAdmitted = [UInt64?](repeating: nil, count: LHDPolicy.admissions)
    var recentlyAdmittedHead = 0
    var ewmaVictimDensity: Float = 0
    var explorerBudget: Int64
    var random: SplitMix64

    public init(capacity: Int64, seed: UInt64 = 0x4c48_4400) {
        self.capacity = capacity
        explorerBudget = Int64(Double(capacity) * 0.01)
        random = SplitMix64(seed: seed)
        let n = Self.hitAgeClasses * Self.maxAge
        hits = [Float](repeating: 0, count: n)
        evictions = [Float](repeating: 0, count: n)
        densities = [Float](repeating: 0, count: n)
        for c in 0..<Self.hitAgeClasses {
            for a in 0..<Self.maxAge { densities[c * Self.maxAge + a] = Float(Double(c + Self.applicationClassOffset + 1) / Double(a + 1)) }
        }
    }

    /// About log₂(maxAge / age): young hit ages get the high classes.
    static func hitAgeClass(_ age: UInt64) -> Int {
        if age == 0 { return hitAgeClasses - 1 }
        var age = age, log = 0
        while age < UInt64(maxAge), log < hitAgeClasses - 1 {
            age <<= 1
            log += 1
        }
        return log
    }

    func classOf(_ tag: Tag) -> Int { Self.hitAgeClass(tag.lastHitAge &+ tag.lastLastHitAge) }

    func age(_ tag: Tag) -> Int {
        let age = (timestamp &- tag.timestamp) >> ageShift
        return age >= UInt64(Self.maxAge) ? Self.maxAge - 1 : Int(age)
    }

    func density(_ tag: Tag) -> Float {
        let a = age(tag)
        if a == Self.maxAge - 1 { return -.greatestFiniteMagnitude }
        let d = densities[classOf(tag) * Self.maxAge + a] / tag.size
        return tag.explorer ? d + 1 : d
    }

    public mutating func find(_ request: CacheRequest) -> Bool {
        guard let slot = index[request.id] else { return false }
        occupied += request.size - tags[slot].bytes
        update(slot: slot, request)
        return true
    }

    public mutating func insert(_ request: CacheRequest) {
        index[request.id] = tags.count
        tags.append(Tag(id: request.id, timestamp: 0, lastHitAge: 0, lastLastHitAge: UInt64(Self.maxAge), size: 0, bytes: 0, explorer: false))
        occupied += request.size
        update(slot: tags.count - 1, request, inserted: true)
    }

    /// A hit or an insertion of the object in `slot`.
    mutating func update(slot: Int, _ request: CacheRequest, inserted: Bool = false) {
        if !inserted {
            let tag = tags[slot], a = age(tag)
            hits[classOf(tag) * Self.maxAge + a] += 1
            if tag.explorer { explorerBudget += Int64(tag.size) }
            tags[slot].lastLastHitAge = tag.lastHitAge
            tags[slot].lastHitAge = UInt64(a)
        }
        tags[slot].timestamp = timestamp
        tags[slot].size = Float(request.size)
        tags[slot].bytes = request.size
        let explore = random.next() % 32 == 0
        if explore, explorerBudget > 0, reconfigurations < 50 {
            tags[slot].explorer = true
            explorerBudget -= request.size
        } else {
            tags[slot].explorer = false
        }
        // An arrival that already looks like a victim stays a candidate for a while.
        if inserted, !explore, density(tags[slot]) < ewmaVictimDensity {
            recentlyAdmitted[recentlyAdmittedHead % Self.admissions] = request.id
            recentlyAdmittedHead += 1
        }
        timestamp += 1
        untilReconfiguration -= 1
        if untilReconfiguration == 0 {
            reconfigure()
            untilReconfiguration = Self.reconfigurationInterval
            reconfigurations += 1
        }
    }

    public mutating func evict(_ request: CacheRequest) {
        guard !tags.isEmpty else { return }
        var victim = -1, victimDensity = Float.greatestFiniteMagnitude
        for _ in 0..<(reconfigurations > 50 ? 32 : 8) {
            let slot = Int(random.next() % UInt64(tags.count))
            let d = density(tags[slot])
            if d < victimDensity { (victim, victimDensity) = (slot, d) }
        }
        for case let id? in recentlyAdmitted {
            guard let slot = index[id] else { continue }
            let d = density(tags[slot])
            if d < victimDensity { (victim, victimDensity) = (slot, d) }
        }
        if victim < 0 { victim = 0; victimDensity = density(tags[0]) }   // (densities are never NaN; kept total)
        ewmaVictimDensity = Self.ewmaDecay * ewmaVictimDensity + (1 - Self.ewmaDecay) * victimDensity
        let tag = tags[victim]
        evictions[classOf(tag) * Self.maxAge + age(tag)] += 1
        if tag.explorer { explorerBudget += Int64(tag.size) }
        occupied -= tag.bytes
        index[tag.id] = nil
        let last = tags.count - 1
        if victim < last {
            tags[victim] = tags[last]
            index[tags[victim].id] = victim
        }
        tags.removeLast()
    }

    mutating func reconfigure() {
        for i in hits.indices {
            hits[i] *= Self.ewmaDecay
            evictions[i] *= Self.ewmaDecay
        }
        adaptAgeCoarsening()
        // Density at age a: hits after a over the expected remaining lifetime of the objects that
        // reach a (accumulated from the oldest age down, in one pass).
        let m = Self.maxAge
        for c in 0..<Self.hitAgeClasses {
            let base = c * m
            var events = hits[base + m - 1] + evictions[base + m - 1], total = hits[base + m - 1], lifetime = events
            for a in stride(from: m - 2, through: 0, by: -1) {
                total += hits[base + a]
                events += hits[base + a] + evictions[base + a]
                lifetime += events
                densities[base + a] = events > 1e-5 ? total / lifetime : 0
            }
        }
    }

    /// After the 5th and 25th reconfiguration: the age shift that spreads the resident objects'
    /// ages over the table (1 % resolution), with the counts stretched or compressed to match.
    mutating func adaptAgeCoarsening() {
        ewmaObjects = ewmaObjects * Self.ewmaDecay + Float(tags.count)
        ewmaObjectsMass = ewmaObjectsMass * Self.ewmaDecay + 1
        guard reconfigurations == 5 || reconfigurations == 25 else { return }
        let optimal = ewmaObjects / ewmaObjectsMass / (0.01 * Float(Self.maxAge))
        var log2: UInt64 = 1
        while Float(UInt64(1) << log2) < optimal, log2 < 62 { log2 += 1 }
        let delta = Int(log2) - Int(ageShift)
        ageShift = log2
        ewmaObjects *= 8
        ewmaObjectsMass *= 8
        let m = Self.maxAge
        for c in 0..<Self.hitAgeClasses {
            let base = c * m
            if delta < 0 {   // stretch
                let d = -delta
                for a in (m >> d) ..< (m - 1) {
                    hits[base + m - 1] += hits[base + a]
                    evictions[base + m - 1] += evictions[base + a]
                }
                for a in stride(from: m - 2, through: 0, by: -1) {
                    hits[base + a] = hits[base + (a >> d)] / Float(1 << d)
                    evictions[base + a] = evictions[base + (a >> d)] / Float(1 << d)
                }
            } else if delta > 0 {   // compress
                for a in 0 ..< (m >> delta) {
                    var h = hits[base + (a << delta)], e = evictions[base + (a << delta)]
                    for i in 1 ..< (1 << delta) {
                        h += hits[base + (a << delta) + i]
                        e += evictions[base + (a << delta) + i]
                    }
                    hits[base + a] = h
                    evictions[base + a] = e
                }
                for a in (m >> delta) ..< (m - 1) {
                    hits[base + a] = 0
                    evictions[base + a] = 0
                }
            }
        }
    }
}
