import AdjointIR
import Foundation
import Testing

@Suite("Operator IR")
struct GraphTests {
    static let sample = Graph(
        inputs: [GraphInput(id: ValueID(0), type: ValueType(dtype: .float64, shape: [2, 3]), role: .argument),
                 GraphInput(id: ValueID(1), type: ValueType(dtype: .float64, shape: [3]), role: .capture)],
        nodes: [Node(op: .add, inputs: [ValueID(0), ValueID(1)], outputs: [ValueID(2)],
                     outputTypes: [ValueType(dtype: .float64, shape: [2, 3])]),
                Node(op: .sum, attributes: .reduction(axes: [1], keepDims: false), inputs: [ValueID(2)], outputs: [ValueID(3)],
                     outputTypes: [ValueType(dtype: .float64, shape: [2])])],
        outputs: [ValueID(3)])

    @Test("op codes have unique, stable, family-prefixed identifiers")
    func opCodes() {
        let ids = OpCode.allCases.map(\.rawValue)
        #expect(Set(ids).count == ids.count)
        for op in OpCode.allCases {
            let prefix = op.rawValue.split(separator: ".").first.map(String.init) ?? ""
            #expect(!prefix.isEmpty && op.rawValue.count > prefix.count + 1)
        }
        #expect(OpCode(rawValue: "elementwise.exp") == .exp)
        // caseIndex (used for in-memory tables) is the position in allCases.
        for (i, op) in OpCode.allCases.enumerated() { #expect(op.caseIndex == i) }
        #expect(MemoryLayout<OpCode>.size == 1)
        #expect(OpCode.exp.family == .unary && OpCode.select.arity == 3 && OpCode.concat.arity == nil)
    }

    @Test("printer shows one equation a line")
    func printer() {
        #expect(Self.sample.description == """
            graph(%0: f64[2,3] arg, %1: f64[3] capture) {
              %2 = binary.add(%0, %1) : f64[2,3]
              %3 = reduction.sum(%2) {axes=[1], keepDims=false} : f64[2]
              return %3
            }
            """)
    }

    @Test("verifier accepts well-formed graphs and names the first problem")
    func verifier() throws {
        try Self.sample.verify()
        var undefined = Self.sample
        undefined.nodes[0].inputs[1] = ValueID(9)
        #expect(throws: IRError.undefinedValue(ValueID(9), node: 0, op: .add)) { try undefined.verify() }
        var arity = Self.sample
        arity.nodes[1].inputs.append(ValueID(0))
        #expect(throws: IRError.arityMismatch(op: .sum, node: 1, expected: 1, found: 2)) { try arity.verify() }
        var twice = Self.sample
        twice.nodes[1].outputs = [ValueID(2)]
        #expect(throws: IRError.redefinedValue(ValueID(2), node: 1)) { try twice.verify() }
        var output = Self.sample
        output.outputs = [ValueID(7)]
        #expect(throws: IRError.undefinedOutput(ValueID(7))) { try output.verify() }
    }

    @Test("codec round-trips and rejects damaged or newer files")
    func codec() throws {
        let data = try GraphCodec.encode(Self.sample)
        #expect(try GraphCodec.decode(data) == Self.sample)
        #expect(try GraphCodec.encode(try GraphCodec.decode(data)) == data)
        #expect(throws: IRError.self) { try GraphCodec.decode(Data("not json".utf8)) }
        #expect(throws: IRError.self) { try GraphCodec.decode(Data(#"{"format":"other","version":1}"#.utf8)) }
        #expect(throws: IRError.unsupportedVersion(found: 99, supported: GraphCodec.currentVersion)) {
            try GraphCodec.decode(Data(#"{"format":"adjoint.graph","version":99}"#.utf8))
        }
        #expect(throws: IRError.self) { try GraphCodec.decode(data.prefix(data.count / 2)) }
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""binary.add""#))   // operators are stored by stable id, not ordinal
    }
}
