import AdjointTensor

/// A caching allocator of device memory: blocks rounded up to the CPU pool's size classes
/// (``StoragePool/capacity(for:)``), kept on per-class free lists when released and handed out
/// again before the device is asked for more, with the CPU pool's counters
/// (``StoragePool/Statistics``: live, peak, allocations, those that reached the device, cached).
///
/// Reuse is stream-ordered: a block is released with an event recorded on the stream that last
/// used it (``release(_:capacity:pending:stream:)``), and handed out again once that event is
/// complete — or at once for work on that same stream (``allocate(_:on:)``), which the stream
/// runs after the work before the event — so a block freed while kernels on one stream may still
/// read it is never written by another stream's work, and a thread whose stream runs behind the
/// host still reuses its own freed blocks instead of asking the device for more. When the device
/// refuses an allocation, the cached blocks go back to it (waiting for their events) and the
/// allocation is tried once more before the error is thrown.
// @unchecked Sendable: the free lists and counters are reached only under `state`'s lock; the
// device's calls are the driver's, which are thread-safe; an event is only queried or waited for,
// and a cached block's stream only compared by identity.
package final class DeviceMemoryPool: @unchecked Sendable {
    package let device: any KernelDevice

    /// A cached block: `pending`, an event after its last use, recorded on `stream` — held weakly,
    /// so a stream that is gone neither stays alive for its cached blocks nor matches a new stream
    /// made at its address.
    private struct Cached: @unchecked Sendable {
        let address: UInt64
        let pending: (any KernelEvent)?
        weak var stream: (any KernelStream)?

        /// Whether work on `user` may use the block now.
        func isFree(for user: (any KernelStream)?) -> Bool {
            guard let pending else { return true }
            if let user, let stream, user === stream { return true }
            return (try? pending.isComplete()) ?? false
        }
    }

    private struct State {
        var free: [Int: [Cached]] = [:]
        var stats = StoragePool.Statistics(liveBytes: 0, peakBytes: 0, allocationCount: 0, systemAllocationCount: 0, cachedBytes: 0)
        var cacheLimit: Int
    }
    private let state: Lock<State>

    /// A pool over `device` whose free lists hold at most `cacheLimit` bytes.
    package init(device: any KernelDevice, cacheLimit: Int = 1 << 34) {
        self.device = device
        state = Lock(State(cacheLimit: cacheLimit))
    }

    deinit { trim() }

    /// A block of at least `bytes` bytes, for work on `stream` (nil: work that waits for nothing
    /// the pool knows of — the block's last use has run): its device address and capacity.
    ///
    /// - Throws: the device's error when it cannot provide the block even with the cache emptied.
    package func allocate(_ bytes: Int, on stream: (any KernelStream)? = nil) throws -> (address: UInt64, capacity: Int) {
        let capacity = StoragePool.capacity(for: bytes)
        let reused: UInt64? = state.withLock { s in
            // The most recently released block that the stream may use now.
            guard let blocks = s.free[capacity], let k = blocks.lastIndex(where: { $0.isFree(for: stream) }) else { return nil }
            s.stats.cachedBytes -= capacity
            return s.free[capacity]!.remove(at: k).address
        }
        let address: UInt64
        if let reused {
            address = reused
        } else {
            do {
                address = try device.allocate(capacity)
            } catch {
                trim()
                address = try device.allocate(capacity)
            }
        }
        state.withLock { s in
            s.stats.allocationCount += 1
            if reused == nil { s.stats.systemAllocationCount += 1 }
            s.stats.liveBytes += capacity
            s.stats.peakBytes = Swift.max(s.stats.peakBytes, s.stats.liveBytes)
        }
        return (address, capacity)
    }

    /// Returns a block from ``allocate(_:on:)`` (kept for reuse while the cache has room).
    /// `pending`: an event after the last work that uses the block (nil: none is enqueued),
    /// recorded on `stream`, the only stream with work on the block still to run; the block is
    /// handed out again before the event is complete only for work on `stream`.
    package func release(_ address: UInt64, capacity: Int, pending: (any KernelEvent)? = nil, stream: (any KernelStream)? = nil) {
        let keep: Bool = state.withLock { s in
            s.stats.liveBytes -= capacity
            guard s.stats.cachedBytes + capacity <= s.cacheLimit else { return false }
            s.free[capacity, default: []].append(Cached(address: address, pending: pending, stream: pending == nil ? nil : stream))
            s.stats.cachedBytes += capacity
            return true
        }
        if !keep {
            try? pending?.synchronize()
            device.release(address)
        }
    }

    /// The current counters.
    package var statistics: StoragePool.Statistics { state.withLock { $0.stats } }

    /// Sets the peak to the current live bytes.
    package func resetPeak() { state.withLock { $0.stats.peakBytes = $0.stats.liveBytes } }

    /// Bytes the free lists may hold before released blocks go back to the device.
    package var cacheLimitBytes: Int {
        get { state.withLock { $0.cacheLimit } }
        set { state.withLock { $0.cacheLimit = newValue } }
    }

    /// Returns every cached block to the device (once the work using it has run).
    package func trim() {
        let blocks = state.withLock { s in
            defer { s.free = [:]; s.stats.cachedBytes = 0 }
            return s.free.values.flatMap { $0 }
        }
        for block in blocks {
            try? block.pending?.synchronize()
            device.release(block.address)
        }
    }
}
