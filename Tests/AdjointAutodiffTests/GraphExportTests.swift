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
}
