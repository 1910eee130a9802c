/// Typed operator attributes: one case per attribute shape, so each operator carries exactly the
/// parameters it needs and a graph round-trips through the codec without loss.
public enum Attributes: Hashable, Codable, Sendable {
    /// No attributes.
    case none
    /// Reduce over `axes` (sorted, non-negative); keep them as size-1 dimensions when `keepDims`.
    case reduction(axes: [Int], keepDims: Bool)
    /// A target shape (reshape, broadcast-to).
    case shape([Int])
    /// A permutation of the axes (transpose).
    case permutation([Int])
    /// Half-open ranges `starts[i] ..< ends[i]` per axis (slice; in-place assignment region).
    case region(starts: [Int], ends: [Int])
    /// One axis (concat, stack, gather, scatter-add, softmax, log-softmax, argmax, cross-entropy).
    case axis(Int)
    /// One axis with keepDims (argmax).
    case axisKeepDims(axis: Int, keepDims: Bool)
    /// Constant padding: `low[i]` elements before and `high[i]` after axis `i`.
    case pad(low: [Int], high: [Int], value: Double)
    /// Target element type (cast).
    case dtype(DType)
    /// One-hot encoding with `depth` classes along a new last axis.
    case oneHot(depth: Int, dtype: DType)
    /// Matrix product of the last two axes, optionally transposing either operand.
    case matmul(transposeA: Bool, transposeB: Bool)
    /// Fill a new tensor (creation.full).
    case fill(shape: [Int], value: Double, dtype: DType)
    /// A 1-D range `start, start + step, …` below `end` (creation.arange).
    case range(start: Double, end: Double, step: Double, dtype: DType)
    /// `count` evenly spaced values from `start` to `end` inclusive (creation.linspace).
    case linspace(start: Double, end: Double, count: Int, dtype: DType)
    /// Counter-based random numbers: Philox key, stream and counter offset (random.*).
    case random(shape: [Int], dtype: DType, seed: UInt64, stream: UInt64, counter: UInt64, low: Double, high: Double)
    /// The registered name of a custom operator.
    case custom(name: String)
}

extension Attributes: CustomStringConvertible {
    /// The attribute list as the printer shows it: `{axes=[0,1], keepDims=false}`; empty for `.none`.
    public var description: String {
        func list(_ v: [Int]) -> String { "[" + v.map(String.init).joined(separator: ",") + "]" }
        let fields: [String]
        switch self {
        case .none: return ""
        case let .reduction(axes, keepDims): fields = ["axes=\(list(axes))", "keepDims=\(keepDims)"]
        case let .shape(s): fields = ["shape=\(list(s))"]
        case let .permutation(p): fields = ["permutation=\(list(p))"]
        case let .region(s, e): fields = ["starts=\(list(s))", "ends=\(list(e))"]
        case let .axis(a): fields = ["axis=\(a)"]
        case let .axisKeepDims(a, k): fields = ["axis=\(a)", "keepDims=\(k)"]
        case let .pad(l, h, v): fields = ["low=\(list(l))", "high=\(list(h))", "value=\(v)"]
        case let .dtype(d): fields = ["dtype=\(d)"]
        case let .oneHot(depth, d): fields = ["depth=\(depth)", "dtype=\(d)"]
        case let .matmul(ta, tb): fields = ["transposeA=\(ta)", "transposeB=\(tb)"]
        case let .fill(s, v, d): fields = ["shape=\(list(s))", "value=\(v)", "dtype=\(d)"]
        case let .range(s, e, st, d): fields = ["start=\(s)", "end=\(e)", "step=\(st)", "dtype=\(d)"]
        case let .linspace(s, e, c, d): fields = ["start=\(s)", "end=\(e)", "count=\(c)", "dtype=\(d)"]
        case let .random(s, d, seed, stream, counter, lo, hi):
            fields = ["shape=\(list(s))", "dtype=\(d)", "seed=\(seed)", "stream=\(stream)",
                      "counter=\(counter)", "low=\(lo)", "high=\(hi)"]
        case let .custom(name): fields = ["name=\(name)"]
        }
        return "{" + fields.joined(separator: ", ") + "}"
    }
}
