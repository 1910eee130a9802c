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

/// A function of tensors — or of parameter collections of them — compiled once per input
/// signature: the analogue of `jax.jit`.
///
/// The first call with a given signature (the structure of the arguments and each tensor's dtype
/// and shape, in order) traces the function to an IR graph (`traceGraph(_:at:)`) and compiles it
/// into a ``CompiledProgram`` — one preallocated frame, layout operators as aliases or gathers,
/// with ``NativeCode`` runs of arithmetic as machine code. Later calls with that signature run the
/// program; a call with a new signature traces again. The program's results are bitwise those of
/// calling the function eagerly.
///
/// What a trace freezes: Swift values the function reads (numbers, flags, loop counts) and
/// tensors it captures from outside its arguments (their values at the trace become constants).
/// A function that reads a traced tensor as numbers is refused with
/// ``CompileError/valueReadWhileTracing(afterOperators:)`` — such a read usually steers a branch.
///
/// Transforms compose in both orders. `compile { w in try gradient(at: w, of: f) }` traces the
/// gradient's operators (forward and backward) into one program. A compiled function called
/// inside a transform (`gradient`, `jvp`, `vjp`, a trace) runs its traced graph through the
/// dispatch point instead, so the transform sees every operator and its derivative rule.
///
/// The cache holds at most ``maximumSignatures`` traces; a new signature beyond that replaces the
/// least recently called one (which is traced again if it comes back), so a function called with
/// ever-new shapes does not grow without bound.
///
/// Thread-safe: the signature cache is shared (under a lock); each call runs in a frame of its own
/// (on a device, calls of one signature take turns with its one frame there).
public final class CompiledFunction<Arguments: ParameterCollection, Result: ParameterCollection>: @unchecked Sendable {
    /// One signature's trace and program.
    public struct Trace {
        /// The traced graph with its captured constants.
        public let bundle: GraphBundle
        /// The compiled program (its `statistics` give the planned frame bytes).
        public let program: CompiledProgram
        /// Seconds spent tracing and compiling (machine code included).
        public let compileSeconds: Double
        /// The result's structure, filled with the program's outputs at each call.
        let result: Result
        /// On a device: the program there, one call at a time (its frame is one).
        let onDevice: Lock<DeviceProgram>?
    }

    /// The signature of one call: the argument's structure (its tensors' names; none for a tensor
    /// or an array of tensors) and the tensors' types, in order.
    public struct Signature: Hashable, Sendable {
        public let names: [String]
        public let types: [ValueType]
    }

    let function: (Arguments) throws -> Result
    /// How the programs' arithmetic runs.
    public let native: NativeCode
    /// Where the programs run.
    public let device: Device
    /// The device's memory pool given at creation (tests: an emulated device); otherwise the
    /// process's (`DeviceRuntime`).
    private let pool: DeviceMemoryPool?
    /// The most traces kept (at least 1).
    public let maximumSignatures: Int
    /// The traces by signature with the call count at their last use, under `lock` (the reason
    /// this class is `@unchecked Sendable`: every access of `cache` and `calls` holds the lock;
    /// the rest is immutable or atomic).
    private var cache: [Signature: (trace: Trace, lastUse: UInt64)] = [:]
    private var calls: UInt64 = 0
    private let lock = NSLock()
    private let traceCount = Atomic<Int>(0)
    private let fallbackReported = Atomic<Bool>(false)

    /// `function` compiled per signature; nothing is traced until the first call. A
    /// `maximumSignatures` below 1 is taken as 1.
    ///
    /// `device`: where the programs run. On a CUDA GPU (`Device.cuda(_:)`) each program's
    /// kernels are generated from its native code and compiled by NVRTC when it is traced; a call
    /// copies the arguments there, runs every instruction there and copies the results back
    /// (calls of one signature run one at a time). The results are the CPU's bit for bit where the
    /// arithmetic is IEEE (`+ − × ÷ √`), within the device math library's ulps elsewhere and
    /// within rounding for matmuls (cuBLAS's GEMMs). A trace throws ``DeviceError`` where the
    /// device cannot be used (every operator the CPU's kernels take has a device form). Called
    /// with tensors on that device
    /// (`Tensor.to(_:)`), it leaves its results there, asynchronously, as operators do.
    public init(native: NativeCode = .automatic, device: Device = .cpu, maximumSignatures: Int = 64, _ function: @escaping (Arguments) throws -> Result) {
        self.native = native
        self.device = device
        self.pool = nil
        self.maximumSignatures = max(1, maximumSignatures)
        self.function = function
    }

    /// `function` compiled to run on `pool`'s device (a GPU's, or the host emulation's in tests).
    package init(native: NativeCode = .required, pool: DeviceMemoryPool, _ function: @escaping (Arguments) throws -> Result) {
        self.native = native
        self.device = .cuda(0)
        self.pool = pool
        self.maximumSignatures = 64
        self.function = function
    }

    /// `function(arguments)`: the compiled program of their signature (traced and compiled on the
    /// first call with it), or, inside a transform, the traced graph through the dispatch point.
    public func callAsFunction(_ arguments: Arguments) throws -> Result {
        let tensors = arguments.tensors
        let trace = try self.trace(for: arguments, tensors: tensors)
        let outputs: [Tensor]
        if InterpreterStack.current.isActive {
            outputs = try trace.bundle.execute(tensors)
        } else if let onDevice = trace.onDevice {
            // Arguments on the device: the results stay there too.
            let resident = tensors.lazy.compactMap { $0.storage.deviceMemory as? DeviceBlock }.first?.tensors
            outputs = try onDevice.withLock { program in try resident.map { try program.callResident(tensors, on: $0) } ?? program(tensors) }
        } else {
            outputs = try trace.program(tensors)
        }
        return trace.result.replacingTensors(with: outputs)
    }

    /// The trace of the arguments' signature, made now if there is none.
    public func trace(for arguments: Arguments) throws -> Trace {
        try trace(for: arguments, tensors: arguments.tensors)
    }

    func trace(for arguments: Arguments, tensors: [Tensor]) throws -> Trace {
        // A tensor's or an array's structure is its tensor count, which the types carry: no names
        // (making them costs more than the rest of a warm call).
        let plain = Arguments.self == Tensor.self || Arguments.self == [Tensor].self
        let signature = Signature(names: plain ? [] : arguments.namedTensors.map(\.name), types: tensors.map(\.valueType))
        if let trace = lock.withLock({ () -> Trace? in
            guard let index = cache.index(forKey: signature) else { return nil }   // one hash of the signature
            calls += 1
            cache.values[index].lastUse = calls
            return cache.values[index].trace
        }) { return trace }
        let start = DispatchTime.now().uptimeNanoseconds
        var result: Result?
        let (bundle, _) = try traceGraph({ traced in
            let value = try function(arguments.replacingTensors(with: traced))
            result = value
            return value.tensors
        }, at: tensors)
        guard bundle.valueReads.isEmpty else { throw CompileError.valueReadWhileTracing(afterOperators: bundle.valueReads) }
        let program = try bundle.compiledWithOutputsApart(order: bundle.graph.nodesReachingOutputs, native: native)
        if let failure = program.nativeCodeFailure, !fallbackReported.exchange(true, ordering: .relaxed) {
            FileHandle.standardError.write(Data("adjoint: compile: running interpreted (\(failure))\n".utf8))
        }
        var onDevice: Lock<DeviceProgram>?
        if device != .cpu {
            onDevice = Lock(try DeviceProgram(program, pool: try pool ?? DeviceRuntime.pool(for: device)))
        }
        let trace = Trace(bundle: bundle, program: program, compileSeconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9,
                          result: result!, onDevice: onDevice)
        traceCount.add(1, ordering: .relaxed)
        return lock.withLock {
            calls += 1
            if let earlier = cache[signature] { return earlier.trace }   // another thread traced it first
            if cache.count >= maximumSignatures, let oldest = cache.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
                cache[oldest] = nil
            }
            cache[signature] = (trace, calls)
            return trace
        }
    }

    /// The signatures whose traces are kept, least recently called first.
    public var signatures: [Signature] { lock.withLock { cache.sorted { $0.value.lastUse < $1.value.lastUse }.map(\.key) } }

    /// How many times the function was traced (once per signature, unless two threads raced).
    public var traces: Int { traceCount.load(ordering: .relaxed) }
}

/// `function` compiled once per input signature (see ``CompiledFunction``): a function of a tensor,
/// an array of tensors, or any parameter collection, returning any of them.
public func compile<Arguments: ParameterCollection, Result: ParameterCollection>(
    native: NativeCode = .automatic, device: Device = .cpu, maximumSignatures: Int = 64, _ function: @escaping (Arguments) throws -> Result
) -> CompiledFunction<Arguments, Result> {
    CompiledFunction(native: native, device: device, maximumSignatures: maximumSignatures, function)
}

extension Graph {
    /// The nodes some output depends on, in graph order. A traced function computes values no
    /// output reads (the loss beside a gradient, say); a compiled function does not run them.
    package var nodesReachingOutputs: [Int] {
        var producer: [ValueID: Int] = [:]
        for (index, node) in nodes.enumerated() { for v in node.outputs { producer[v] = index } }
        var needed = [Bool](repeating: false, count: nodes.count)
        var pending = outputs.compactMap { producer[$0] }
        while let index = pending.popLast() {
            guard !needed[index] else { continue }
            needed[index] = true
            pending += nodes[index].inputs.compactMap { producer[$0] }
        }
        return nodes.indices.filter { needed[$0] }
    }
}
