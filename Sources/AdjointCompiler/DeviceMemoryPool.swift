import AdjointTensor

/// A caching allocator of device memory: blocks rounded up to the CPU pool's size classes
/// (``StoragePool/capacity(for:)``), kept on per-class free lists when released and handed out
/// again before the device is asked for more, with the CPU pool's counters
/// (``StoragePool/Statistics``: live, peak, allocations, those that reached the device, cached).
///
/// Reuse is safe without events because everything runs on one stream, in order: a block released
/// after the launches that use it were enqueued is reused only by launches enqueued later. When the
/// device refuses an allocation, the cached blocks go back to it and the allocation is tried once
/// more before the error is thrown.
// @unchecked Sendable: the free lists and counters are reached only under `state`'s lock; the
// device's calls are the driver's, which are thread-safe.
package final class DeviceMemoryPool: @unchecked Sendable {
    package let device: any KernelDevice

    private struct State {
        var free: [Int: [UInt64]] = [:]
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
            guard let address = s.free[capacity]?.popLast() else { return nil }
            s.stats.cachedBytes -= capacity
            return address
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

    /// Returns a block from ``allocate(_:)`` (kept for reuse while the cache has room).
    package func release(_ address: UInt64, capacity: Int) {
        let keep: Bool = state.withLock { s in
            s.stats.liveBytes -= capacity
            guard s.stats.cachedBytes + capacity <= s.cacheLimit else { return false }
            s.free[capacity, default: []].append(address)
            s.stats.cachedBytes += capacity
            return true
        }
        if !keep { device.release(address) }
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

    /// Returns every cached block to the device.
    package func trim() {
        let blocks: [UInt64] = state.withLock { s in
            defer { s.free = [:]; s.stats.cachedBytes = 0 }
            return s.free.values.flatMap { $0 }
        }
        for address in blocks { device.release(address) }
    }
}
