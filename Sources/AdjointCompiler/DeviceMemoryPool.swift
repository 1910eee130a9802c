import AdjointTensor

/// A caching allocator of device memory: blocks rounded up to the CPU pool's size classes
/// (``StoragePool/capacity(for:)``), kept on per-class free lists when released and handed out
/// again before the device is asked for more, with the CPU pool's counters
/// (``StoragePool/Statistics``: live, peak, allocations, those that reached the device, cached).
///
/// Reuse is stream-ordered: a block is released with an event recorded on the stream that last
/// used it (``release(_:capacity:pending:)``), and handed out again only once that event is
/// complete — so a block freed while kernels on one stream may still read it is never written by
/// another stream's work. When the device refuses an allocation, the cached blocks go back to it
/// (waiting for their events) and the allocation is tried once more before the error is thrown.
// @unchecked Sendable: the free lists and counters are reached only under `state`'s lock; the
// device's calls are the driver's, which are thread-safe; an event is only queried or waited for.
package final class DeviceMemoryPool: @unchecked Sendable {
    package let device: any KernelDevice

    private struct State {
        var free: [Int: [(address: UInt64, pending: (any KernelEvent)?)]] = [:]
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

    /// A block of at least `bytes` bytes: its device address and capacity.
    ///
    /// - Throws: the device's error when it cannot provide the block even with the cache emptied.
    package func allocate(_ bytes: Int) throws -> (address: UInt64, capacity: Int) {
        let capacity = StoragePool.capacity(for: bytes)
        let reused: UInt64? = state.withLock { s in
            // The most recently released block whose last use has run.
            guard let blocks = s.free[capacity],
                  let k = blocks.lastIndex(where: { block in block.pending.map { (try? $0.isComplete()) ?? false } ?? true }) else { return nil }
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

    /// Returns a block from ``allocate(_:)`` (kept for reuse while the cache has room). `pending`:
    /// an event after the last work that uses the block (nil: none is enqueued); the block is not
    /// handed out again before it is complete.
    package func release(_ address: UInt64, capacity: Int, pending: (any KernelEvent)? = nil) {
        let keep: Bool = state.withLock { s in
            s.stats.liveBytes -= capacity
            guard s.stats.cachedBytes + capacity <= s.cacheLimit else { return false }
            s.free[capacity, default: []].append((address, pending))
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
