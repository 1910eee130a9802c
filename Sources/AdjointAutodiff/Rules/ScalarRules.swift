import AdjointTensor

/// The rank-0 form of the rules whose VJP is plain arithmetic on the cotangent and saved values.
///
/// A backward pass over scalar operations (a loss assembled from scalars, a scalar state update)
/// spends almost all its time making rank-0 tensors for the products of the rules. When nothing
/// observes the backward pass (``InterpreterStack/runsUnobserved``: no outer tape, forward level,
/// anomaly check, profiler timer or resource limit, and plain arithmetic) and every value of a
/// node is a float64 or float32 scalar of one dtype, the tape evaluates this form instead: the
/// same operations in the same order as the tensor rule in `Rules/`, in the element type, so the
/// result is bitwise the one the tensor rule gives (the rule-table test checks every case).
struct ScalarVJP {
    let op: OpCode

    /// Nil for an operator without a rank-0 form.
    init?(_ op: OpCode) {
        switch op {
        case .add, .sub, .mul, .div, .neg, .exp, .expm1, .log, .log1p, .sqrt, .tanh, .sigmoid: self.op = op
        default: return nil
        }
    }

    /// The cotangents of inputs 0 and 1 (`nil`: none) from the output's cotangent `g`, the saved
    /// inputs `x0`, `x1` and the saved output `y` (a value the rule does not save is not read, and
    /// is passed as 0). `sameValue`: inputs 0 and 1 are one tracked value (`x * x`).
    @inline(__always)
    func cotangents<T: BinaryFloatingPoint>(_ g: T, _ x0: T, _ x1: T, output y: T, sameValue: Bool) -> (T?, T?) {
        switch op {
        case .add: return (g, g)
        case .sub: return (g, -g)
        case .mul: return sameValue ? (g * x0 * 2, nil) : (g * x1, g * x0)
        case .div: return (g / x1, -(g * x0 / (x1 * x1)))
        case .neg: return (-g, nil)
        case .exp: return (g * y, nil)
        case .expm1: return (g * (y + 1), nil)
        case .log: return (g / x0, nil)
        case .log1p: return (g / (x0 + 1), nil)
        case .sqrt: return (g / (y * 2), nil)
        case .tanh: return (g * (1 - y * y), nil)
        case .sigmoid: return (g * y * (1 - y), nil)
        default: preconditionFailure("\(op.rawValue) has no rank-0 rule")
        }
    }
}
