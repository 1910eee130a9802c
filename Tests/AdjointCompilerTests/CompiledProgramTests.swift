import Adjoint
import AdjointTestSupport
import Dispatch
import Synchronization
import Testing

/// ``CompiledProgram`` against the interpreter (``GraphBundle/execute(_:)``), on traced graphs.
@Suite("Compiled programs")
struct CompiledProgramTests {
    struct Case: CustomStringConvertible, Sendable {
        let description: String
        let shapes: [[Int]]
        var dtype: DType = .float64
        /// Expected operators through temporary tensors (nil: do not check).
        var fallbacks: Int? = 0
        let body: @Sendable ([Tensor]) throws -> [Tensor]

        func arguments(seed: UInt64) throws -> [Tensor] {
            try shapes.enumerated().map { i, shape in
                try Tensor.uniform(shape, key: RandomKey(seed: seed, stream: UInt64(i)), low: 0.25, high: 1.75, dtype: dtype)
            }
        }
    }

    static let unary: @Sendable ([Tensor]) throws -> [Tensor] = { a in
        let x = a[0]
        return try [x.neg(), x.abs(), (x - 1).sign(), x.exp(), x.expm1(), x.log(), x.log1p(), x.sqrt(), x.rsqrt(), x.sin(), x.cos(),
                    x.tanh(), (x - 1).sigmoid(), (x - 1).relu(), (x - 1).softplus()]
    }

    /// The unary operators and the branching binary ones, for arrays long enough that native
    /// code runs them in vector loops (plain runs up to 4,096 elements, chunked beyond).
    static let long: @Sendable ([Tensor]) throws -> [Tensor] = { a in
        let (x, y) = (a[0], a[1])
        return try unary([x]) + [x.relu(), x.maximum(y), x.minimum(y), x + y, x * y, y / x, try Tensor.select(x.less(y), x, y)]
    }

    static let cases: [Case] = [
        Case(description: "every elementwise operator, f64", shapes: [[5]], body: unary),
        Case(description: "every elementwise operator, f32", shapes: [[5]], dtype: .float32, body: unary),
        Case(description: "elementwise operators over long arrays, f64", shapes: [[1003], [1003]], fallbacks: nil, body: long),
        Case(description: "elementwise operators over long arrays, f32", shapes: [[1003], [1003]], dtype: .float32, fallbacks: nil, body: long),
        Case(description: "elementwise operators over arrays run in chunks, f32", shapes: [[9001], [9001]], dtype: .float32, fallbacks: nil, body: long),
        Case(description: "binary operators with broadcasting and scalars", shapes: [[3, 1], [1, 4], [4], []]) { a in
            let (x, y, z, s) = (a[0], a[1], a[2], a[3])
            return try [x + y, x - z, x * y, y / x, x.pow(y), x.maximum(y), x.minimum(z), x * s, s - y, (x + y) / s, s * s]
        },
        Case(description: "multiply-add, flat and broadcast", shapes: [[3, 4], [3, 4], [4], [3, 1]], dtype: .float32) { a in
            try [a[0].multiplied(by: a[1], adding: a[0]), a[0].multiplied(by: a[2], adding: a[3])]
        },
        Case(description: "reductions over runs of axes", shapes: [[2, 3, 4], [100, 3]], fallbacks: 1) { a in
            let (x, w) = (a[0], a[1])
            return try [x.sum(axes: [1]), x.sum(axes: [0, 1]), x.sum(), x.mean(axes: [2], keepDims: true), x.max(axes: [1]), x.min(),
                        x.logsumexp(axes: [2]), w.sum(axes: [0]), w.mean(axes: [1]),
                        x.sum(axes: [0, 2])]   // not a run: through a temporary tensor
        },
        Case(description: "layout operators: aliases and gathers", shapes: [[2, 3, 4], [2, 5, 4]]) { a in
            let (x, y) = (a[0], a[1])
            return try [x.transposed([2, 0, 1]), x.reshaped([6, 4]) * 2, x.slice([0..<1]) + 1, x.slice([0..<2, 1..<3, 1..<4]),
                        x.padded(low: [0, 1, 2], high: [1, 0, 0], value: 1.5), Tensor.concat([x, y], axis: 1),
                        Tensor.stack([x, x * 3], axis: 1), x.broadcast(to: [5, 2, 3, 4]), x.reshaped([24]).slice([4..<10])]
        },
        Case(description: "matmul, and operators run through temporary tensors", shapes: [[3, 4], [4, 2], [3, 4]], fallbacks: 3) { a in
            let (x, w, y) = (a[0], a[1], a[2])
            return try [x.matmul(w), x.matmul(y, transposeOther: true), Tensor.stack([x, y]).matmul(w),
                        Tensor.select(x.less(y), x, y), x.cast(to: .float32)]
        },
        Case(description: "a traced gradient (forward and backward fused)", shapes: [[4, 3], [3, 5], [5]]) { a in
            let (x, w, b) = (a[0], a[1], a[2])
            let (_, pullback) = try vjp(at: [w, b]) { p in try ((x.matmul(p[0]) + p[1]).tanh() * 2 - 1).softplus().mean() }
            return try pullback(try Tensor.full([], 1))
        },
    ]

    /// The graph's nodes that do not read argument `index` (directly or through other nodes), and
    /// those that do, each in graph order.
    static func split(_ bundle: GraphBundle, readingArgument index: Int) -> (independent: [Int], dependent: [Int]) {
        var reached: Set<ValueID> = [bundle.graph.inputs.filter { $0.role == .argument }[index].id]
        var independent: [Int] = [], dependent: [Int] = []
        for (i, node) in bundle.graph.nodes.enumerated() {
            if node.inputs.contains(where: reached.contains) { reached.formUnion(node.outputs); dependent.append(i) } else { independent.append(i) }
        }
        return (independent, dependent)
    }

    @Test("a compiled program gives the interpreter's outputs bitwise", arguments: cases)
    func matchesInterpreter(_ c: Case) throws {
        let (bundle, traced) = try traceGraph(c.body, at: try c.arguments(seed: 1))
        let program = try bundle.compiled()
        if let fallbacks = c.fallbacks { #expect(program.statistics.fallbacks == fallbacks, "\(program.statistics)") }
        #expect(zip(try program(try c.arguments(seed: 1)), traced).allSatisfy(bitwiseEqual))
        let other = try c.arguments(seed: 2)
        #expect(zip(try program(other), try bundle.execute(other)).allSatisfy(bitwiseEqual))
    }

    @Test("layout operators that copy a contiguous run become aliases; the frame is smaller than the values")
    func aliasesAndReuse() throws {
        let (bundle, _) = try traceGraph({ a in
            var x = a[0]
            for _ in 0..<20 { x = try (x * 1.5).reshaped([2, 8]).reshaped([16]).slice([0..<16]).tanh() }
            return [x]
        }, at: [try Tensor.zeros([16])])
        let program = try bundle.compiled()
        #expect(program.statistics.aliases == 60 && program.statistics.gathers == 0 && program.statistics.fallbacks == 0, "\(program.statistics)")
        // 20 scalar captures (64 bytes each), the argument, and two of the 40 computed values live at once.
        #expect(program.statistics.frameBytes == 20 * 64 + 128 + 2 * 128, "\(program.statistics)")
    }

    @Test("a gather read once by a binary operator is folded into it, under every numeric policy")
    func foldedGathers() throws {
        let x = try Tensor.uniform([3, 4], key: RandomKey(seed: 8), low: -1, high: 1, dtype: .float32)
        let y = try Tensor.uniform([4, 6], key: RandomKey(seed: 9), low: -1, high: 1, dtype: .float32)
        let (bundle, _) = try traceGraph({ a in
            let (x, y) = (a[0], a[1])
            let shared = try x.transposed()
            return [try x.padded(low: [1, 1], high: [0, 1]) + y,             // folded (zero padding)
                    try x.transposed() * y.slice([0..<4, 0..<3]),            // both operands folded
                    try x.padded(low: [1, 0], high: [0, 2], value: 1.5) - y,  // not folded: nonzero padding
                    try shared * 2, try shared.exp()]                        // not folded: two readers
        }, at: [x, y])
        let program = try bundle.compiled()
        #expect(program.statistics.foldedGathers == 3 && program.statistics.gathers == 2 && program.statistics.fallbacks == 0, "\(program.statistics)")
        #expect(zip(try program([x, y]), try bundle.execute([x, y])).allSatisfy(bitwiseEqual))
        let half = try MixedPrecision.with(.bfloat16) { (try program([x, y]), try bundle.execute([x, y])) }
        #expect(zip(half.0, half.1).allSatisfy(bitwiseEqual))
    }

    /// `exp(sin(x)·x)` and its pullback of argument 1, traced at `x` and compiled with a boundary
    /// after the forward part (the operators that do not read the cotangent).
    static func forwardAndBackward(at x: Tensor, native: NativeCode = .off) throws -> (GraphBundle, forward: [Int], CompiledProgram) {
        let (bundle, _) = try traceGraph({ a in
            let (y, pullback) = try vjp(at: a[0]) { x in try (x.sin() * x).exp() }
            return [y, try pullback(a[1])]
        }, at: [x, try Tensor.ones([6], dtype: x.dtype)])
        let (forward, backward) = split(bundle, readingArgument: 1)
        return (bundle, forward, try bundle.compiled(order: forward + backward, boundary: forward.count, native: native))
    }

    @Test("the part after the boundary can be re-run with new arguments and reads the saved values")
    func rerunAfterBoundary() throws {
        let x = try Tensor.uniform([6], key: RandomKey(seed: 3), low: -1, high: 1)
        let (bundle, forward, program) = try Self.forwardAndBackward(at: x)
        let frame = program.makeFrame()
        try program.bind([x], in: frame)
        try program.run(0..<forward.count, in: frame)
        for seed in [try Tensor.ones([6]), try Tensor.uniform([6], key: RandomKey(seed: 4), low: -2, high: 2), try Tensor.zeros([6])] {
            try program.bind([seed], from: 1, in: frame)
            try program.run(forward.count..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(1, in: frame), try bundle.execute([x, seed])[1]))
        }
    }

    @Test("prepared positions run as the positions do, under mixed precision too; another program's are refused", arguments: [NativeCode.off, .required])
    func preparedRuns(_ native: NativeCode) throws {
        let x = try Tensor.uniform([6], key: RandomKey(seed: 23), low: -1, high: 1, dtype: .float32)
        let (bundle, forward, program) = try Self.forwardAndBackward(at: x, native: native)
        let (head, tail) = (try program.prepare(0..<forward.count), try program.prepare(forward.count..<program.positions.upperBound))
        #expect(head.positions == 0..<forward.count)
        func run(_ seed: Tensor, prepared: Bool) throws -> Tensor {
            let frame = program.makeFrame()
            try program.bind([x, seed], in: frame)
            if prepared {
                try program.run(head, in: frame)
                try program.run(tail, in: frame)
            } else {
                try program.run(0..<forward.count, in: frame)
                try program.run(forward.count..<program.positions.upperBound, in: frame)
            }
            return program.output(1, in: frame)
        }
        let seed = try Tensor.uniform([6], key: RandomKey(seed: 24), low: -2, high: 2, dtype: .float32)
        let plain = try run(seed, prepared: true)
        let (unprepared, interpreted) = (try run(seed, prepared: false), try bundle.execute([x, seed])[1])
        #expect(bitwiseEqual(plain, unprepared) && bitwiseEqual(plain, interpreted))
        // Under mixed precision the machine code is not used: the result is the interpreter's under it.
        let half = try MixedPrecision.with(.float16) { try run(seed, prepared: true) }
        let halfInterpreted = try MixedPrecision.with(.float16) { try bundle.execute([x, seed])[1] }
        #expect(bitwiseEqual(half, halfInterpreted) && !bitwiseEqual(half, plain))
        #expect(throws: TensorError.self) { try program.prepare(0..<(program.positions.upperBound + 1)) }
        let other = try bundle.compiled(order: forward + Self.split(bundle, readingArgument: 1).1, boundary: forward.count, native: native)
        #expect(throws: TensorError.invalidArgument(op: "CompiledProgram.run", detail: "the prepared positions belong to another program")) {
            try program.run(try other.prepare(0..<forward.count), in: program.makeFrame())
        }
        #expect(throws: TensorError.invalidArgument(op: "CompiledProgram.run", detail: "the frame belongs to another program")) {
            try program.run(head, in: other.makeFrame())
        }
    }

    @Test("a frame that ran the part before a boundary prepares another by copying its prefix", arguments: [NativeCode.off, .required])
    func copyPrefix(_ native: NativeCode) throws {
        let x = try Tensor.uniform([6], key: RandomKey(seed: 13), low: -1, high: 1)
        let (bundle, forward, program) = try Self.forwardAndBackward(at: x, native: native)
        let source = program.makeFrame()
        try program.bind([x], in: source)
        try program.run(0..<forward.count, in: source)
        let bytes = try program.prefixByteCount(before: forward.count)
        let start = try program.prefixByteCount(before: 0)
        #expect(bytes > 0 && bytes <= program.statistics.frameBytes && start <= bytes)
        for seed in [try Tensor.ones([6]), try Tensor.uniform([6], key: RandomKey(seed: 14), low: -2, high: 2)] {
            let frame = program.makeFrame()   // never ran the forward part
            try program.copyPrefix(before: forward.count, from: source, into: frame)
            try program.bind([seed], from: 1, in: frame)
            try program.run(forward.count..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(1, in: frame), try bundle.execute([x, seed])[1]))
        }
        let other = try bundle.compiled()
        #expect(throws: TensorError.self) { try program.copyPrefix(before: forward.count, from: other.makeFrame(), into: source) }
        #expect(throws: TensorError.self) { try program.copyPrefix(before: program.positions.count + 1, from: source, into: program.makeFrame()) }
    }

    @Test("the bytes a run after a boundary reads, kept from one frame and put back into another, give that run's result",
          arguments: [NativeCode.off, .required])
    func carriedRegions(_ native: NativeCode) throws {
        let x = try Tensor.uniform([6], key: RandomKey(seed: 15), low: -1, high: 1)
        let y = try Tensor.uniform([6], key: RandomKey(seed: 16), low: -1, high: 1)
        let seed = try Tensor.uniform([6], key: RandomKey(seed: 17), low: -2, high: 2)
        let (bundle, forward, program) = try Self.forwardAndBackward(at: x, native: native)
        let regions = try program.carriedRegions(from: 0, across: forward.count, arguments: [0])
        let total = regions.reduce(0) { $0 + $1.bytes }
        #expect(!regions.isEmpty && total < program.statistics.frameBytes)
        #expect(zip(regions, regions.dropFirst()).allSatisfy { $0.offset + $0.bytes < $1.offset }, "sorted, apart: \(regions)")
        #expect(regions.allSatisfy { $0.bytes > 0 && $0.offset >= 0 && $0.offset + $0.bytes <= program.statistics.frameBytes })
        let kept = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 16)
        defer { kept.deallocate() }
        let source = program.makeFrame()
        try program.bind([x], in: source)
        try program.run(0..<forward.count, in: source)
        program.copy(regions, of: source, to: kept)
        // Another frame ran the forward part on other values; with the kept bytes back, the part
        // after the boundary gives `x`'s result, and without them `y`'s.
        for restore in [true, false] {
            let frame = program.makeFrame()
            try program.bind([y], in: frame)
            try program.run(0..<forward.count, in: frame)
            if restore { program.copy(regions, from: kept, into: frame) }
            try program.bind([seed], from: 1, in: frame)
            try program.run(forward.count..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(1, in: frame), try bundle.execute([restore ? x : y, seed])[1]))
        }
        #expect(throws: TensorError.invalidArgument(op: "CompiledProgram.carriedRegions", detail: "1 is not a boundary of this program ([\(forward.count)])")) {
            try program.carriedRegions(from: 0, across: 1, arguments: [])
        }
        #expect(throws: TensorError.self) { try program.carriedRegions(from: forward.count + 1, across: forward.count, arguments: []) }
        #expect(throws: TensorError.invalidArgument(op: "CompiledProgram.carriedRegions", detail: "argument 2 of 2")) {
            try program.carriedRegions(from: 0, across: forward.count, arguments: [2])
        }
        // The backward reads the seed (bound after the boundary) and, for this function, `x` itself.
        #expect(try program.reads(argument: 1, after: forward.count))
        let withoutX = try program.carriedRegions(from: 0, across: forward.count, arguments: []).reduce(0) { $0 + $1.bytes }
        #expect(try program.reads(argument: 0, after: forward.count) == (total == withoutX + 6 * 8), "\(total), \(withoutX)")
        #expect(throws: TensorError.invalidArgument(op: "CompiledProgram.reads", detail: "argument 2 of 2")) { try program.reads(argument: 2, after: forward.count) }
        #expect(throws: TensorError.self) { try program.reads(argument: 0, after: 1) }
    }

    @Test("with two boundaries, the part after either can be re-run; values from before it survive", arguments: [NativeCode.off, .required])
    func twoBoundaries(_ native: NativeCode) throws {
        let x = try Tensor.uniform([5], key: RandomKey(seed: 11), low: -1, high: 1)
        let (bundle, _) = try traceGraph({ a in
            let e = try a[0].exp() * 2
            return [try ((e * a[1] + a[1].sin()) * a[2] + e).tanh()]
        }, at: [x, x, x])
        // Nodes reading neither later argument, those reading argument 1 (not 2), those reading 2.
        let arguments = bundle.graph.inputs.filter { $0.role == .argument }.map(\.id)
        var second: Set<ValueID> = [arguments[1]], third: Set<ValueID> = [arguments[2]]
        var parts: [[Int]] = [[], [], []]
        for (i, node) in bundle.graph.nodes.enumerated() {
            if node.inputs.contains(where: third.contains) { third.formUnion(node.outputs); parts[2].append(i) }
            else if node.inputs.contains(where: second.contains) { second.formUnion(node.outputs); third.formUnion(node.outputs); parts[1].append(i) }
            else { parts[0].append(i) }
        }
        #expect(parts.allSatisfy { !$0.isEmpty })
        let program = try CompiledProgram(bundle.graph, captures: bundle.captures, order: parts.flatMap { $0 },
                                          boundaries: [parts[0].count, parts[0].count + parts[1].count], native: native)
        let frame = program.makeFrame()
        var values = [x, try x * 3, try x - 1]
        try program.bind(values, in: frame)
        try program.run(program.positions, in: frame)
        #expect(bitwiseEqual(program.output(0, in: frame), try bundle.execute(values)[0]))
        for round in 0..<3 {
            let b = round % 2 == 0 ? 1 : 2, start = b == 1 ? parts[0].count : parts[0].count + parts[1].count
            values[b] = try Tensor.uniform([5], key: RandomKey(seed: UInt64(20 + round)), low: -2, high: 2)
            try program.bind([values[b]], from: b, in: frame)
            try program.run(start..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(0, in: frame), try bundle.execute(values)[0]), "round \(round)")
        }
    }

    @Test("outputs that are arguments, empty values, and concurrent runs on separate frames")
    func edgeCases() throws {
        let x = try Tensor.uniform([2, 3], key: RandomKey(seed: 6), low: -1, high: 1)
        let empty = try Tensor.zeros([0, 3])
        let (bundle, _) = try traceGraph({ a in
            [a[0], try a[0].exp(), try a[1] * 2, try a[1].sum(axes: [0]), try Tensor.concat([a[1], a[0]], axis: 0).transposed()]
        }, at: [x, empty])
        let program = try bundle.compiled()
        let expected = try bundle.execute([x, empty])
        #expect(zip(try program([x, empty]), expected).allSatisfy(bitwiseEqual))
        let results = Lock<[[Tensor]]>([])
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<50 { if let out = try? program([x, empty]) { results.withLock { $0.append(out) } } }
        }
        let all = results.withLock { $0 }
        #expect(all.count == 400 && all.allSatisfy { zip($0, expected).allSatisfy(bitwiseEqual) })
    }

    @Test("packed binding and reading: arguments and outputs back to back in one call")
    func packedBinding() throws {
        let (bundle, _) = try traceGraph({ a in [try a[0] * 2, try a[1] + 1, try a[0].sum()] }, at: [try Tensor.zeros([3]), try Tensor.zeros([2])])
        let program = try bundle.compiled()
        let frame = program.makeFrame()
        let packed: [Double] = [1, 2, 3, 10, 20]
        try packed.withUnsafeBytes { try program.bind(packed: $0.baseAddress!, count: 40, arguments: 0..<2, in: frame) }
        try program.run(program.positions, in: frame)
        var out = [Double](repeating: 0, count: 6)
        out.withUnsafeMutableBytes { program.copyOutputs(0..<3, packedTo: $0.baseAddress!, in: frame) }
        #expect(out == [2, 4, 6, 11, 21, 6])
    }

    @Test("wrong arguments are typed errors naming the argument")
    func badArguments() throws {
        let (bundle, _) = try traceGraph({ a in [try a[0] * 2] }, at: [try Tensor.zeros([3])])
        let program = try bundle.compiled()
        #expect(program.argumentTypes == [ValueType(dtype: .float64, shape: [3])] && program.outputTypes == program.argumentTypes)
        #expect { _ = try program([try Tensor.zeros([4])]) } throws: { "\($0)".contains("argument 0 was compiled as f64[3], got f64[4]") }
        #expect { _ = try program([try Tensor.zeros([3], dtype: .float32)]) } throws: { "\($0)".contains("argument 0") }
        #expect { try program.bind([try Tensor.zeros([3]), try Tensor.zeros([3])], in: program.makeFrame()) } throws: { "\($0)".contains("arguments 0..<2 of a program with 1") }
        #expect { _ = try program([]) } throws: { "\($0)".contains("called with 0 arguments; the program takes 1") }
        #expect { _ = try bundle.compiled(order: [0, 0, 5]) } throws: { "\($0)".contains("names node 5") }
        #expect { _ = try bundle.compiled(boundary: 7) } throws: { "\($0)".contains("boundary 7 outside 0...") }
        #expect { _ = try CompiledProgram(bundle.graph, captures: bundle.captures, order: nil, boundaries: [0, -1]) } throws: {
            "\($0)".contains("boundary -1 outside")
        }
        let frame = program.makeFrame()
        #expect { try [0.0, 1.0].withUnsafeBytes { try program.bind(bytes: $0.baseAddress!, count: 16, at: 0, in: frame) } } throws: {
            "\($0)".contains("16 bytes for argument 0") && "\($0)".contains("f64[3]")
        }
        #expect { try [0.0, 1.0].withUnsafeBytes { try program.bind(packed: $0.baseAddress!, count: 16, arguments: 0..<1, in: frame) } } throws: {
            "\($0)".contains("16 bytes for arguments 0..<1, which take 24")
        }
        #expect { try [0.0].withUnsafeBytes { try program.bind(packed: $0.baseAddress!, count: 8, arguments: 0..<2, in: frame) } } throws: {
            "\($0)".contains("arguments 0..<2 of a program with 1")
        }
        let other = try bundle.compiled()
        #expect { try program.run(program.positions, in: other.makeFrame()) } throws: { "\($0)".contains("another program") }
        #expect { try program.run(0..<5, in: program.makeFrame()) } throws: { "\($0)".contains("outside") }
    }

    @Test("mixed precision and the float64 debug policy reach the compiled arithmetic")
    func numericPolicies() throws {
        let x = try Tensor.uniform([64], key: RandomKey(seed: 5), low: 0, high: 3, dtype: .float32)
        let (bundle, _) = try traceGraph({ a in [try (a[0].exp() * 1.001).sum()] }, at: [x])
        let program = try bundle.compiled()
        let plain = try program([x])[0]
        let halfCompiled = try MixedPrecision.with(.float16) { try program([x])[0] }
        let halfInterpreted = try MixedPrecision.with(.float16) { try bundle.execute([x])[0] }
        #expect(bitwiseEqual(halfCompiled, halfInterpreted) && !bitwiseEqual(halfCompiled, plain))
        let debugCompiled = try ExecutionPolicy.with(ExecutionPolicy(determinism: .strict, float64Debug: true)) { try program([x])[0] }
        let debugInterpreted = try ExecutionPolicy.with(ExecutionPolicy(determinism: .strict, float64Debug: true)) { try bundle.execute([x])[0] }
        #expect(bitwiseEqual(debugCompiled, debugInterpreted) && !bitwiseEqual(debugCompiled, plain))
    }
}
