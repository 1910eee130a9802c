/// The closed vocabulary of operators Adjoint executes, records and serializes.
///
/// Raw values are stable identifiers (`"<family>.<name>"`): they are what the IR printer shows and
/// what the serialized format stores, so a case may be added but never renamed. Identity is the raw
/// value, never the declaration order.
public enum OpCode: String, Codable, CaseIterable, Sendable, Hashable {
    // MARK: Creation (no differentiable inputs)
    case full = "creation.full"
    case arange = "creation.arange"
    case linspace = "creation.linspace"
    case randomUniform = "random.uniform"
    case randomNormal = "random.normal"

    // MARK: Unary elementwise
    case neg = "elementwise.neg"
    case abs = "elementwise.abs"
    case sign = "elementwise.sign"
    case exp = "elementwise.exp"
    case expm1 = "elementwise.expm1"
    case log = "elementwise.log"
    case log1p = "elementwise.log1p"
    case sqrt = "elementwise.sqrt"
    case rsqrt = "elementwise.rsqrt"
    case sin = "elementwise.sin"
    case cos = "elementwise.cos"
    case tanh = "elementwise.tanh"
    case sigmoid = "elementwise.sigmoid"
    case relu = "elementwise.relu"
    case softplus = "elementwise.softplus"

    // MARK: Binary elementwise (NumPy broadcasting)
    case add = "binary.add"
    case sub = "binary.sub"
    case mul = "binary.mul"
    case div = "binary.div"
    case pow = "binary.pow"
    case maximum = "binary.maximum"
    case minimum = "binary.minimum"
    /// `a·b + c` in one pass (two roundings, so bitwise equal to `a * b + c`); three operands
    /// broadcast together. Forward-mode rules use it for product-rule sums.
    case multiplyAdd = "binary.multiplyAdd"

    // MARK: Comparison and selection
    case equal = "compare.equal"
    case notEqual = "compare.notEqual"
    case less = "compare.less"
    case lessEqual = "compare.lessEqual"
    case greater = "compare.greater"
    case greaterEqual = "compare.greaterEqual"
    case select = "select.where"

    // MARK: Reductions
    case sum = "reduction.sum"
    case mean = "reduction.mean"
    case max = "reduction.max"
    case min = "reduction.min"
    case argmax = "reduction.argmax"
    case logsumexp = "reduction.logsumexp"

    // MARK: Linear algebra
    case matmul = "linalg.matmul"

    // MARK: Layout
    case reshape = "layout.reshape"
    case transpose = "layout.transpose"
    case broadcastTo = "layout.broadcastTo"
    case slice = "layout.slice"
    case concat = "layout.concat"
    case stack = "layout.stack"
    case pad = "layout.pad"

    // MARK: Indexing
    case gather = "indexing.gather"
    case scatterAdd = "indexing.scatterAdd"
    case oneHot = "indexing.oneHot"

    // MARK: Neural-network composites (fused, numerically stable kernels)
    case softmax = "nn.softmax"
    case logSoftmax = "nn.logSoftmax"
    case crossEntropyWithLogits = "nn.crossEntropyWithLogits"
    case meanSquaredError = "nn.meanSquaredError"

    // MARK: Conversion
    case cast = "convert.cast"

    // MARK: In-place (mutate their first input)
    case addInPlace = "inplace.add"
    case mulInPlace = "inplace.mul"
    case assignInPlace = "inplace.assign"
    /// `target += a·b` (an optimizer's update `w += (−lr)·g` in one pass).
    case multiplyAddInPlace = "inplace.multiplyAdd"

    // MARK: Custom (registered at run time; the name is an attribute)
    /// A user-registered operator (`Attributes.custom(name:)`); its kernel and derivatives come from
    /// the registry in `AdjointTensor` (`CustomOperators`).
    case customCall = "custom.call"
}

extension OpCode {
    /// The family an operator belongs to: the prefix of its raw value.
    public var family: OpFamily {
        switch self {
        case .full, .arange, .linspace, .randomUniform, .randomNormal: return .creation
        case .neg, .abs, .sign, .exp, .expm1, .log, .log1p, .sqrt, .rsqrt, .sin, .cos, .tanh,
             .sigmoid, .relu, .softplus: return .unary
        case .add, .sub, .mul, .div, .pow, .maximum, .minimum, .multiplyAdd: return .binary
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual, .select: return .comparison
        case .sum, .mean, .max, .min, .argmax, .logsumexp: return .reduction
        case .matmul: return .linalg
        case .reshape, .transpose, .broadcastTo, .slice, .concat, .stack, .pad: return .layout
        case .gather, .scatterAdd, .oneHot: return .indexing
        case .softmax, .logSoftmax, .crossEntropyWithLogits, .meanSquaredError: return .nn
        case .cast: return .conversion
        case .addInPlace, .mulInPlace, .assignInPlace, .multiplyAddInPlace: return .inPlace
        case .customCall: return .custom
        }
    }

    /// The number of tensor inputs the operator takes, or `nil` when it is variadic.
    public var arity: Int? {
        switch family {
        case .creation: return 0
        case .unary, .conversion: return 1
        case .binary: return self == .multiplyAdd ? 3 : 2
        case .comparison: return self == .select ? 3 : 2
        case .reduction: return 1
        case .linalg: return 2
        case .layout:
            switch self {
            case .concat, .stack: return nil
            default: return 1
            }
        case .indexing:
            switch self {
            case .gather: return 2
            case .scatterAdd: return 3
            default: return 1
            }
        case .nn:
            switch self {
            case .softmax, .logSoftmax: return 1
            default: return 2
            }
        case .inPlace: return self == .multiplyAddInPlace ? 3 : 2
        case .custom: return nil
        }
    }

    /// Position in `allCases`, for in-memory lookup tables only — never for identity or files
    /// (those use `rawValue`). A payload-free enum is stored as its case index; a test checks it.
    @inlinable
    public var caseIndex: Int { Int(unsafeBitCast(self, to: UInt8.self)) }

    /// Whether the operator writes into its first input instead of producing a new tensor.
    public var isInPlace: Bool { family == .inPlace }
}

/// Operator families: one kernel file and one derivative-rule file each.
public enum OpFamily: String, Codable, CaseIterable, Sendable {
    case creation, unary, binary, comparison, reduction, linalg, layout, indexing, nn, conversion, inPlace, custom
}
