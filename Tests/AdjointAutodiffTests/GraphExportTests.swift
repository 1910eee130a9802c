import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Graph export")
struct GraphExportTests {
    static func f(_ a: [Tensor]) throws -> [Tensor] {
        let w = try Tensor.uniform([3, 4], key: RandomKey(seed: 9))   // a captured constant
        let h = try a[0].matmul(w).tanh() + a[1]
        return [try h.logsumexp(axes: [1]), try (h * h).mean()]
    }

    static let arguments = [try! Tensor.uniform([2, 3], key: RandomKey(seed: 1)), try! Tensor.uniform([4], key: RandomKey(seed: 2))]

    @Test("a traced program exports, imports and re-executes bitwise, also on new arguments")
    func roundTrip() throws {
        let (bundle, outputs) = try traceGraph(Self.f, at: Self.arguments)
        let path = (temporaryDirectory("graph") as NSString).appendingPathComponent("f.agraph")
        try bundle.write(to: path)
        let back = try GraphBundle.read(path)
        #expect(back.graph == bundle.graph && back.captures.count == 1)
        #expect(zip(try back.execute(Self.arguments), outputs).allSatisfy(bitwiseEqual))
        let other = [try Tensor.uniform([2, 3], key: RandomKey(seed: 3)), try Tensor.uniform([4], key: RandomKey(seed: 4))]
        #expect(zip(try back.execute(other), try Self.f(other)).allSatisfy(bitwiseEqual))
        #expect(back.graph.description.contains("linalg.matmul"))
        #expect(throws: IRError.self) { try back.execute([Self.arguments[0]]) }
    }

    @Test("corrupt files, foreign files and newer versions are refused with a reason")
    func damage() throws {
        let (bundle, _) = try traceGraph(Self.f, at: Self.arguments)
        var bytes = try bundle.encoded()
        bytes[bytes.count - 2] ^= 0x01   // a capture's bytes
        #expect { try GraphBundle.decode(bytes, path: "g") } throws: { "\($0)".contains("checksum mismatch") }
        #expect(throws: IRError.self) { try GraphBundle.decode(Array(bytes.prefix(40)), path: "g") }
        #expect { try GraphBundle.decode(try SafeTensors.encode(["x": Tensor(1.0)]), path: "g") } throws: { "\($0)".contains("not an exported Adjoint graph") }
        // A newer format version: rewrite the envelope's version.
        let text = String(decoding: try GraphCodec.encode(bundle.graph), as: UTF8.self).replacingOccurrences(of: "\"version\":1", with: "\"version\":99")
        let future = try SafeTensors.encode(["capture.1": bundle.captures.values.first!], metadata: ["adjoint.graph": text, "adjoint.graph.checksum": "x"])
        #expect(throws: IRError.unsupportedVersion(found: 99, supported: 1)) { try GraphBundle.decode(future, path: "g") }
    }

    /// A bundle whose graph is `bundle`'s with `edit` applied, re-encoded with a valid checksum:
    /// what a forger (or a buggy writer) produces.
    static func forged(_ bundle: GraphBundle, _ edit: (inout Graph) -> Void) throws -> [UInt8] {
        var graph = bundle.graph
        edit(&graph)
        return try GraphBundle(graph: graph, captures: bundle.captures).encoded()
    }

    @Test("well-formed files with huge, overflowing or negative shapes are refused before anything is allocated", arguments: [
        [1 << 40, 1 << 40], [Int.max, 2], [1 << 20, 1 << 20, 1 << 4], [-1, 3], [3, -4],
    ])
    func hostileShapes(_ shape: [Int]) throws {
        let (bundle, _) = try traceGraph(Self.f, at: Self.arguments)
        let argument = try Self.forged(bundle) { $0.inputs[0].type.shape = shape }
        #expect { try GraphBundle.decode(argument, path: "g") } throws: { error in
            guard case IRError.valueTooLarge(_, nil, let type, _) = error else { return false }
            return type.shape == shape && "\(error)".contains("limit")
        }
        let output = try Self.forged(bundle) { $0.nodes[0].outputTypes[0].shape = shape }
        #expect { try GraphBundle.decode(output, path: "g") } throws: { error in
            guard case IRError.valueTooLarge(_, 0, _, _) = error else { return false }
            return true
        }
    }

    static func lieAboutNode0(_ graph: inout Graph) { graph.nodes[0].outputTypes[0].shape[0] += 5 }

    @Test("a node whose declared type is not what its operator computes is refused before it is run or compiled")
    func lyingTypes() throws {
        let (bundle, _) = try traceGraph(Self.f, at: Self.arguments)
        for index in bundle.graph.nodes.indices {
            func lie(_ graph: inout Graph) {
                var shape = graph.nodes[index].outputTypes[0].shape
                if shape.isEmpty { shape = [7] } else { shape[0] += 5 }
                graph.nodes[index].outputTypes[0].shape = shape
            }
            #expect("node \(index)") { try GraphBundle.decode(try Self.forged(bundle, lie), path: "g") } throws: { error in
                guard case let IRError.declaredTypeMismatch(node, _, declared, computed) = error else { return false }
                return node == index && declared != computed
            }
            var graph = bundle.graph
            lie(&graph)
            let inMemory = GraphBundle(graph: graph, captures: bundle.captures)
            #expect(throws: IRError.self, "node \(index)") { try inMemory.execute(Self.arguments) }
            #expect(throws: IRError.self, "node \(index)") { try inMemory.compiled() }
        }
        #expect(throws: Never.self) { try bundle.compiled() }
        // A decoded (checked) bundle whose graph is changed afterwards is checked again.
        var decoded = try GraphBundle.decode(try bundle.encoded(), path: "g")
        Self.lieAboutNode0(&decoded.graph)
        #expect(throws: IRError.self) { try decoded.compiled() }
    }
}
