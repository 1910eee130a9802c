import AdjointAutodiff
import AdjointIR
import AdjointTensor
import Foundation
import Synchronization

/// Why a function could not be compiled.
public enum CompileError: Error, Equatable, CustomStringConvertible {
    /// The function read a traced value as numbers (`item()`, `doubles`, `scalars(as:)`) while it
    /// was traced: for each read, the number of operators recorded before it. A branch on such a
    /// value would be frozen at the traced arguments' values.
    case valueReadWhileTracing(afterOperators: [Int])

    public var description: String {
        switch self {
        case let .valueReadWhileTracing(positions):
            return "compile: the function read a traced tensor as numbers (item(), doubles, scalars(as:)) "
                + "after operator \(positions.map(String.init).joined(separator: ", ")); a branch on such a value would be frozen "
                + "at the first arguments' values — express it with Tensor.select, or call the function uncompiled"
        }
    }
}

/// A function of tensors compiled once per input signature: the analogue of `jax.jit`.
///
/// The first call with a given signature (the arguments' dtypes and shapes, in order) traces the
/// function to an IR graph (`traceGraph(_:at:)`) and compiles it into a ``CompiledProgram`` —
/// one preallocated frame, layout operators as aliases or gathers, with ``NativeCode`` runs of
/// arithmetic as machine code. Later calls with that signature run the program; a call with a new
/// signature traces again. The program's results are bitwise those of calling the function
/// eagerly.
///
/// What a trace freezes: Swift values the function reads (numbers, flags, loop counts) and
/// tensors it captures from outside its arguments (their values at the trace become constants).
/// A function that reads a traced tensor as numbers is refused with
/// ``CompileError/valueReadWhileTracing(afterOperators:)`` — such a read usually steers a branch.
///
/// Transforms compose in both orders. `compile { xs in [try gradient(at: xs[0], of: f)] }` traces
/// the gradient's operators (forward and backward) into one program. A compiled function called
/// inside a transform (`gradient`, `jvp`, `vjp`, a trace) runs its traced graph through the
/// dispatch point instead, so the transform sees every operator and its derivative rule.
///
/// Thread-safe: the signature cache is shared; each call runs in a frame of its own.
public final class CompiledFunction: @unchecked Sendable {
    /// One signature's trace and program.
    public struct Trace {
        /// The traced graph with its captured constants.
        public let bundle: GraphBundle
        /// The compiled program.
        public let program: CompiledProgram
        /// Seconds spent tracing and compiling (machine code included).
        public let compileSeconds: Double
    }

    let function: ([Tensor]) throws -> [Tensor]
    /// How the programs' arithmetic runs.
    public let native: NativeCode
    /// The traces by signature, under `lock` (the reason this class is `@unchecked Sendable`:
    /// every access of `cache` holds the lock; the rest is immutable or atomic).
    private var cache: [[ValueType]: Trace] = [:]
    private let lock = NSLock()
    private let traceCount = Atomic<Int>(0)
    private let fallbackReported = Atomic<Bool>(false)

    /// `function` compiled per signature; nothing is traced until the first call.
    public init(native: NativeCode = .automatic, _ function: @escaping ([Tensor]) throws -> [Tensor]) {
        self.native = native
        self.function = function
    }

    /// `function(arguments)`: the compiled program of their signature (traced and compiled on the
    /// first call with it), or, inside a transform, the traced graph through the dispatch point.
    public func callAsFunction(_ arguments: [Tensor]) throws -> [Tensor] {
        let trace = try self.trace(for: arguments)
        if InterpreterStack.current.isActive { return try trace.bundle.execute(arguments) }
        return try trace.program(arguments)
    }

    /// One argument, one result.
    public func callAsFunction(_ argument: Tensor) throws -> Tensor {
        let outputs = try self([argument])
        guard outputs.count == 1 else { throw AutodiffError.nonScalarOutput(shape: [outputs.count]) }
        return outputs[0]
    }

    /// The trace of the arguments' signature, made now if there is none.
    public func trace(for arguments: [Tensor]) throws -> Trace {
        let signature = arguments.map(\.valueType)
        if let trace = lock.withLock({ cache[signature] }) { return trace }
        let start = DispatchTime.now().uptimeNanoseconds
        let (bundle, _) = try traceGraph(function, at: arguments)
        guard bundle.valueReads.isEmpty else { throw CompileError.valueReadWhileTracing(afterOperators: bundle.valueReads) }
        let program = try bundle.compiled(native: native)
        if let failure = program.nativeCodeFailure, !fallbackReported.exchange(true, ordering: .relaxed) {
            FileHandle.standardError.write(Data("adjoint: compile: running interpreted (\(failure))\n".utf8))
        }
        let trace = Trace(bundle: bundle, program: program, compileSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        traceCount.add(1, ordering: .relaxed)
        return lock.withLock {
            if let earlier = cache[signature] { return earlier }   // another thread traced it first
            cache[signature] = trace
            return trace
        }
    }

    /// The signatures traced so far.
    public var signatures: [[ValueType]] { lock.withLock { Array(cache.keys) } }

    /// How many times the function was traced (once per signature, unless two threads raced).
    public var traces: Int { traceCount.load(ordering: .relaxed) }
}

/// `function` compiled once per input signature (see ``CompiledFunction``).
public func compile(native: NativeCode = .automatic, _ function: @escaping ([Tensor]) throws -> [Tensor]) -> CompiledFunction {
    CompiledFunction(native: native, function)
}

/// A function of one tensor compiled once per input signature (see ``CompiledFunction``).
public func compile(native: NativeCode = .automatic, _ function: @escaping (Tensor) throws -> Tensor) -> CompiledFunction {
    CompiledFunction(native: native) { [try function($0[0])] }
}
