import AdjointTensor

/// The primal values and types a derivative rule may read, in either mode.
///
/// A rule reads only the inputs (and the output) its ``DerivativeRule/Saves`` declares, so the same
/// rule runs on a live call (forward mode), on a recorded tape node (reverse mode, `linearize`),
/// and keeps a tape's memory to what is needed.
package protocol DerivativeContext {
    var op: OpCode { get }
    var attributes: Attributes { get }
    /// Output shape and dtype.
    var outputType: ValueType { get }
    /// Shapes and dtypes of every input (saved or not).
    var inputTypes: [ValueType] { get }
    /// Input `i`; the rule must declare it in ``DerivativeRule/Saves``.
    func input(_ i: Int) -> Tensor
    /// The output; the rule must declare it in ``DerivativeRule/Saves``.
    var output: Tensor { get }
}

extension DerivativeContext {
    package func shape(_ i: Int) -> [Int] { inputTypes[i].shape }
    package func dtype(_ i: Int) -> DType { inputTypes[i].dtype }
    package var inputCount: Int { inputTypes.count }
}

/// Where a context's primal values come from.
enum PrimalSource {
    /// Node `index` of a tape: only the saved values exist (checked against in-place writes first).
    case node(Tape, Int)
    /// A call as it happens (forward mode): every value exists, but a rule may still read only what
    /// it declares, so that the rule also works on a tape.
    case call(OpCall, DerivativeRule.Saves)

    var op: OpCode {
        switch self {
        case let .node(tape, n): return tape.nodes[n].op
        case let .call(c, _): return c.op
        }
    }

    var attributes: Attributes {
        switch self {
        case let .node(tape, n): return tape.nodes[n].attributes
        case let .call(c, _): return c.attributes
        }
    }

    var outputType: ValueType {
        switch self {
        case let .node(tape, n): return tape.nodes[n].outputType
        case let .call(c, _): return c.output.valueType
        }
    }

    var inputTypes: [ValueType] {
        switch self {
        case let .node(tape, n): return tape.inputs[tape.nodes[n].inputRange].map(\.type)
        case let .call(c, _): return c.inputs.map { $0.valueType }
        }
    }

    func inputType(_ i: Int) -> ValueType {
        switch self {
        case let .node(tape, n): return tape.inputs[tape.nodes[n].inputStart + i].type
        case let .call(c, _): return c.inputs[i].valueType
        }
    }

    func input(_ i: Int) -> Tensor {
        switch self {
        case let .node(tape, n):
            let k = tape.nodes[n].inputStart + i
            guard let saved = tape.inputs[k].saved else {
                preconditionFailure("rule of \(tape.nodes[n].op.rawValue) reads input \(i) without saving it")
            }
            return saved.tensor(shape: tape.inputs[k].type.shape)
        case let .call(c, saves):
            precondition(saves.savesInput(i), "rule of \(c.op.rawValue) reads input \(i) without saving it")
            return c.inputs[i]
        }
    }

    var output: Tensor {
        switch self {
        case let .node(tape, n):
            guard let saved = tape.nodes[n].savedOutput else {
                preconditionFailure("rule of \(tape.nodes[n].op.rawValue) reads its output without saving it")
            }
            return saved.tensor(shape: tape.nodes[n].outputType.shape)
        case let .call(c, saves):
            precondition(saves.output, "rule of \(c.op.rawValue) reads its output without saving it")
            return c.output
        }
    }
}

/// What a VJP sees during backward: the saved values, the attributes, the incoming cotangent and
/// which inputs need a gradient.
package struct VJPContext: DerivativeContext {
    let tape: Tape
    let index: Int
    /// The cotangent of the output.
    package let cotangent: Tensor

    init(tape: Tape, node index: Int, cotangent: Tensor) {
        self.tape = tape
        self.index = index
        self.cotangent = cotangent
    }

    var source: PrimalSource { .node(tape, index) }
    package var op: OpCode { tape.nodes[index].op }
    package var attributes: Attributes { tape.nodes[index].attributes }
    package var outputType: ValueType { tape.nodes[index].outputType }
    package var inputTypes: [ValueType] { source.inputTypes }
    package func shape(_ i: Int) -> [Int] { tape.inputs[slot(i)].type.shape }
    package func dtype(_ i: Int) -> DType { tape.inputs[slot(i)].type.dtype }
    /// Saved input `i` (checked against in-place writes before the rule runs).
    package func input(_ i: Int) -> Tensor { source.input(i) }
    package var output: Tensor { source.output }
    /// Whether input `i` needs a gradient (some level tracks it).
    package func needsGradient(_ i: Int) -> Bool { tape.inputs[slot(i)].id >= 0 }
    /// Whether inputs `i` and `j` are the same tracked value (as in `x * x`), so one cotangent can
    /// serve both.
    package func isSameValue(_ i: Int, _ j: Int) -> Bool {
        let id = tape.inputs[slot(i)].id
        return id >= 0 && id == tape.inputs[slot(j)].id
    }

    /// Where input `i` of the node sits in the tape's input list.
    private func slot(_ i: Int) -> Int { tape.nodes[index].inputStart + i }
}

/// What a JVP sees: the primal values it declared, the attributes and the tangent of every input
/// (`nil` is a symbolic zero).
package struct JVPContext: DerivativeContext {
    let source: PrimalSource
    let tangents: [Tensor?]

    init(source: PrimalSource, tangents: [Tensor?]) {
        self.source = source
        self.tangents = tangents
    }

    package var op: OpCode { source.op }
    package var attributes: Attributes { source.attributes }
    package var outputType: ValueType { source.outputType }
    package var inputTypes: [ValueType] { source.inputTypes }
    package func shape(_ i: Int) -> [Int] { source.inputType(i).shape }
    package func dtype(_ i: Int) -> DType { source.inputType(i).dtype }
    package func input(_ i: Int) -> Tensor { source.input(i) }
    package var output: Tensor { source.output }

    /// The tangent of input `i`, or `nil` when it is zero.
    package func tangent(_ i: Int) -> Tensor? { i < tangents.count ? tangents[i] : nil }

    /// The tangent of input `i`, with zeros in place of a symbolic zero (on the device of the
    /// other inputs' tangents).
    package func tangentOrZeros(_ i: Int) throws -> Tensor {
        if let t = tangent(i) { return t }
        let device = tangents.lazy.compactMap { $0?.device }.first ?? .cpu
        return try Tensor.full(shape(i), 0, dtype: dtype(i), on: device)
    }

    /// The output's tangent built from `t`, broadcast to the output's shape if an input was broadcast.
    package func fitted(_ t: Tensor) throws -> Tensor {
        t.shape == outputType.shape ? t : try t.broadcast(to: outputType.shape)
    }
}

/// An operator's derivative: a VJP, or an explicit statement of why there is none.
///
/// Rules are written with the same `Tensor` operations as user code, so a backward (or tangent)
/// pass goes through `dispatch(_:_:_:)` and can itself be differentiated: that is what makes
/// reverse-over-reverse, forward-over-reverse (``hvp(at:direction:of:)``) and higher orders work.
///
/// A class: the tape looks a rule up for every recorded operation and every backward step, and a
/// reference is one count to copy where the fields are five.
// @unchecked Sendable: every property is a `let` set at construction, and the rule closures of the
// table capture only constants (operator codes, other immutable rules); the table is shared by
// every thread's tape.
package final class DerivativeRule: @unchecked Sendable {
    /// Whether and why an operator has a derivative.
    package enum Status: Equatable, CustomStringConvertible {
        /// Has a VJP.
        case differentiable
        /// Has no derivative by nature (integer or boolean results, random draws); gradients stop.
        case nonDifferentiable(String)
        /// Could have a derivative but Adjoint does not provide it; a cotangent reaching it is an error.
        case notImplemented(String)

        package var description: String {
            switch self {
            case .differentiable: return "differentiable"
            case let .nonDifferentiable(why): return "non-differentiable (\(why))"
            case let .notImplemented(why): return "not implemented (\(why))"
            }
        }
    }

    /// The values the VJP reads, so the tape keeps only those alive.
    package struct Saves: Sendable {
        package var inputs: [Int]
        package var output: Bool
        /// Every input, however many the call has (custom operators).
        package var allInputs: Bool
        package init(inputs: [Int] = [], output: Bool = false) { self.inputs = inputs; self.output = output; allInputs = false }
        package init(allInputs: Bool, output: Bool = false) { inputs = []; self.output = output; self.allInputs = allInputs }
        package static let nothing = Saves()
        /// Whether input `i` is saved.
        @inlinable public func savesInput(_ i: Int) -> Bool { allInputs || inputs.contains(i) }
    }

    /// Maps the output's cotangent to one cotangent per input (`nil`: a symbolic zero).
    package typealias VJP = (VJPContext) throws -> [Tensor?]
    /// Maps the inputs' tangents to the output's tangent (`nil`: a symbolic zero).
    package typealias JVP = (JVPContext) throws -> Tensor?

    package let status: Status
    package let saves: Saves
    package let vjp: VJP?
    package let jvp: JVP?

    init(status: Status, saves: Saves, vjp: VJP?, jvp: JVP?) {
        self.status = status
        self.saves = saves
        self.vjp = vjp
        self.jvp = jvp
    }

    /// A rule with both products. Both closures may read only what `saves` declares.
    package static func differentiable(saving saves: Saves = .nothing, vjp: @escaping VJP, jvp: @escaping JVP) -> DerivativeRule {
        DerivativeRule(status: .differentiable, saves: saves, vjp: vjp, jvp: jvp)
    }

    /// An elementwise rule `y = f(x)` given by its derivative times an incoming vector: the VJP
    /// multiplies the cotangent and the JVP the tangent by the same `f′` (ChainRules' `@scalar_rule`).
    package static func pointwise(saving saves: Saves = .nothing,
                                 _ scale: @escaping (any DerivativeContext, Tensor) throws -> Tensor) -> DerivativeRule {
        .differentiable(saving: saves,
                        vjp: { c in [try scale(c, c.cotangent)] },
                        jvp: { c in try c.tangent(0).map { try scale(c, $0) } })
    }

    /// A rule for an operator that is linear in its floating-point inputs (reshape, slice, sum…):
    /// the JVP is the operator applied to the tangents; non-floating-point inputs (indices) pass
    /// through as they are.
    package static func linear(saving saves: Saves = .nothing, vjp: @escaping VJP) -> DerivativeRule {
        .differentiable(saving: saves, vjp: vjp, jvp: { c in
            guard c.tangents.contains(where: { $0 != nil }) else { return nil }
            let operands = try c.inputTypes.indices.map { i in
                c.dtype(i).isFloatingPoint ? try c.tangentOrZeros(i) : c.input(i)
            }
            return try dispatch1(c.op, c.attributes, operands)
        })
    }

    /// Throws ``AutodiffError/derivativeNotImplemented(op:node:reason:)`` when a derivative reaches
    /// an operator whose rule is not implemented (`node` -1 in forward mode); a non-differentiable
    /// operator simply stops the derivative.
    func requireImplemented(_ op: OpCode, node: Int) throws {
        if case let .notImplemented(why) = status { throw AutodiffError.derivativeNotImplemented(op: op, node: node, reason: why) }
    }

    package static func nonDifferentiable(_ why: String) -> DerivativeRule {
        DerivativeRule(status: .nonDifferentiable(why), saves: .nothing, vjp: nil, jvp: nil)
    }

    package static func notImplemented(_ why: String) -> DerivativeRule {
        DerivativeRule(status: .notImplemented(why), saves: .nothing, vjp: nil, jvp: nil)
    }
}

/// The rule table: one function per operator family, each in its own file under `Rules/`.
package enum DerivativeRules {
    /// The derivative rule of `op` (from a table built once).
    @inline(__always)
    package static func rule(for op: OpCode) -> DerivativeRule { table[op.caseIndex] }

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
        case .custom: return custom(op)
        }
    }

    /// Throws if a rule's result does not have the type of the value it is the derivative of
    /// (`input` -1: the output tangent of a JVP).
    static func check(_ derivative: Tensor, of op: OpCode, input: Int, against type: ValueType) throws {
        guard derivative.shape == type.shape else {
            throw AutodiffError.ruleProducedWrongShape(op: op, input: input, expected: type.shape, got: derivative.shape)
        }
        guard derivative.dtype == type.dtype else {
            throw AutodiffError.ruleProducedWrongDType(op: op, input: input, expected: type.dtype, got: derivative.dtype)
        }
    }

    /// Every operator's status, in `OpCode.allCases` order.
    package static var statusTable: [(op: OpCode, status: DerivativeRule.Status)] {
        OpCode.allCases.map { ($0, rule(for: $0).status) }
    }
}
