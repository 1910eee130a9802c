import Synchronization

/// A user-defined operator: a forward kernel written with tensors (or raw loops), and optionally
/// its VJP and JVP, registered by name at run time — no change to Adjoint's sources. It runs
/// through the dispatch point like every built-in operator (`custom.call` with the name as its
/// attribute), so tapes, forward mode, the profiler, anomaly checks and limits all see it.
///
/// Every call is validated: an output that shares storage with an input is rejected, and so is a
/// derivative of the wrong count, shape or dtype — with the operator's name in the message.
public struct CustomOperator: Sendable {
    public typealias Forward = @Sendable (_ inputs: [Tensor]) throws -> Tensor
    /// Cotangents of the inputs (`nil`: zero) from the inputs, the output and the output's cotangent.
    public typealias VJP = @Sendable (_ inputs: [Tensor], _ output: Tensor, _ cotangent: Tensor) throws -> [Tensor?]
    /// The output's tangent (`nil`: zero) from the inputs, the output and the inputs' tangents (`nil`: zero).
    public typealias JVP = @Sendable (_ inputs: [Tensor], _ output: Tensor, _ tangents: [Tensor?]) throws -> Tensor?

    public let name: String
    public let forward: Forward
    public let vjp: VJP?
    public let jvp: JVP?

    public init(name: String, forward: @escaping Forward, vjp: VJP? = nil, jvp: JVP? = nil) {
        self.name = name
        self.forward = forward
        self.vjp = vjp
        self.jvp = jvp
    }
}

/// Errors of custom operators: named, with what was wrong.
public enum CustomOperatorError: Error, Equatable, CustomStringConvertible {
    case unknown(name: String)
    case duplicate(name: String)
    case outputAliasesInput(name: String, input: Int)
    case wrongGradientCount(name: String, expected: Int, got: Int)
    case wrongGradient(name: String, input: Int, expected: String, got: String)
    case wrongTangent(name: String, expected: String, got: String)

    public var description: String {
        switch self {
        case let .unknown(name): return "no custom operator '\(name)' is registered"
        case let .duplicate(name): return "a custom operator '\(name)' is already registered (pass replacing: true to replace it)"
        case let .outputAliasesInput(name, input): return "custom operator '\(name)': the output shares storage with input \(input); return a new tensor"
        case let .wrongGradientCount(name, expected, got): return "custom operator '\(name)': the VJP returned \(got) cotangents for \(expected) inputs"
        case let .wrongGradient(name, input, expected, got): return "custom operator '\(name)': the cotangent of input \(input) is \(got), the input is \(expected)"
        case let .wrongTangent(name, expected, got): return "custom operator '\(name)': the JVP returned \(got), the output is \(expected)"
        }
    }
}

/// The process-wide registry of custom operators.
public enum CustomOperators {
    private static let registry = Lock<[String: CustomOperator]>([:])

    /// Registers `op` under its name.
    ///
    /// - Throws: ``CustomOperatorError/duplicate(name:)`` when the name is taken and `replacing` is false.
    public static func register(_ op: CustomOperator, replacing: Bool = false) throws {
        try registry.withLock { table in
            if table[op.name] != nil, !replacing { throw CustomOperatorError.duplicate(name: op.name) }
            table[op.name] = op
        }
    }

    /// The operator registered as `name`.
    public static func lookup(_ name: String) throws -> CustomOperator {
        guard let op = registry.withLock({ $0[name] }) else { throw CustomOperatorError.unknown(name: name) }
        return op
    }

    /// The kernel of `custom.call`: runs the forward with every interpreter level hidden (its own
    /// operations are not recorded; the call is), then checks the output does not alias an input.
    static func execute(_ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        guard case let .custom(name) = attributes else { throw Kernels.badAttributes(.customCall, attributes) }
        let op = try lookup(name)
        let output = try InterpreterStack.current.withoutLevels { try op.forward(inputs) }
        if let i = inputs.firstIndex(where: { $0.sharesStorage(with: output) }) {
            throw CustomOperatorError.outputAliasesInput(name: name, input: i)
        }
        return output.untracked
    }
}

extension Tensor {
    /// Applies the custom operator registered as `name`.
    public static func custom(_ name: String, _ inputs: [Tensor]) throws -> Tensor {
        try dispatch1(.customCall, .custom(name: name), inputs)
    }
}
