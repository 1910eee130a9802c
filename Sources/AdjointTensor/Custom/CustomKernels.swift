import Synchronization

/// Errors of custom operators' kernels: named, with what was wrong.
public enum CustomOperatorError: Error, Equatable, CustomStringConvertible {
    case unknown(name: String)
    case duplicate(name: String)
    case outputAliasesInput(name: String, input: Int)

    public var description: String {
        switch self {
        case let .unknown(name): return "no custom operator '\(name)' is registered"
        case let .duplicate(name): return "a custom operator '\(name)' is already registered (pass replacing: true to replace it)"
        case let .outputAliasesInput(name, input): return "custom operator '\(name)': the output shares storage with input \(input); return a new tensor"
        }
    }
}

/// The forward kernels of custom operators, by name: what `custom.call` runs. Users register whole
/// operators (kernel and derivatives) through `CustomOperators` in AdjointAutodiff, which keeps the
/// derivatives; the tensor layer knows only the kernels.
package enum CustomKernels {
    package typealias Forward = @Sendable (_ inputs: [Tensor]) throws -> Tensor

    private static let registry = Lock<[String: Forward]>([:])

    /// Registers `forward` as the kernel of `name`.
    ///
    /// - Throws: ``CustomOperatorError/duplicate(name:)`` when the name is taken and `replacing` is false.
    package static func register(_ name: String, replacing: Bool, _ forward: @escaping Forward) throws {
        try registry.withLock { table in
            if table[name] != nil, !replacing { throw CustomOperatorError.duplicate(name: name) }
            table[name] = forward
        }
    }

    /// The kernel of `custom.call`: runs the forward with every interpreter level hidden (its own
    /// operations are not recorded; the call is), then checks the output does not alias an input.
    package static func execute(_ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        guard case let .custom(name) = attributes else { throw Kernels.badAttributes(.customCall, attributes) }
        guard let forward = registry.withLock({ $0[name] }) else { throw CustomOperatorError.unknown(name: name) }
        let output = try InterpreterStack.current.withoutLevels { try forward(inputs) }
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
