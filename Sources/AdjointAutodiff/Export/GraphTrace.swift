import AdjointTensor
import Foundation
import AdjointIO

/// A traced program with the values of its captured constants: what ``traceGraph(_:at:)``
/// produces, what ``write(to:)`` stores, and what ``execute(_:)`` runs again.
///
/// On disk it is one safetensors file: each capture's value as tensor `"capture.<id>"`, and in the
/// metadata the graph in Adjoint's versioned interchange format (`GraphCodec`) under
/// `adjoint.graph` with `adjoint.graph.checksum` = `crc32c:XXXXXXXX` over the graph text and the
/// capture bytes. A damaged file, a file of a newer version, or a graph that does not verify gets
/// an `IRError`.
public struct GraphBundle {
    public var graph: Graph
    /// The value of every `.capture` input.
    public var captures: [ValueID: Tensor]
    /// When the traced function read a traced value as numbers (`item()`, `doubles`,
    /// `scalars(as:)`): for each read, the number of operators recorded before it. Such a read can
    /// steer control flow, which the graph freezes at the traced values. Empty for a graph read
    /// from a file.
    public var valueReads: [Int] = []

    /// The graph ``checkDeclaredTypes()`` passed for (set by ``decode(_:path:)``); `graph` is
    /// public and may change after, so ``compiled(order:boundary:native:)`` compares the two.
    package private(set) var checkedGraph: Graph?

    public init(graph: Graph, captures: [ValueID: Tensor]) {
        self.graph = graph
        self.captures = captures
    }

    /// Runs the graph on `arguments` (one per `.argument` input, in order) through the dispatch
    /// point — the same kernels as the traced run, so the outputs are bitwise equal to it.
    ///
    /// - Throws: `IRError.corruptFile(_:)`-style errors for a wrong argument count or type, and
    ///   whatever an operator throws.
    public func execute(_ arguments: [Tensor]) throws -> [Tensor] {
        var values: [ValueID: Tensor] = captures
        let argumentInputs = graph.inputs.filter { $0.role == .argument }
        guard argumentInputs.count == arguments.count else {
            throw IRError.corruptFile("the graph takes \(argumentInputs.count) arguments, got \(arguments.count)")
        }
        for (input, value) in zip(argumentInputs, arguments) {
            guard input.type == value.valueType else {
                throw IRError.corruptFile("argument \(input.id) is \(input.type), got \(value.valueType)")
            }
            values[input.id] = value
        }
        for (index, node) in graph.nodes.enumerated() {
            let inputs = try node.inputs.map { id -> Tensor in
                guard let v = values[id] else { throw IRError.corruptFile("value \(id) is used before it is defined") }
                return v
            }
            let output = try dispatch1(node.op, node.attributes, inputs)
            guard node.outputTypes.count == 1, output.valueType == node.outputTypes[0] else {
                throw IRError.declaredTypeMismatch(node: index, op: node.op, declared: node.outputTypes.first ?? ValueType(dtype: output.dtype, shape: []),
                                                   computed: output.valueType)
            }
            values[node.outputs[0]] = output
        }
        return try graph.outputs.map { id in
            guard let v = values[id] else { throw IRError.corruptFile("output \(id) is never defined") }
            return v
        }
    }

    /// Runs the graph once on arguments of its declared types (ones for floating-point types,
    /// zeros otherwise) and checks that every node computes exactly the type it declares: types
    /// read from a file are never trusted.
    ///
    /// - Throws: `IRError.declaredTypeMismatch(node:op:declared:computed:)`, or what an operator
    ///   throws on those arguments.
    public func checkDeclaredTypes() throws {
        let arguments = try graph.inputs.filter { $0.role == .argument }.map { input in
            input.type.dtype.isFloatingPoint ? try Tensor.ones(input.type.shape, dtype: input.type.dtype)
                                             : try Tensor.zeros(input.type.shape, dtype: input.type.dtype)
        }
        _ = try execute(arguments)
    }

    static let graphKey = "adjoint.graph", checksumKey = "adjoint.graph.checksum"

    /// The file's bytes.
    public func encoded() throws -> [UInt8] {
        let text = String(decoding: try GraphCodec.encode(graph), as: UTF8.self)
        var tensors: [String: Tensor] = [:]
        for (id, t) in captures { tensors["capture.\(id.rawValue)"] = t }
        return try SafeTensors.encode(tensors, metadata: [Self.graphKey: text, Self.checksumKey: Self.checksum(text, tensors)])
    }

    /// Parses and verifies a bundle; `path` names it in errors.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> GraphBundle {
        let (tensors, metadata): ([String: Tensor], [String: String])
        do { (tensors, metadata) = try SafeTensors.decode(bytes, path: path) } catch {
            throw IRError.corruptFile("\(path): \(error)")
        }
        guard let text = metadata[graphKey] else { throw IRError.corruptFile("\(path): no '\(graphKey)' metadata; not an exported Adjoint graph") }
        let graph = try GraphCodec.decode(Data(text.utf8))   // version first, then structure
        let computed = checksum(text, tensors)
        guard metadata[checksumKey] == computed else {
            throw IRError.corruptFile("\(path): checksum mismatch (stored \(metadata[checksumKey] ?? "none"), computed \(computed))")
        }
        var captures: [ValueID: Tensor] = [:]
        for input in graph.inputs where input.role == .capture {
            guard let t = tensors["capture.\(input.id.rawValue)"], t.valueType == input.type else {
                throw IRError.corruptFile("\(path): capture \(input.id) is missing or not \(input.type)")
            }
            captures[input.id] = t
        }
        var bundle = GraphBundle(graph: graph, captures: captures)
        do { try bundle.checkDeclaredTypes() } catch let error as IRError { throw error } catch {
            throw IRError.corruptFile("\(path): running the graph once to check its declared types failed: \(error)")
        }
        bundle.checkedGraph = graph
        return bundle
    }

    public func write(to path: String) throws { try AtomicFile.write(encoded(), to: path) }
    public static func read(_ path: String) throws -> GraphBundle { try decode(AtomicFile.read(path), path: path) }

    static func checksum(_ text: String, _ tensors: [String: Tensor]) -> String { CRC32C.digest(text: text, tensors: tensors) }
}

/// Runs `f` once on `arguments`, recording every operation that depends on them as an IR graph;
/// tensors it reads that do not depend on the arguments become captures, with their values.
/// Returns the bundle and `f`'s outputs. (Operations that depend on no argument are folded into
/// the captures they produce.)
public func traceGraph(_ f: ([Tensor]) throws -> [Tensor], at arguments: [Tensor]) throws -> (bundle: GraphBundle, outputs: [Tensor]) {
    let level = GraphCaptureLevel()
    var tagged = arguments
    var inputs: [GraphInput] = []
    for i in tagged.indices {
        let id = level.newValue()
        tagged[i].traceTags.set(TraceTag(level: level.levelID, id: Int32(id.rawValue)))
        inputs.append(GraphInput(id: id, type: tagged[i].valueType, role: .argument))
    }
    let outputs = try InterpreterStack.current.withLevel(level) { try f(tagged) }
    var graphOutputs: [ValueID] = []
    for output in outputs {
        if let id = output.traceTags.id(at: level.levelID) { graphOutputs.append(ValueID(Int(id))) } else {
            graphOutputs.append(level.capture(output))   // an output that depends on no argument
        }
    }
    let graph = Graph(inputs: inputs + level.captureInputs, nodes: level.nodes, outputs: graphOutputs)
    try graph.verify()
    var bundle = GraphBundle(graph: graph, captures: level.captureValues)
    bundle.valueReads = level.valueReads
    return (bundle, outputs.map(\.untracked))
}

/// The interpreter level behind ``traceGraph(_:at:)``.
final class GraphCaptureLevel: InterpreterLevel {
    let levelID = InterpreterStack.makeLevelID()
    var nodes: [Node] = []
    var captureInputs: [GraphInput] = []
    var captureValues: [ValueID: Tensor] = [:]
    /// Reads of traced values as numbers, each with the number of operators recorded before it.
    var valueReads: [Int] = []
    private var next = 0

    func valueRead(_ tensor: Tensor) {
        if tensor.traceTags.id(at: levelID) != nil { valueReads.append(nodes.count) }
    }

    func newValue() -> ValueID {
        defer { next += 1 }
        return ValueID(next)
    }

    func capture(_ t: Tensor) -> ValueID {
        let id = newValue()
        captureInputs.append(GraphInput(id: id, type: t.valueType, role: .capture))
        captureValues[id] = t.untracked
        return id
    }

    func process(_ call: inout OpCall) throws {
        guard call.inputs.contains(where: { $0.traceTags.id(at: levelID) != nil }) else { return }
        if call.op.isInPlace {
            throw IRError.corruptFile("graph capture does not record in-place \(call.op.rawValue); write the traced function without in-place updates")
        }
        let inputs = call.inputs.map { t -> ValueID in
            if let id = t.traceTags.id(at: levelID) { return ValueID(Int(id)) }
            return capture(t)
        }
        let id = newValue()
        nodes.append(Node(op: call.op, attributes: call.attributes, inputs: inputs, outputs: [id], outputTypes: [call.output.valueType]))
        call.output.traceTags.set(TraceTag(level: levelID, id: Int32(id.rawValue)))
    }
}
