import AdjointTensor

/// A user-defined operator: a forward kernel written with tensors (or raw loops), and optionally
/// its VJP and JVP, registered by name at run time — no change to Adjoint's sources. It runs
/// through the dispatch point like every built-in operator (`custom.call` with the name as its
/// attribute), so tapes, forward mode, the profiler, anomaly checks and limits all see it.
///
/// Every call is validated: an output that shares storage with an input is rejected
/// (`CustomOperatorError`), and so is a derivative of the wrong count, shape or dtype
/// (``AutodiffError/customDerivative(name:detail:)``) — with the operator's name in the message.
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

/// The process-wide registry of custom operators: the kernel goes to the tensor layer (what
/// `custom.call` runs), the derivatives stay here (what the `custom.call` rule runs).
public enum CustomOperators {
    private static let registry = Lock<[String: CustomOperator]>([:])

    /// Registers `op` under its name.
    ///
    /// - Throws: `CustomOperatorError.duplicate(name:)` when the name is taken and `replacing` is false.
    public static func register(_ op: CustomOperator, replacing: Bool = false) throws {
        try registry.withLock { table in
            if table[op.name] != nil, !replacing { throw CustomOperatorError.duplicate(name: op.name) }
            try CustomKernels.register(op.name, replacing: true, op.forward)
            table[op.name] = op
        }
    }

    /// The operator registered as `name`.
    public static func lookup(_ name: String) throws -> CustomOperator {
        guard let op = registry.withLock({ $0[name] }) else { throw CustomOperatorError.unknown(name: name) }
        return op
    }
}
