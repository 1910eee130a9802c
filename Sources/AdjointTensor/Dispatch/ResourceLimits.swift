#if canImport(Glibc)
import Glibc
#endif

/// Bounds on what the operations dispatched in a scope may use. Exceeding one raises
/// ``ResourceError``; the process keeps serving other work, and the scope's tensors are freed as
/// the error unwinds it (the pool's live bytes return to their prior value).
///
/// Checked at the dispatch point after each operator (so one operator's output may briefly exist
/// before the error frees it), and by the reverse-mode tape as it records.
public struct ResourceLimits: Sendable, Equatable {
    /// Most elements any one tensor produced in the scope may have.
    public var maxElementsPerTensor: Int?
    /// Most nodes one reverse-mode tape may record.
    public var maxTapeNodes: Int?
    /// Most bytes the storage pool may hold live above what it held when the scope began.
    public var memoryQuota: Int?
    /// Seconds after the scope began by which every operation must have finished.
    public var deadline: Double?

    public init(maxElementsPerTensor: Int? = nil, maxTapeNodes: Int? = nil, memoryQuota: Int? = nil, deadline: Double? = nil) {
        self.maxElementsPerTensor = maxElementsPerTensor
        self.maxTapeNodes = maxTapeNodes
        self.memoryQuota = memoryQuota
        self.deadline = deadline
    }

    /// Runs `body` under these limits on the calling thread (nested scopes: the inner one applies).
    public func enforce<R>(_ body: () throws -> R) throws -> R {
        let stack = InterpreterStack.current
        let saved = stack.limits
        stack.limits = ActiveLimits(self, baseline: StoragePool.shared.statistics.liveBytes)
        defer { stack.limits = saved }
        return try body()
    }
}

/// A limit that was exceeded: which, the bound, what was attempted, and the operator.
public enum ResourceError: Error, Equatable, CustomStringConvertible {
    case tensorTooLarge(op: String, elements: Int, limit: Int)
    case tapeTooLong(nodes: Int, limit: Int)
    case memoryQuotaExceeded(op: String, bytes: Int, quota: Int)
    case deadlineExceeded(op: String, elapsed: Double, deadline: Double)

    public var description: String {
        switch self {
        case let .tensorTooLarge(op, elements, limit): return "\(op) produced \(elements) elements; the limit is \(limit) per tensor"
        case let .tapeTooLong(nodes, limit): return "the tape reached \(nodes) nodes; the limit is \(limit)"
        case let .memoryQuotaExceeded(op, bytes, quota): return "after \(op) the scope holds \(bytes) bytes; its quota is \(quota)"
        case let .deadlineExceeded(op, elapsed, deadline): return String(format: "%@ finished %.3f s into a scope with a %.3f s deadline", op, elapsed, deadline)
        }
    }
}

/// The limits in force, with what they are measured from.
final class ActiveLimits {
    let limits: ResourceLimits
    let baseline: Int
    let start: Double

    init(_ limits: ResourceLimits, baseline: Int) {
        self.limits = limits
        self.baseline = baseline
        start = ActiveLimits.now()
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    func check(_ op: OpCode, output: Tensor) throws {
        if let max = limits.maxElementsPerTensor, output.elementCount > max {
            throw ResourceError.tensorTooLarge(op: op.rawValue, elements: output.elementCount, limit: max)
        }
        if let quota = limits.memoryQuota {
            let used = StoragePool.shared.statistics.liveBytes - baseline
            if used > quota { throw ResourceError.memoryQuotaExceeded(op: op.rawValue, bytes: used, quota: quota) }
        }
        if let deadline = limits.deadline {
            let elapsed = ActiveLimits.now() - start
            if elapsed > deadline { throw ResourceError.deadlineExceeded(op: op.rawValue, elapsed: elapsed, deadline: deadline) }
        }
    }
}
