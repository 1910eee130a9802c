#if canImport(Glibc)
import Glibc
#endif

/// Bounds on what the operations dispatched in a scope may use. Exceeding one raises
/// ``ResourceError``; the process keeps serving other work, and the scope's tensors are freed as
/// the error unwinds it (the pool's live bytes return to their prior value).
///
/// Checked at the dispatch point after each operator (so one operator's output may briefly exist
/// before the error frees it), and by the reverse-mode tape as it records. The scope's memory is
/// counted by a ``MemoryAccount``: after the scope, failed or not, its live bytes show what the
/// scope still holds (0 when nothing escaped).
public struct ResourceLimits: Sendable, Equatable {
    /// Most elements any one tensor produced in the scope may have.
    public var maxElementsPerTensor: Int?
    /// Most nodes one reverse-mode tape may record (a tape reads the limit in force when it is created).
    public var maxTapeNodes: Int?
    /// Most bytes the tensors created in the scope may hold live at once, in host or device
    /// memory (a ``MemoryAccount`` of the scope: exact whatever other threads allocate).
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
    /// `account` (a fresh one by default) counts the scope's live bytes; pass one to read them after.
    public func enforce<R>(account: MemoryAccount = MemoryAccount(), _ body: () throws -> R) throws -> R {
        let stack = InterpreterStack.current
        let saved = stack.limits
        stack.limits = ActiveLimits(self, account: account)
        defer { stack.limits = saved }
        return try account.track(body)
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
    let account: MemoryAccount
    let start: Double

    init(_ limits: ResourceLimits, account: MemoryAccount) {
        self.limits = limits
        self.account = account
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
            let used = account.liveBytes
            if used > quota { throw ResourceError.memoryQuotaExceeded(op: op.rawValue, bytes: used, quota: quota) }
        }
        if let deadline = limits.deadline {
            let elapsed = ActiveLimits.now() - start
            if elapsed > deadline { throw ResourceError.deadlineExceeded(op: op.rawValue, elapsed: elapsed, deadline: deadline) }
        }
    }
}
