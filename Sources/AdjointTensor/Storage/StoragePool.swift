import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A process-wide pool of 64-byte-aligned memory blocks, reused by size class.
///
/// Freed blocks go back to a per-capacity free list instead of the system allocator, so steady-state
/// loops (one training step after another, one unrolled time step after another) allocate no new
/// memory. Capacities are powers of two up to 4 KiB and quarter steps above (at most 25% slack).
///
/// The pool is thread-safe; its counters are exact.
// @unchecked Sendable: all mutable state is `state`, behind a `Lock`.
public final class StoragePool: @unchecked Sendable {
    /// The pool every tensor allocates from. With the environment variable
    /// `ADJOINT_STORAGE_POOL=off` it keeps no free block (``cacheLimitBytes`` 0): every block comes
    /// from `posix_memalign` and goes back to `free`, so AddressSanitizer sees each use after free
    /// and each overflow of a block's bytes (the sanitizer runs in `.ci/run` set it).
    public static let shared = StoragePool(cacheLimit: getenv("ADJOINT_STORAGE_POOL").map { String(cString: $0) == "off" } == true ? 0 : 1 << 30)

    /// Whether the shared pool keeps no free blocks (`ADJOINT_STORAGE_POOL=off`).
    public static var isBypassed: Bool { shared.cacheLimitBytes == 0 }

    /// A snapshot of the pool's counters.
    public struct Statistics: Equatable, Sendable, CustomStringConvertible {
        /// Bytes held by live tensors' storages (their capacities).
        public var liveBytes: Int
        /// The highest `liveBytes` since the pool started or since ``StoragePool/resetPeak()``.
        public var peakBytes: Int
        /// Storage allocations served (from the free lists or the system).
        public var allocationCount: Int
        /// Allocations that had to go to the system allocator.
        public var systemAllocationCount: Int
        /// Bytes kept in free lists for reuse.
        public var cachedBytes: Int

        public init(liveBytes: Int, peakBytes: Int, allocationCount: Int, systemAllocationCount: Int, cachedBytes: Int) {
            self.liveBytes = liveBytes
            self.peakBytes = peakBytes
            self.allocationCount = allocationCount
            self.systemAllocationCount = systemAllocationCount
            self.cachedBytes = cachedBytes
        }

        public var description: String {
            "live \(liveBytes) B, peak \(peakBytes) B, \(allocationCount) allocations (\(systemAllocationCount) from the system), cached \(cachedBytes) B"
        }
    }

    /// `@unchecked Sendable`: it holds raw pointers to free blocks that only the pool touches, and
    /// only under its lock.
    private struct State: @unchecked Sendable {
        /// The first free block of each size class (indexed by ``StoragePool/classIndex(for:)``);
        /// a free block's first word points to the next one of its class (an intrusive list: no
        /// array to grow or check for uniqueness under the lock).
        let heads: UnsafeMutablePointer<UnsafeMutableRawPointer?>
        var stats = Statistics(liveBytes: 0, peakBytes: 0, allocationCount: 0, systemAllocationCount: 0, cachedBytes: 0)
        var cacheLimit = 1 << 30
    }

    /// Number of size classes: powers of two up to 4 KiB, then four steps per power.
    private static let classCount = 64 * 8

    private let state: Lock<State>

    /// Alignment of every block, in bytes.
    package static let alignment = 64

    /// A pool whose free lists hold at most `cacheLimit` bytes.
    package init(cacheLimit: Int = 1 << 30) {
        let heads = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: Self.classCount)
        heads.initialize(repeating: nil, count: Self.classCount)
        state = Lock(State(heads: heads, cacheLimit: cacheLimit))
    }

    deinit {
        trim()
        state.withLock { $0.heads.deallocate() }
    }

    /// The capacity a request of `byteCount` bytes is rounded up to.
    package static func capacity(for byteCount: Int) -> Int {
        let n = Swift.max(byteCount, alignment)
        let power = 1 << (Int.bitWidth - (n - 1).leadingZeroBitCount)   // next power of two ≥ n
        if power <= 4096 { return power }
        let quarter = power / 8   // steps of 1/8 of the next power = quarters of the previous one
        return (n + quarter - 1) / quarter * quarter
    }

    /// The free-list slot of a capacity returned by ``capacity(for:)``.
    static func classIndex(for capacity: Int) -> Int {
        let log = Int.bitWidth - 1 - capacity.leadingZeroBitCount       // floor(log2)
        if capacity <= 4096 { return log }
        let step = 1 << (log - 2)                                       // quarter steps above 2^log
        return 64 + log * 4 + (capacity - (1 << log)) / step
    }

    /// Returns a block of at least `byteCount` bytes and its capacity.
    package func allocate(byteCount: Int) -> (pointer: UnsafeMutableRawPointer, capacity: Int) {
        let capacity = Self.capacity(for: byteCount)
        let reused: UnsafeMutableRawPointer? = state.withLock { s in
            s.stats.allocationCount += 1
            s.stats.liveBytes += capacity
            if s.stats.liveBytes > s.stats.peakBytes { s.stats.peakBytes = s.stats.liveBytes }
            let head = s.heads + Self.classIndex(for: capacity)
            if let p = head.pointee {
                head.pointee = p.load(as: UnsafeMutableRawPointer?.self)
                s.stats.cachedBytes -= capacity
                return p
            }
            s.stats.systemAllocationCount += 1
            return nil
        }
        if let reused { return (reused, capacity) }
        var raw: UnsafeMutableRawPointer?
        let rc = posix_memalign(&raw, Self.alignment, capacity)
        guard rc == 0, let raw else {
            fatalError("StoragePool: the system could not provide \(capacity) bytes (posix_memalign returned \(rc))")
        }
        return (raw, capacity)
    }

    /// Returns a block obtained from ``allocate(byteCount:)``.
    package func deallocate(_ pointer: UnsafeMutableRawPointer, capacity: Int) {
        let keep: Bool = state.withLock { s in
            s.stats.liveBytes -= capacity
            guard s.stats.cachedBytes + capacity <= s.cacheLimit else { return false }
            let head = s.heads + Self.classIndex(for: capacity)
            pointer.storeBytes(of: head.pointee, as: UnsafeMutableRawPointer?.self)
            head.pointee = pointer
            s.stats.cachedBytes += capacity
            return true
        }
        if !keep { free(pointer) }
    }

    /// The current counters.
    public var statistics: Statistics { state.withLock { $0.stats } }

    /// Sets the peak to the current live bytes.
    public func resetPeak() {
        state.withLock { $0.stats.peakBytes = $0.stats.liveBytes }
    }

    /// Bytes the free lists may hold before further freed blocks go back to the system.
    public var cacheLimitBytes: Int {
        get { state.withLock { $0.cacheLimit } }
        set { state.withLock { $0.cacheLimit = newValue } }
    }

    /// Returns every cached block to the system.
    package func trim() {
        let lists: [UnsafeMutableRawPointer] = state.withLock { s in
            s.stats.cachedBytes = 0
            return (0..<Self.classCount).compactMap { i in
                defer { s.heads[i] = nil }
                return s.heads[i]
            }
        }
        for first in lists {
            var block: UnsafeMutableRawPointer? = first
            while let b = block {
                block = b.load(as: UnsafeMutableRawPointer?.self)
                free(b)
            }
        }
    }
}
