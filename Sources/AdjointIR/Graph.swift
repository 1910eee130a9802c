/// Identifies one value in a ``Graph``; printed as `%n`.
public struct ValueID: Hashable, Codable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: Int
    public init(_ rawValue: Int) { self.rawValue = rawValue }
    public static func < (a: ValueID, b: ValueID) -> Bool { a.rawValue < b.rawValue }
    public var description: String { "%\(rawValue)" }
}

/// One equation of a graph: `outputs = op[attributes](inputs)`.
public struct Node: Hashable, Codable, Sendable {
    public var op: OpCode
    public var attributes: Attributes
    public var inputs: [ValueID]
    public var outputs: [ValueID]
    /// Types of `outputs`, in order.
    public var outputTypes: [ValueType]

    public init(op: OpCode, attributes: Attributes = .none, inputs: [ValueID], outputs: [ValueID], outputTypes: [ValueType]) {
        self.op = op
        self.attributes = attributes
        self.inputs = inputs
        self.outputs = outputs
        self.outputTypes = outputTypes
    }
}

/// A value that enters the graph from outside.
public struct GraphInput: Hashable, Codable, Sendable {
    /// How an input entered: a differentiated argument, or a value captured as a constant.
    public enum Role: String, Codable, Sendable { case argument, capture }
    public var id: ValueID
    public var type: ValueType
    public var role: Role

    public init(id: ValueID, type: ValueType, role: Role) {
        self.id = id
        self.type = type
        self.role = role
    }
}

/// A program as plain data (JAX's jaxpr): inputs, equations in execution order, outputs.
///
/// A graph is a value: it can be compared, printed (``Graph/description``), checked
/// (`Graph.verify()`) and serialized (``GraphCodec``).
public struct Graph: Hashable, Codable, Sendable {
    public var inputs: [GraphInput]
    public var nodes: [Node]
    public var outputs: [ValueID]

    public init(inputs: [GraphInput] = [], nodes: [Node] = [], outputs: [ValueID] = []) {
        self.inputs = inputs
        self.nodes = nodes
        self.outputs = outputs
    }
}
