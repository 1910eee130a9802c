import AdjointTensor

/// What a derivative rule sees during backward: the saved values, the attributes, the incoming
/// cotangent and which inputs need a gradient.
public struct VJPContext {
    let node: Tape.Node
    let index: Int
    /// The cotangent of the output.
    public let cotangent: Tensor

    public var op: OpCode { node.op }
    public var attributes: Attributes { node.attributes }
    /// Output shape and dtype.
    public var outputType: ValueType { node.outputType }
    /// Shapes and dtypes of every input (saved or not).
    public var inputTypes: [ValueType] { node.inputs.map(\.type) }

    /// Saved input `i` (the rule must declare it in ``DerivativeRule/Saves``). The tape has checked
    /// it against in-place writes before the rule runs.
    public func input(_ i: Int) -> Tensor {
        guard let saved = node.inputs[i].saved else { preconditionFailure("rule of \(op.rawValue) reads input \(i) without saving it") }
        return saved.tensor
    }

    /// The saved output (the rule must declare it).
    public var output: Tensor {
        guard let saved = node.savedOutput else { preconditionFailure("rule of \(op.rawValue) reads its output without saving it") }
        return saved.tensor
    }

    /// Whether input `i` needs a gradient (some level tracks it).
    public func needsGradient(_ i: Int) -> Bool { node.inputs[i].id >= 0 }
    public func shape(_ i: Int) -> [Int] { node.inputs[i].type.shape }
    public func dtype(_ i: Int) -> DType { node.inputs[i].type.dtype }
    public var inputCount: Int { node.inputs.count }
}

/// An operator's derivative: a VJP, or an explicit statement of why there is none.
///
/// Rules are written with the same `Tensor` operations as user code, so a backward pass goes through
/// ``dispatch(_:_:_:)`` and can itself be differentiated.
public struct DerivativeRule {
    /// Whether and why an operator has a derivative.
    public enum Status: Equatable, CustomStringConvertible {
        /// Has a VJP.
        case differentiable
        /// Has no derivative by nature (integer or boolean results, random draws); gradients stop.
        case nonDifferentiable(String)
        /// Could have a derivative but Adjoint does not provide it; a cotangent reaching it is an error.
        case notImplemented(String)

        public var description: String {
            switch self {
            case .differentiable: return "differentiable"
            case let .nonDifferentiable(why): return "non-differentiable (\(why))"
            case let .notImplemented(why): return "not implemented (\(why))"
            }
        }
    }

    /// The values the VJP reads, so the tape keeps only those alive.
    public struct Saves {
        public var inputs: [Int]
        public var output: Bool
        public init(inputs: [Int] = [], output: Bool = false) { self.inputs = inputs; self.output = output }
        public static let nothing = Saves()
    }

    public typealias VJP = (VJPContext) throws -> [Tensor?]

    public let status: Status
    public let saves: Saves
    public let vjp: VJP?

    /// A VJP returning one cotangent (or `nil`, a symbolic zero) per input.
    public static func vjp(saving saves: Saves = .nothing, _ body: @escaping VJP) -> DerivativeRule {
        DerivativeRule(status: .differentiable, saves: saves, vjp: body)
    }

    public static func nonDifferentiable(_ why: String) -> DerivativeRule {
        DerivativeRule(status: .nonDifferentiable(why), saves: .nothing, vjp: nil)
    }

    public static func notImplemented(_ why: String) -> DerivativeRule {
        DerivativeRule(status: .notImplemented(why), saves: .nothing, vjp: nil)
    }
}

/// The rule table: one function per operator family, each in its own file under `Rules/`.
public enum DerivativeRules {
    /// The derivative rule of `op` (from a table built once).
    @inline(__always)
    public static func rule(for op: OpCode) -> DerivativeRule { table[op.caseIndex] }

    private static let table: [DerivativeRule] = OpCode.allCases.map(makeRule)

    private static func makeRule(_ op: OpCode) -> DerivativeRule {
        switch op.family {
        case .creation: return creation(op)
        case .unary: return unary(op)
        case .binary: return binary(op)
        case .comparison: return comparison(op)
        case .reduction: return reduction(op)
        case .linalg: return linalg(op)
        case .layout: return layout(op)
        case .indexing: return indexing(op)
        case .nn: return nn(op)
        case .conversion: return conversion(op)
        case .inPlace: return inPlace(op)
        }
    }

    /// Every operator's status, in `OpCode.allCases` order.
    public static var statusTable: [(op: OpCode, status: DerivativeRule.Status)] {
        OpCode.allCases.map { ($0, rule(for: $0).status) }
    }
}
