import AdjointTensor
import Foundation
import AdjointIO
#if canImport(Glibc)
import Glibc
#endif

/// Records every operator dispatched while it is installed: time, bytes moved (inputs read plus
/// output written), storage allocations; named regions around them; and the storage pool's live
/// bytes after each operator (the memory timeline). Exports a Chrome trace (opens in Perfetto and
/// chrome://tracing) and a summary table by operator.
///
/// Off, it costs the dispatch point one check; installed (``record(_:)``), a clock read and a
/// pool-counter read per operator. One profiler per thread at a time.
public final class Profiler: OperatorTimer {
    public struct Event: Sendable {
        public var name: String
        /// "op" or "region".
        public var category: String
        public var start: UInt64      // ns since the profiler was created
        public var duration: UInt64
        public var bytes: Int
        public var allocations: Int
        public var unrollStep: Int?
    }

    public private(set) var events: [Event] = []
    /// (ns since creation, pool live bytes) after each operator.
    public private(set) var memory: [(time: UInt64, liveBytes: Int)] = []
    private let origin = Profiler.clock()
    private var pendingAllocations: [Int] = []

    public init() {}

    static func clock() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    /// Runs `body` with this profiler observing the calling thread's operators.
    public func record<R>(_ body: () throws -> R) rethrows -> R {
        let stack = InterpreterStack.current
        let saved = stack.timer
        stack.timer = self
        defer { stack.timer = saved }
        return try body()
    }

    /// Runs `body` as a named region (regions nest; operators inside appear within them).
    public func region<R>(_ name: String, _ body: () throws -> R) rethrows -> R {
        let start = Profiler.clock()
        let allocations = StoragePool.shared.statistics.allocationCount
        defer {
            let end = Profiler.clock()
            events.append(Event(name: name, category: "region", start: start - origin, duration: end - start, bytes: 0,
                                allocations: StoragePool.shared.statistics.allocationCount - allocations,
                                unrollStep: InterpreterStack.current.unrollStep))
        }
        return try body()
    }

    package func begin(_ op: OpCode) -> UInt64 {
        pendingAllocations.append(StoragePool.shared.statistics.allocationCount)
        return Profiler.clock()
    }

    package func end(_ op: OpCode, started: UInt64, inputs: [Tensor], output: Tensor) {
        let end = Profiler.clock()
        let stats = StoragePool.shared.statistics
        let allocations = stats.allocationCount - (pendingAllocations.popLast() ?? stats.allocationCount)
        let bytes = inputs.reduce(output.elementCount * output.dtype.byteSize) { $0 + $1.elementCount * $1.dtype.byteSize }
        events.append(Event(name: op.rawValue, category: "op", start: started - origin, duration: end - started, bytes: bytes,
                            allocations: allocations, unrollStep: InterpreterStack.current.unrollStep))
        memory.append((end - origin, stats.liveBytes))
    }

    /// The Chrome trace event format: complete events (`"ph": "X"`, microseconds) for operators and
    /// regions, counter events (`"ph": "C"`) for the pool's live bytes.
    public func chromeTrace() throws -> [UInt8] {
        var trace: [[String: Any]] = []
        for e in events.sorted(by: { ($0.start, UInt64.max - $0.duration) < ($1.start, UInt64.max - $1.duration) }) {
            var args: [String: Any] = ["bytes": e.bytes, "allocations": e.allocations]
            if let step = e.unrollStep { args["unrollStep"] = step }
            trace.append(["name": e.name, "cat": e.category, "ph": "X", "ts": Double(e.start) / 1000, "dur": Double(e.duration) / 1000,
                          "pid": 1, "tid": 1, "args": args])
        }
        for m in memory {
            trace.append(["name": "pool live bytes", "ph": "C", "ts": Double(m.time) / 1000, "pid": 1, "tid": 1, "args": ["bytes": m.liveBytes]])
        }
        return Array(try JSONSerialization.data(withJSONObject: ["traceEvents": trace, "displayTimeUnit": "ns"], options: [.sortedKeys]))
    }

    /// Writes ``chromeTrace()`` atomically.
    public func writeChromeTrace(to path: String) throws { try AtomicFile.write(chromeTrace(), to: path) }

    /// Operators by total time: calls, total and mean time, share, bytes moved, allocations.
    public func summary() -> String {
        var byOp: [String: (calls: Int, time: UInt64, bytes: Int, allocations: Int)] = [:]
        for e in events where e.category == "op" {
            var entry = byOp[e.name] ?? (0, 0, 0, 0)
            entry.calls += 1; entry.time += e.duration; entry.bytes += e.bytes; entry.allocations += e.allocations
            byOp[e.name] = entry
        }
        let total = Swift.max(1, byOp.values.reduce(0) { $0 + $1.time })
        let rows = byOp.sorted { $0.value.time > $1.value.time }
        let width = Swift.max(8, rows.map(\.key.count).max() ?? 0)
        func pad(_ s: String, _ n: Int, left: Bool = false) -> String {
            let fill = String(repeating: " ", count: Swift.max(0, n - s.count))
            return left ? s + fill : fill + s
        }
        var lines = [pad("operator", width, left: true) + pad("calls", 8) + pad("total ms", 12) + pad("mean µs", 10) + pad("share", 8)
                     + pad("MB moved", 11) + pad("allocs", 9)]
        for (name, e) in rows {
            lines.append(pad(name, width, left: true) + pad("\(e.calls)", 8) + pad(String(format: "%.3f", Double(e.time) / 1e6), 12)
                         + pad(String(format: "%.2f", Double(e.time) / Double(e.calls) / 1e3), 10)
                         + pad(String(format: "%.1f%%", 100 * Double(e.time) / Double(total)), 8)
                         + pad(String(format: "%.2f", Double(e.bytes) / 1e6), 11) + pad("\(e.allocations)", 9))
        }
        return lines.joined(separator: "\n")
    }
}
