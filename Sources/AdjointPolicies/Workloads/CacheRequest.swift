/// One request of a cache workload.
public struct CacheRequest: Equatable, Sendable {
    /// The trace's timestamp (seconds for libCacheSim traces; the request index when the format has none).
    public var time: Int64
    public var id: UInt64
    /// Bytes (1 when the format has no sizes), at least 1: a zero-byte object (oracleGeneral
    /// traces allow them) is charged one byte, since one that takes no room in a cache measured in
    /// bytes would never need evicting, and every policy would keep such objects without bound.
    public var size: Int64 { didSet { if size < 1 { size = 1 } } }
    /// The index of the next request for the same object, or `Int64.max` when there is none or it
    /// is unknown (see ``NextAccess``).
    public var nextAccess: Int64

    public init(time: Int64, id: UInt64, size: Int64 = 1, nextAccess: Int64 = .max) {
        self.time = time
        self.id = id
        self.size = Swift.max(size, 1)
        self.nextAccess = nextAccess
    }
}

/// A workload read one request at a time, in constant memory.
public protocol RequestSource {
    /// The next request, or `nil` at the end.
    mutating func next() throws -> CacheRequest?
    /// A name for reports (the file name, or the generator's description).
    var name: String { get }
}

extension RequestSource {
    /// Every remaining request (for workloads that fit in memory).
    public mutating func readAll(limit: Int = .max) throws -> [CacheRequest] {
        var out: [CacheRequest] = []
        while out.count < limit, let r = try next() { out.append(r) }
        return out
    }
}

/// Next-access annotation for workloads whose format does not carry it (Belady needs it).
public enum NextAccess {
    /// Sets each request's ``CacheRequest/nextAccess`` to the index of the next request for the
    /// same id (a backward pass; memory proportional to the distinct ids).
    public static func annotate(_ requests: inout [CacheRequest]) {
        var next: [UInt64: Int64] = [:]
        next.reserveCapacity(requests.count / 4)
        for i in stride(from: requests.count - 1, through: 0, by: -1) {
            requests[i].nextAccess = next[requests[i].id] ?? .max
            next[requests[i].id] = Int64(i)
        }
    }
}
