/// How a simulation counts sizes: every object 1 (capacity in objects) or the recorded bytes.
public enum SizeMode: String, CaseIterable, Sendable {
    case unit, bytes
}

/// What a simulation measured.
public struct SimulationResult: Equatable, Sendable {
    public var policy: String
    public var capacity: Int64
    public var mode: SizeMode
    public var requests = 0
    public var misses = 0
    public var bytesRequested: Int64 = 0
    public var bytesMissed: Int64 = 0

    /// A result with no requests counted yet.
    public init(policy: String, capacity: Int64, mode: SizeMode) {
        (self.policy, self.capacity, self.mode) = (policy, capacity, mode)
    }

    public var missRatio: Double { requests == 0 ? 0 : Double(misses) / Double(requests) }
    public var byteMissRatio: Double { bytesRequested == 0 ? 0 : Double(bytesMissed) / Double(bytesRequested) }

    mutating func count(_ request: CacheRequest, hit: Bool) {
        requests += 1
        bytesRequested += request.size
        if !hit {
            misses += 1
            bytesMissed += request.size
        }
    }
}

/// The classical policies, LRB (the published learned policy, retraining as it runs) and Belady, by name.
public enum PolicyKind: String, CaseIterable, Sendable {
    case fifo = "FIFO", lru = "LRU", lfu = "LFU", arc = "ARC", twoQ = "2Q", s3fifo = "S3-FIFO", sieve = "SIEVE", lecar = "LeCaR", cacheus = "Cacheus", wtinylfu = "W-TinyLFU", gdsf = "GDSF",
         lirs = "LIRS", lhd = "LHD", lrb = "LRB", belady = "Belady"

    public func make(capacity: Int64) -> any CachePolicy {
        switch self {
        case .fifo: return FIFOPolicy(capacity: capacity)
        case .lru: return LRUPolicy(capacity: capacity)
        case .lfu: return LFUPolicy(capacity: capacity)
        case .arc: return ARCPolicy(capacity: capacity)
        case .twoQ: return TwoQPolicy(capacity: capacity)
        case .s3fifo: return S3FIFOPolicy(capacity: capacity)
        case .sieve: return SIEVEPolicy(capacity: capacity)
        case .lecar: return LeCaRPolicy(capacity: capacity)
        case .cacheus: return CacheusPolicy(capacity: capacity)
        case .wtinylfu: return WTinyLFUPolicy(capacity: capacity)
        case .gdsf: return GDSFPolicy(capacity: capacity)
        case .lirs: return LIRSPolicy(capacity: capacity)
        case .lhd: return LHDPolicy(capacity: capacity)
        case .lrb: return LRBPolicy(capacity: capacity)
        case .belady: return BeladyPolicy(capacity: capacity)
        }
    }

    /// Accepts this type's names, case-insensitively, and libCacheSim's (`TwoQ`, `S3FIFO`, `Sieve`).
    public init?(name: String) {
        let key = name.lowercased().replacingOccurrences(of: "-", with: "")
        guard let kind = PolicyKind.allCases.first(where: { $0.rawValue.lowercased().replacingOccurrences(of: "-", with: "") == key })
                ?? (key == "twoq" ? .twoQ : nil) else { return nil }
        self = kind
    }
}

public enum CacheSimulation {
    /// Runs `policy` over `requests` (sizes become 1 in ``SizeMode/unit``).
    public static func run<P: CachePolicy>(_ policy: inout P, requests: [CacheRequest], mode: SizeMode) -> SimulationResult {
        var result = SimulationResult(policy: policy.name, capacity: policy.capacity, mode: mode)
        for var r in requests {
            if mode == .unit { r.size = 1 }
            result.count(r, hit: policy.access(r))
        }
        return result
    }

    /// Streams `source` through `policy` in constant memory.
    public static func run<P: CachePolicy, S: RequestSource>(_ policy: inout P, source: inout S, mode: SizeMode) throws -> SimulationResult {
        var result = SimulationResult(policy: policy.name, capacity: policy.capacity, mode: mode)
        while var r = try source.next() {
            if mode == .unit { r.size = 1 }
            result.count(r, hit: policy.access(r))
        }
        return result
    }

    /// Streams `source` once through every policy of `policies` side by side (one pass, constant
    /// memory beyond the policies' own); results in the order of `policies`. Requests before index
    /// `countFrom` pass through the caches without being counted (a warm start).
    public static func run<S: RequestSource>(_ policies: inout [any CachePolicy], source: inout S, mode: SizeMode, countFrom: Int = 0) throws -> [SimulationResult] {
        var results = policies.map { SimulationResult(policy: $0.name, capacity: $0.capacity, mode: mode) }
        var index = 0
        while var r = try source.next() {
            if mode == .unit { r.size = 1 }
            if index < countFrom {
                for i in policies.indices { _ = policies[i].access(r) }
            } else {
                for i in policies.indices { results[i].count(r, hit: policies[i].access(r)) }
            }
            index += 1
        }
        return results
    }

    /// Runs a policy chosen by kind.
    public static func run(_ kind: PolicyKind, capacity: Int64, requests: [CacheRequest], mode: SizeMode) -> SimulationResult {
        var policy = kind.make(capacity: capacity)
        return run(&policy, requests: requests, mode: mode)
    }
}
