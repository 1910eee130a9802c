/// What a run promises about reproducing its own bits.
///
/// | Policy | Promise | What the kernels do |
/// |---|---|---|
/// | ``strict`` | bitwise identical across runs *and* thread counts on one build | chunk boundaries depend only on sizes; partial results combine in a fixed tree; OpenBLAS is pinned to one thread and every GEMM is cut into blocks that depend only on its shape |
/// | ``bestEffort`` | bitwise identical across runs at the same thread count | long sums and GEMMs are cut into one part per worker thread, so the cut moves with the thread count |
/// | ``fast`` | none | as `bestEffort`, and the per-worker partial sums are added in the order the workers finish |
///
/// Elementwise, layout, indexing, creation (Philox) and per-row reductions compute every output
/// element the same way under every policy: only long full reductions (`sum`, `mean`, `mse` over
/// more than 32,768 contiguous elements) and GEMM (`matmul`) change with the policy. The per-operation
/// table is in `Documentation/Reproducibility.md`.
public enum DeterminismPolicy: String, Codable, CaseIterable, Sendable, CustomStringConvertible {
    case strict
    case bestEffort
    case fast

    public var description: String { rawValue }
}

/// The numeric policy the kernels follow: a ``DeterminismPolicy`` and the float64 debug switch.
///
/// A process-wide default (``processDefault``) applies to every thread; ``with(_:_:)`` overrides it
/// for the calling thread while its body runs (the kernels read the policy on the thread that
/// dispatched the operator, before splitting work over workers).
public struct ExecutionPolicy: Codable, Hashable, Sendable, CustomStringConvertible {
    /// The reproducibility promise.
    public var determinism: DeterminismPolicy
    /// The float64 debug policy: every float32 operator computes in float64 and rounds its result
    /// to float32 once, so accumulation error (in sums, GEMMs, softmax) drops out of float32 runs
    /// while every tensor keeps its declared dtype. For locating precision problems; slower.
    public var float64Debug: Bool

    public init(determinism: DeterminismPolicy = .strict, float64Debug: Bool = false) {
        self.determinism = determinism
        self.float64Debug = float64Debug
    }

    public static let strict = ExecutionPolicy(determinism: .strict)
    public static let bestEffort = ExecutionPolicy(determinism: .bestEffort)
    public static let fast = ExecutionPolicy(determinism: .fast)

    public var description: String { float64Debug ? "\(determinism)+float64Debug" : determinism.rawValue }

    /// Parses ``description``'s form: `strict`, `bestEffort`, `fast`, optionally `+float64Debug`.
    public init?(parsing text: String) {
        var parts = text.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
        let debug = parts.count == 2 && parts[1] == "float64Debug"
        if debug { parts.removeLast() }
        guard parts.count == 1, let determinism = DeterminismPolicy(rawValue: parts[0]) else { return nil }
        self.init(determinism: determinism, float64Debug: debug)
    }

    // MARK: Current policy

    /// The policy of every thread that has no override. Starts as ``strict``.
    public static var processDefault: ExecutionPolicy {
        get { ExecutionPolicy(code: NumericSettings.policyField(NumericSettings.setting.defaultValue)) }
        set { NumericSettings.setting.defaultValue = NumericSettings.replacingPolicy(NumericSettings.setting.defaultValue, newValue.code) }
    }

    /// The policy the calling thread's kernels follow now.
    public static var current: ExecutionPolicy { ExecutionPolicy(code: NumericSettings.policyField(NumericSettings.setting.value)) }

    /// Runs `body` with `policy` in force on the calling thread, then restores what was there.
    public static func with<R>(_ policy: ExecutionPolicy, _ body: () throws -> R) rethrows -> R {
        try NumericSettings.setting.with(NumericSettings.replacingPolicy(NumericSettings.setting.value, policy.code), body)
    }

    fileprivate var code: Int {
        (DeterminismPolicy.allCases.firstIndex(of: determinism) ?? 0) * 2 + (float64Debug ? 1 : 0)
    }

    fileprivate init(code: Int) {
        self.init(determinism: DeterminismPolicy.allCases[code / 2], float64Debug: code % 2 == 1)
    }
}

/// What a kernel reads once on the dispatching thread and hands to code that may run on workers
/// (where the dispatching thread's overrides are not visible).
struct KernelPolicy {
    var determinism: DeterminismPolicy
    var threads: Int

    static var current: KernelPolicy {
        KernelPolicy(determinism: ExecutionPolicy.current.determinism, threads: Parallelism.threadCount)
    }
}

/// The mixed-precision compute policy: float32 operators keep float32 arithmetic and
/// accumulation, but their results are stored in float16 or bfloat16 (rounded, with float16's
/// range — so values beyond ±65,504 overflow to infinity as on real hardware) and GEMM inputs are
/// rounded to the low precision first (float32 accumulation, as tensor cores do). Tensors keep the
/// float32 dtype, so master weights stay float32 and an optimizer updates them in float32.
///
/// A process-wide default plus a per-thread override, like ``ExecutionPolicy``.
public enum MixedPrecision {
    fileprivate static func code(_ d: DType?) -> Int { d == .float16 ? 1 : d == .bfloat16 ? 2 : 0 }
    fileprivate static func dtype(_ c: Int) -> DType? { c == 1 ? .float16 : c == 2 ? .bfloat16 : nil }

    /// The storage precision in force on the calling thread (`nil`: full float32).
    public static var current: DType? { dtype(NumericSettings.precisionField(NumericSettings.setting.value)) }

    /// The process-wide default.
    public static var processDefault: DType? {
        get { dtype(NumericSettings.precisionField(NumericSettings.setting.defaultValue)) }
        set { NumericSettings.setting.defaultValue = NumericSettings.replacingPrecision(NumericSettings.setting.defaultValue, code(newValue)) }
    }

    /// Runs `body` with `storage` (`.float16`, `.bfloat16`, or `nil` for none) on this thread.
    ///
    /// - Throws: `TensorError.invalidArgument` for another dtype.
    public static func with<R>(_ storage: DType?, _ body: () throws -> R) throws -> R {
        guard storage == nil || storage == .float16 || storage == .bfloat16 else {
            throw TensorError.invalidArgument(op: "MixedPrecision", detail: "storage must be f16 or bf16, not \(storage!)")
        }
        return try NumericSettings.setting.with(NumericSettings.replacingPrecision(NumericSettings.setting.value, code(storage)), body)
    }
}

/// The execution policy and the mixed-precision type share one thread setting, so a kernel reads
/// both with one thread-local lookup: bits 0–2 hold the policy, bits 3–4 the storage type.
package enum NumericSettings {
    static let setting = ThreadSetting(default: ExecutionPolicy.strict.code)

    static func policyField(_ code: Int) -> Int { code & 7 }
    static func precisionField(_ code: Int) -> Int { code >> 3 }
    static func replacingPolicy(_ code: Int, _ policy: Int) -> Int { (code & ~7) | policy }
    static func replacingPrecision(_ code: Int, _ precision: Int) -> Int { (code & 7) | precision << 3 }

    /// Whether the calling thread runs arithmetic as written — no ``ExecutionPolicy/float64Debug``
    /// promotion, no ``MixedPrecision`` storage — decided from one lookup without decoding either.
    package static var arithmeticIsPlain: Bool {
        let code = setting.value
        return code & 1 == 0 && precisionField(code) == 0
    }

    /// Both settings of the calling thread, from one lookup.
    static var current: (policy: ExecutionPolicy, lowPrecision: DType?) {
        let code = setting.value
        return (ExecutionPolicy(code: policyField(code)), MixedPrecision.dtype(precisionField(code)))
    }
}
