/// An admission policy: decides whether a missed object enters the cache at all. On traces
/// dominated by objects requested once ("one-hit wonders"), keeping them out protects the objects
/// that will be requested again.
///
/// A gate sees every request twice: ``admits(_:)`` before the cache looks the object up (its
/// answer is used only if the request misses), then ``record(_:hit:)`` with the outcome. Gates
/// keep state of fixed size (sketches), never a table of every object seen.
public protocol AdmissionGate {
    /// Short name, appended to the eviction policy's (`"LRU+TinyLFU"`).
    var name: String { get }
    /// Whether `request`'s object would be admitted if it missed now.
    func admits(_ request: CacheRequest) -> Bool
    /// Learns of the request and whether it hit.
    mutating func record(_ request: CacheRequest, hit: Bool)
}

/// An eviction policy behind an admission gate: the gate decides whether a missed object is
/// inserted; the policy decides everything else.
public struct GatedPolicy<Base: CachePolicy, Gate: AdmissionGate>: WrappingPolicy {
    public var base: Base
    public var gate: Gate
    /// Misses the gate kept out.
    public private(set) var refused = 0

    public init(_ base: Base, gate: Gate) {
        self.base = base
        self.gate = gate
    }

    public var name: String { base.name + "+" + gate.name }

    public mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool {
        let admitted = admitting && gate.admits(request)
        let hit = base.access(request, admitting: admitted)
        if !hit, !admitted { refused += 1 }
        gate.record(request, hit: hit)
        return hit
    }
}

/// Frequency-threshold admission: a missed object enters when a ``FrequencySketch`` has counted
/// it at least `threshold − 1` times before (so `threshold` 2 admits on the second request).
///
/// - ``tinyLFU(objects:)``: TinyLFU's sketch (every request counted, halved every 10 × the cache's
///   objects): admits objects requested at least twice recently.
/// - ``seenBefore(distinctObjects:)``: libCacheSim's `BloomFilterAdmissioner` (which counts misses
///   only and never forgets, in a table of every object) in fixed memory: misses counted, no
///   halving, 16 counters per distinct object and row, so it answers as libCacheSim's does up to
///   rare collisions (about 1 in 10⁵ lookups at that load).
public struct FrequencyAdmission: AdmissionGate {
    public let name: String
    public var sketch: FrequencySketch
    public let threshold: Int
    /// Whether hits are counted too (TinyLFU), or only misses (libCacheSim's admissioner).
    public let countsHits: Bool

    public init(name: String, sketch: FrequencySketch, threshold: Int = 2, countsHits: Bool) {
        self.name = name
        self.sketch = sketch
        self.threshold = Swift.max(1, threshold)
        self.countsHits = countsHits
    }

    /// TinyLFU sized for a cache of about `objects` objects.
    public static func tinyLFU(objects: Int) -> FrequencyAdmission {
        FrequencyAdmission(name: "TinyLFU", sketch: FrequencySketch(objects: objects), countsHits: true)
    }

    /// libCacheSim's seen-before admission for a workload of about `distinctObjects` objects
    /// (at most 2²² counters per row: 16 MiB).
    public static func seenBefore(distinctObjects: Int) -> FrequencyAdmission {
        FrequencyAdmission(name: "SeenBefore", sketch: FrequencySketch(width: 16 * Swift.max(1, Swift.min(distinctObjects, 1 << 22)), sample: .max),
                           countsHits: false)
    }

    public func admits(_ request: CacheRequest) -> Bool { sketch.estimate(request.id) + 1 >= threshold }

    public mutating func record(_ request: CacheRequest, hit: Bool) {
        if !hit || countsHits { sketch.add(request.id) }
    }
}

/// The admission gates by name (for the command line and `cache compare`).
public enum AdmissionKind: String, CaseIterable, Sendable {
    case tinyLFU = "TinyLFU", seenBefore = "SeenBefore"

    public init?(name: String) {
        guard let kind = Self.allCases.first(where: { $0.rawValue.lowercased() == name.lowercased() }) else { return nil }
        self = kind
    }

    /// The gate for a cache of about `objects` objects, in a workload of about `distinctObjects`.
    public func make(objects: Int, distinctObjects: Int) -> FrequencyAdmission {
        switch self {
        case .tinyLFU: return .tinyLFU(objects: objects)
        case .seenBefore: return .seenBefore(distinctObjects: distinctObjects)
        }
    }

    /// About how many objects a cache of `capacity` holds: the capacity when sizes are units,
    /// else the capacity over `meanSize` (at least 1).
    public static func objects(capacity: Int64, mode: SizeMode, meanSize: Double) -> Int {
        guard mode == .bytes else { return Int(Swift.min(capacity, 1 << 40)) }
        let n = Double(capacity) / Swift.max(1, meanSize)
        return n.isFinite ? Int(Swift.max(1, Swift.min(n, Double(1 << 40)))) : 1
    }
}

/// A policy that wraps another: capacity, occupancy and the steps of a request are the base's
/// unless the wrapper says otherwise (``GatedPolicy``, ``Renamed``).
public protocol WrappingPolicy: CachePolicy {
    associatedtype Base: CachePolicy
    var base: Base { get set }
}

extension WrappingPolicy {
    public var capacity: Int64 { base.capacity }
    public var occupied: Int64 { base.occupied }
    public mutating func find(_ request: CacheRequest) -> Bool { base.find(request) }
    public func canInsert(_ request: CacheRequest) -> Bool { base.canInsert(request) }
    public mutating func evict(_ request: CacheRequest) { base.evict(request) }
    public mutating func insert(_ request: CacheRequest) { base.insert(request) }
    public mutating func access(_ request: CacheRequest, admitting: Bool) -> Bool { base.access(request, admitting: admitting) }
}

/// A policy under another name (a deployed model's choice of policy keeps the model's name in
/// tables and plots).
public struct Renamed<Base: CachePolicy>: WrappingPolicy {
    public var base: Base
    public let name: String

    public init(_ base: Base, name: String) {
        self.base = base
        self.name = name
    }
}
