import Adjoint
import AdjointTestSupport
import Dispatch
import Foundation
import Testing

/// ``compile(native:_:)``: a function of tensors traced and compiled once per signature.
@Suite("compile")
struct CompiledFunctionTests {
    static func loss(_ x: Tensor, _ w: Tensor) throws -> Tensor {
        try ((x.matmul(w) + 0.5).tanh() * x.matmul(w).sigmoid()).sum(axes: [1]).softplus().mean()
    }

    static func arguments(_ rows: Int, seed: UInt64 = 1, dtype: DType = .float64) throws -> [Tensor] {
        [try Tensor.uniform([rows, 4], key: RandomKey(seed: seed), low: -1, high: 1, dtype: dtype),
         try Tensor.uniform([4, 3], key: RandomKey(seed: seed, stream: 1), low: -1, high: 1, dtype: dtype)]
    }

    @Test("the program equals the eager function bitwise, interpreted and native", arguments: [NativeCode.off, .automatic])
    func matchesEager(native: NativeCode) throws {
        let f = compile(native: native) { (a: [Tensor]) in [try Self.loss(a[0], a[1]), try (a[0] * 2).exp().sum(axes: [0])] }
        for seed in [1, 2] as [UInt64] {
            let a = try Self.arguments(5, seed: seed)
            let compiled = try f(a), eager = [try Self.loss(a[0], a[1]), try (a[0] * 2).exp().sum(axes: [0])]
            #expect(compiled.count == 2 && zip(compiled, eager).allSatisfy { bitwiseEqual($0, $1) })
        }
        #expect(f.traces == 1)
    }

    @Test("one trace per signature: a new shape or dtype traces again, the same signature hits the cache")
    func signatureCache() throws {
        let f = compile(native: .off) { (x: Tensor) in try (x * x).sum() }
        _ = try f(Tensor([1.0, 2, 3]))
        _ = try f(Tensor([4.0, 5, 6]))
        #expect(f.traces == 1)
        #expect(try f(Tensor([1.0, 2])).item() == 5)
        #expect(f.traces == 2)
        #expect(try f(Tensor([1.0, 2, 3]).cast(to: .float32)).item() == 14)
        #expect(f.traces == 3 && Set(f.signatures.map(\.types)) == Set([[ValueType(dtype: .float64, shape: [3])], [ValueType(dtype: .float64, shape: [2])],
                                                                       [ValueType(dtype: .float32, shape: [3])]]))
        #expect(try f.trace(for: Tensor([0.0, 0, 0])).compileSeconds > 0)
        // Captured tensors and Swift values are frozen at the trace.
        var scale = 2.0
        let g = compile(native: .off) { (x: Tensor) in try x * scale }
        #expect(try g(Tensor([1.0])).doubles == [2])
        scale = 3
        #expect(try g(Tensor([1.0])).doubles == [2])
    }

    @Test("at most maximumSignatures traces are kept; the least recently called is replaced and traced again on return")
    func boundedCache() throws {
        let f = compile(native: .off, maximumSignatures: 2) { (x: Tensor) in try (x * x).sum() }
        func shapes() -> [[Int]] { f.signatures.map { $0.types[0].shape } }
        _ = try f(Tensor([1.0]))
        _ = try f(Tensor([1.0, 2]))
        _ = try f(Tensor([1.0]))             // [1] is now the most recent
        #expect(shapes() == [[2], [1]] && f.traces == 2)
        #expect(try f(Tensor([1.0, 2, 3])).item() == 14)
        #expect(shapes() == [[1], [3]] && f.traces == 3, "[2] was the least recently called")
        #expect(try f(Tensor([3.0, 4])).item() == 25)
        #expect(shapes() == [[3], [2]] && f.traces == 4, "[2] traced again, replacing [1]")
        #expect(compile(native: .off, maximumSignatures: 0) { (x: Tensor) in x }.maximumSignatures == 1)
    }

    @Test("a value read as numbers while tracing is refused, naming where, and nothing is cached")
    func refusesValueReads() throws {
        let f = compile(native: .off) { (x: Tensor) in try x.sum().item() > 0 ? x * 2 : x * 3 }
        #expect(throws: CompileError.valueReadWhileTracing(afterOperators: [1])) { try f(Tensor([1.0, 2])) }
        #expect(f.traces == 0 && f.signatures.isEmpty)
        #expect("\(CompileError.valueReadWhileTracing(afterOperators: [1]))".contains("Tensor.select"))
        // The same branch as data compiles.
        let g = compile(native: .off) { (x: Tensor) in
            let positive = try x.sum().greater(Tensor(0.0)).broadcast(to: x.shape)
            return try Tensor.select(positive, x * 2, x * 3)
        }
        #expect(try g(Tensor([1.0, 2])).doubles == [2, 4] && g(Tensor([-1.0, -2])).doubles == [-3, -6])
    }

    @Test("compile(gradient) and compile(hvp) equal the eager transforms bitwise")
    func compiledTransforms() throws {
        let a = try Self.arguments(6)
        let grad = compile(native: .automatic) { (a: [Tensor]) in try gradient(at: a[1]) { w in try Self.loss(a[0], w) }.tensors }
        #expect(bitwiseEqual(try grad(a)[0], try gradient(at: a[1]) { w in try Self.loss(a[0], w) }))
        let v = try Tensor.uniform([4, 3], key: RandomKey(seed: 9), low: -1, high: 1)
        let second = compile(native: .automatic) { (a: [Tensor]) in [try hvp(at: a[1], direction: a[2]) { w in try Self.loss(a[0], w) }] }
        #expect(bitwiseEqual(try second(a + [v])[0], try hvp(at: a[1], direction: v) { w in try Self.loss(a[0], w) }))
    }

    @Test("compile(vmap), compile(jacobian) and vmap of a compiled function equal the eager transforms bitwise")
    func compiledBatching() throws {
        let a = try Self.arguments(6)
        // Per-example gradients: vmap of gradient over the rows of x, traced as its batched operators.
        func perExample(_ a: [Tensor]) throws -> [Tensor] {
            [try vmap({ row in try gradient(at: a[1]) { w in try Self.loss(row.reshaped([1, 4]), w) } }, over: a[0])]
        }
        let compiled = compile(native: .automatic, perExample)
        #expect(bitwiseEqual(try compiled(a)[0], try perExample(a)[0]))
        #expect(try compiled(a)[0].shape == [6, 4, 3])
        let jac = compile(native: .automatic) { (x: Tensor) in try jacobian(of: { try ($0 * $0).tanh() }, at: x, mode: .reverse) }
        let x = try Tensor.uniform([5], key: RandomKey(seed: 4), low: -1, high: 1)
        #expect(bitwiseEqual(try jac(x), try jacobian(of: { try ($0 * $0).tanh() }, at: x, mode: .reverse)))
        // A compiled per-example function under vmap: its operators are batched like any others.
        let row = compile(native: .automatic) { (r: Tensor) in try (r * r).sum() }
        let sums = try vmap({ try row($0) }, over: a[0])
        #expect(isClose(sums.doubles, try (a[0] * a[0]).sum(axes: [1]).doubles, tolerance: 1e-15))
    }

    @Test("gradient, jvp and a trace of a compiled function see its operators: the same derivatives as of the function itself")
    func transformsOfCompiled() throws {
        let a = try Self.arguments(6)
        let f = compile(native: .automatic) { (a: [Tensor]) in [try Self.loss(a[0], a[1])] }
        _ = try f(a)   // traced and compiled outside any transform first
        let throughCompiled = try gradient(at: a[1]) { w in try f([a[0], w])[0] }
        let direct = try gradient(at: a[1]) { w in try Self.loss(a[0], w) }
        #expect(bitwiseEqual(throughCompiled, direct))
        let v = try Tensor.uniform([4, 3], key: RandomKey(seed: 3), low: -1, high: 1)
        let tangent = try jvp(at: a[1], direction: v) { w in try f([a[0], w])[0] }.tangent
        let directTangent = try jvp(at: a[1], direction: v) { w in try Self.loss(a[0], w) }.tangent
        #expect(bitwiseEqual(tangent, directTangent))
        // First called inside a transform: traced there, and still differentiated.
        let g = compile(native: .off) { (a: [Tensor]) in [try Self.loss(a[0], a[1])] }
        #expect(bitwiseEqual(try gradient(at: a[1]) { w in try g([a[0], w])[0] }, direct) && g.traces == 1)
        // Inside another compiled function.
        let outer = compile(native: .off) { (a: [Tensor]) in [try f(a)[0] * 2] }
        #expect(bitwiseEqual(try outer(a)[0], try Self.loss(a[0], a[1]) * 2))
    }

    struct Layer: ParameterCollection {
        var weight: Tensor, bias: Tensor
        mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("weight", &weight)
            try visit("bias", &bias)
        }
    }

    @Test("parameter collections in and out: the structure is part of the signature and the result keeps its shape")
    func collections() throws {
        let x = try Tensor.uniform([5, 4], key: RandomKey(seed: 4))
        let layer = Layer(weight: try Tensor.uniform([4, 3], key: RandomKey(seed: 5)), bias: try Tensor.uniform([3], key: RandomKey(seed: 6)))
        func loss(_ l: Layer) throws -> Tensor { try (x.matmul(l.weight) + l.bias).tanh().pow(2).mean() }
        let step = compile(native: .automatic) { (l: Layer) in try gradient(at: l, of: loss) }
        let g = try step(layer), eager = try gradient(at: layer, of: loss)
        #expect(bitwiseEqual(g.weight, eager.weight) && bitwiseEqual(g.bias, eager.bias))
        #expect(step.signatures.map(\.names) == [["weight", "bias"]])
        // Dictionaries: the same tensor types under other keys are another signature.
        let sum = compile(native: .off) { (d: [String: Tensor]) in try d.values.reduce(Tensor(0.0)) { try $0 + $1.sum() } }
        let one = Tensor([1.0, 2])
        #expect(try sum(["a": one]).item() == 3 && sum(["b": one]).item() == 3 && sum.traces == 2)
    }

    @Test("threads share the cache and get the function's results")
    func concurrentCalls() throws {
        let f = compile(native: .off) { (x: Tensor) in try (x.sin() * x).sum() }
        let inputs = try (0..<8).map { try Tensor.uniform([3 + $0 % 2], key: RandomKey(seed: UInt64($0))) }
        let expected = try inputs.map { try ($0.sin() * $0).sum() }
        let results = Results(count: inputs.count)
        DispatchQueue.concurrentPerform(iterations: inputs.count) { i in
            results.set(i, (try? f(inputs[i])).map { bitwiseEqual($0, expected[i]) } ?? false)
        }
        #expect(results.all && f.signatures.count == 2)
    }

    final class Results: @unchecked Sendable {
        private var values: [Bool]
        private let lock = NSLock()
        init(count: Int) { values = Array(repeating: false, count: count) }
        func set(_ i: Int, _ value: Bool) { lock.withLock { values[i] = value } }
        var all: Bool { lock.withLock { values.allSatisfy { $0 } } }
    }
}
