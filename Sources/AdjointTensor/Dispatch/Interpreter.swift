import Synchronization

/// One operator application as interpreter levels see it.
package struct OpCall {
    package var op: OpCode
    package var attributes: Attributes
    /// The inputs; for in-place operators, input 0 is the target's value *before* the write.
    package var inputs: [Tensor]
    /// The output; levels may add their tags. For in-place operators, the target after the write.
    package var output: Tensor
}

/// An interpreter on the per-thread stack (JAX's trace stack): reverse-mode tape, forward-mode
/// tangents, anomaly checking, profiling, graph capture.
///
/// ``dispatch(_:_:_:)`` runs the kernel, then offers the call to each active level from the
/// outermost inwards. While a level handles a call, only the levels outside it are active, so the
/// operators a level runs for its own bookkeeping (a tangent, say) are seen by outer levels only.
package protocol InterpreterLevel: AnyObject {
    /// Unique for the life of the process, so a tag from a finished level never matches a new one.
    var levelID: UInt32 { get }
    /// Observes `call` after its kernel ran; may tag `call.output`.
    func process(_ call: inout OpCall) throws
    /// Observes an elementwise call (`OpFamily.unary` or `OpFamily.binary` without
    /// attributes) from operands the dispatcher holds in place, without an ``OpCall``; may tag
    /// `output`. The default builds the `OpCall` and calls ``process(_:)``; a level on the hot
    /// path (the reverse-mode tape) reads the operands directly.
    func processElementwise(_ op: OpCode, _ operands: ElementwiseOperands, output: inout Tensor) throws
    /// Told when code reads the elements of a tagged tensor as numbers (``Tensor/doubles``,
    /// ``Tensor/scalars(as:)``, ``Tensor/item()``): a read that can steer control flow, which a
    /// recorded program does not see. The default ignores it.
    func valueRead(_ tensor: Tensor)
}

extension InterpreterLevel {
    package func valueRead(_ tensor: Tensor) {}

    package func processElementwise(_ op: OpCode, _ operands: ElementwiseOperands, output: inout Tensor) throws {
        var call = OpCall(op: op, attributes: .none, inputs: operands.indices.map { operands[$0].pointee }, output: output)
        try process(&call)
        output = call.output
    }
}

/// The interpreter levels active on the current thread.
///
/// One stack per thread, used only by that thread.
@usableFromInline
package final class InterpreterStack {
    /// Levels from outermost (index 0) to innermost.
    package private(set) var levels: [InterpreterLevel] = [] { didSet { summarize() } }
    /// Levels at index ≥ `ceiling` are hidden while a lower level handles a call.
    var ceiling = Int.max {
        // Set twice per level on every recorded operator: the limit/timer bit cannot change here.
        didSet { summary.store(summary.load(ordering: .relaxed) & 1 | Swift.min(levels.count, ceiling) << 1, ordering: .relaxed) }
    }
    /// The ``ResourceLimits`` in force on this thread, if any.
    var limits: ActiveLimits? { didSet { summarize() } }
    /// ``ResourceLimits/maxTapeNodes`` in force on this thread (for tapes as they record).
    package var maxTapeNodes: Int? { limits?.limits.maxTapeNodes }
    /// Observers of every dispatched operator's timing (the profiler), if any.
    package var timer: OperatorTimer? { didSet { summarize() } }

    /// What dispatch asks of the properties above on every operator, kept in one word it reads
    /// without an exclusivity check (a relaxed atomic, used by this thread only): bit 0 is set
    /// when a limit or a timer is installed, the bits above hold the number of visible levels.
    private let summary = Atomic<Int>(0)

    private func summarize() {
        let visible = Swift.min(levels.count, ceiling)
        summary.store((limits != nil || timer != nil ? 1 : 0) | visible << 1, ordering: .relaxed)
    }

    /// Whether a resource limit or a timer wraps every kernel on this thread.
    var wrapsKernels: Bool { summary.load(ordering: .relaxed) & 1 != 0 }
    /// Where the current operations come from, for diagnostics: the unroll step being taken, and
    /// the tape node whose derivative is being computed.
    @usableFromInline package var unrollStep: Int? {
        get { let k = unrollStepValue.load(ordering: .relaxed); return k == .min ? nil : k }
        set { unrollStepValue.store(newValue ?? .min, ordering: .relaxed) }
    }
    /// `unrollStep` (`Int.min`: none). An unroll sets it around every step, so it is a value with
    /// its own synchronisation (a relaxed atomic: one plain load or store on the machines we run
    /// on) rather than a stored property each access of which is checked for exclusivity at run
    /// time.
    private let unrollStepValue = Atomic<Int>(.min)
    package var backwardNode: (index: Int, op: OpCode)?

    private static let nextLevelID = Atomic<UInt32>(1)

    /// A fresh level id (never 0, which ``TraceTags`` reserves for "no tag", even after wrapping).
    package static func makeLevelID() -> UInt32 {
        while true {
            let id = nextLevelID.wrappingAdd(1, ordering: .relaxed).oldValue
            if id != 0 { return id }
        }
    }

    /// The current thread's stack.
    @usableFromInline package static var current: InterpreterStack { stacks.value }

    private static let stacks = ThreadLocal { InterpreterStack() }

    /// Whether any level is visible to dispatch right now.
    package var isActive: Bool { summary.load(ordering: .relaxed) > 1 }

    /// Whether an operator dispatched now would run its kernel with nothing observing it: no
    /// visible level, no resource limit, no timer, and plain arithmetic (no float64 debugging, no
    /// mixed-precision storage). Code that would only dispatch elementwise arithmetic on rank-0
    /// values may then compute them directly — the tape's rank-0 backward does — because nothing
    /// would record, time, check or round those operations differently.
    package var runsUnobserved: Bool {
        summary.load(ordering: .relaxed) == 0 && NumericSettings.arithmeticIsPlain
    }

    /// Runs `body` with `level` pushed as the innermost level.
    package func withLevel<R>(_ level: InterpreterLevel, _ body: () throws -> R) rethrows -> R {
        let savedCeiling = ceiling
        ceiling = Int.max
        levels.append(level)
        defer {
            levels.removeLast()
            ceiling = savedCeiling
        }
        return try body()
    }

    /// Offers `call` to the visible levels, outermost first.
    ///
    /// Outermost first, so that by the time a level sees the output it already carries the tags of
    /// every level outside it: a tape that saves the output, or a JVP that reads it, then holds a
    /// value the outer levels can differentiate through (JAX reaches the same order by binding an
    /// inner trace's primal computation to the outer traces).
    func observe(_ call: inout OpCall) throws {
        try forEachVisibleLevel { try $0.process(&call) }
    }

    /// ``observe(_:)`` for an elementwise call whose operands the dispatcher holds in place.
    func observeElementwise(_ op: OpCode, _ operands: ElementwiseOperands, output: inout Tensor) throws {
        try forEachVisibleLevel { try $0.processElementwise(op, operands, output: &output) }
    }

    /// Runs `body` on each visible level, outermost first, with only the levels outside it visible
    /// meanwhile.
    @inline(__always)
    private func forEachVisibleLevel(_ body: (InterpreterLevel) throws -> Void) throws {
        let savedCeiling = ceiling
        defer { ceiling = savedCeiling }
        let visible = Swift.min(levels.count, savedCeiling)
        var index = 0
        while index < visible {
            ceiling = index
            try body(levels[index])
            index += 1
        }
    }

    /// Tells the visible levels that `tensor`'s elements were read as numbers.
    package func reportValueRead(_ tensor: Tensor) {
        for level in levels.prefix(Swift.min(levels.count, ceiling)) { level.valueRead(tensor) }
    }

    /// Runs `body` with every level hidden (nothing is recorded).
    package func withoutLevels<R>(_ body: () throws -> R) rethrows -> R {
        let saved = ceiling
        ceiling = 0
        defer { ceiling = saved }
        return try body()
    }
}
