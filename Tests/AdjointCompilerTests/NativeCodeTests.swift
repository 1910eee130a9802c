import Adjoint
@testable import AdjointCompiler
import AdjointTestSupport
import Dispatch
import Foundation
import Synchronization
import Testing

/// ``CompiledProgram`` with ``NativeCode``: machine code from the system's C compiler, bitwise the
/// interpreter's results (a NaN is a NaN: its sign can depend on operand order, see
/// ``bitwiseEqualUpToNaN(_:_:)``).
@Suite("Native code for compiled programs")
struct NativeCodeTests {
    /// Values where implementations of the same formula part ways: signed zeros, NaN, infinities,
    /// subnormals, overflow of `exp`, the sigmoid and softplus branches.
    static let edges: [Double] = [-0.0, 0.0, .nan, -.nan, .infinity, -.infinity, Double(bitPattern: 0x0000_0100_0000_0001), -Double.leastNonzeroMagnitude, 1e3, -1e3, 710, -745, 0.5, -2.5, 1, -1, 3e38, 1e-40]

    static func edgeArguments(_ c: CompiledProgramTests.Case, offset: Int) throws -> [Tensor] {
        try c.shapes.enumerated().map { i, shape in
            let n = shape.reduce(1, *)
            let values = (0..<n).map { edges[(($0 + offset) * 7 + i * 3) % edges.count] }
            return try Tensor(values, shape: shape).cast(to: c.dtype)
        }
    }

    /// Output index, element, and both values' bits for each difference.
    static func mismatches(_ a: [Tensor], _ b: [Tensor], _ arguments: [Tensor]) -> String {
        var found: [String] = []
        for (k, (x, y)) in zip(a, b).enumerated() where !bitwiseEqual(x, y) {
            let (u, v) = ((try? x.cast(to: .float64).doubles) ?? [], (try? y.cast(to: .float64).doubles) ?? [])
            for i in u.indices where u[i].bitPattern != v[i].bitPattern && !(u[i].isNaN && v[i].isNaN) {
                found.append("output \(k)[\(i)]: \(u[i]) (\(String(u[i].bitPattern, radix: 16))) vs \(v[i]) (\(String(v[i].bitPattern, radix: 16)))")
            }
        }
        return found.joined(separator: "; ") + " for \(arguments)"
    }

    static func cacheDirectory() -> String {
        NSTemporaryDirectory() + "adjoint-native-test-\(UUID().uuidString)"
    }

    @Test("every operator family compiles and matches the interpreter bitwise, on edge values too",
          arguments: CompiledProgramTests.cases)
    func matchesInterpreter(_ c: CompiledProgramTests.Case) throws {
        let (bundle, _) = try traceGraph(c.body, at: try c.arguments(seed: 1))
        let program = try bundle.compiled(native: .required)
        let interpreted = try bundle.compiled()
        #expect(program.statistics.nativeInstructions > 0, "\(program.statistics)")
        #expect(program.statistics.fallbacks == interpreted.statistics.fallbacks)
        for arguments in [try c.arguments(seed: 1), try c.arguments(seed: 2), try Self.edgeArguments(c, offset: 0), try Self.edgeArguments(c, offset: 5)] {
            let native = try program(arguments), expected = try bundle.execute(arguments)
            #expect(zip(native, expected).allSatisfy(bitwiseEqualUpToNaN), "\(c): \(Self.mismatches(native, expected, arguments))")
            #expect(zip(try interpreted(arguments), expected).allSatisfy(bitwiseEqual))
        }
    }

    @Test("large elementwise chains run fused in chunks over threads: the interpreter's bits with 1, 2 and 3 threads",
          arguments: [DType.float64, .float32])
    func chunkedRuns(dtype: DType) throws {
        let n = 3 * Parallelism.elementChunk + 123   // not a multiple of the chunk
        let arguments = [try Tensor.uniform([n], key: RandomKey(seed: 1), low: -3, high: 3, dtype: dtype),
                         try Tensor.uniform([n], key: RandomKey(seed: 2), low: -3, high: 3, dtype: dtype),
                         try Tensor.uniform([1], key: RandomKey(seed: 3), low: 0.5, high: 1.5, dtype: dtype)]
        // A chain with values reused and dying (their slots taken by later values), scalars read
        // throughout, a multiply-add, and a gradient (forward and backward in one program).
        let body: ([Tensor]) throws -> [Tensor] = { a in
            let (x, y, s) = (a[0], a[1], a[2])
            let u = try (x * s + y).tanh()
            let v = try u * u - x.sigmoid() * s
            let w = try v.multiplied(by: y, adding: u)
            let (_, pullback) = try vjp(at: [x, s]) { p in try ((p[0] * p[1]).sin() * y + p[0].exp()).softplus() }
            let g = try pullback(try x.onesLike())
            return [w, try (w / (s + 1)).relu() + v, g[0]]
        }
        let (bundle, _) = try traceGraph(body, at: arguments)
        let program = try bundle.compiled(native: .required)
        #expect(program.statistics.chunkedInstructions >= 8, "\(program.statistics)")
        let expected = try bundle.execute(arguments)
        for threads in [1, 2, 3] {
            let native = try Parallelism.withThreadCount(threads) { try program(arguments) }
            #expect(zip(native, expected).allSatisfy(bitwiseEqualUpToNaN), "\(threads) threads")
        }
        // Sizes at the limit stay in plain runs (or interpreted); one past it is chunked.
        let limit = try traceGraph({ a in [try (a[0] * 2).exp()] }, at: [try Tensor.zeros([4096])]).bundle.compiled(native: .required)
        let past = try traceGraph({ a in [try (a[0] * 2).exp()] }, at: [try Tensor.zeros([4097])]).bundle.compiled(native: .required)
        #expect(limit.statistics.chunkedInstructions == 0 && past.statistics.chunkedInstructions == 2)
    }

    @Test("slices, shifts, one-dimensional pads and concatenations join chunked runs (the heat equation's step and gradient): the interpreter's bits with 1, 2 and 3 threads",
          arguments: [DType.float64, .float32])
    func chunkedTableReads(dtype: DType) throws {
        let n = 2 * Parallelism.elementChunk + 77   // not a multiple of the chunk
        let arguments = [try Tensor.uniform([n], key: RandomKey(seed: 4), low: -2, high: 2, dtype: dtype),
                         try Tensor.uniform([2], key: RandomKey(seed: 5), low: 0.1, high: 0.4, dtype: dtype)]
        func step(_ s: Tensor, _ p: Tensor) throws -> Tensor {
            let zero = try Tensor.zeros([1], dtype: dtype)
            let left = try Tensor.concat([zero, s.slice([0..<(n - 1)])])
            let right = try Tensor.concat([s.slice([1..<n]), zero])
            return try s + p.slice([0..<1]) * (left + right - s * 2) + p.slice([1..<2]) * s.tanh()
        }
        let body: ([Tensor]) throws -> [Tensor] = { a in
            let (value, pullback) = try vjp(at: [a[0], a[1]]) { q in try step(q[0], q[1]) }
            let g = try pullback(value)
            // A pad with a value other than zero (a gather of its own) and a shifted slice.
            let padded = try a[0].slice([3..<n]).padded(low: [1], high: [2], value: 0.5)
            // Two reads of disjoint elements (no element where both read their arrays).
            let m = n / 3
            let halves = try a[0].slice([0..<m]).padded(low: [0], high: [n - m]) + (a[0] * 3).slice([m..<n]).padded(low: [m], high: [0])
            return [value, g[0], g[1], try padded * a[0], try halves.tanh() * a[0]]
        }
        let (bundle, _) = try traceGraph(body, at: arguments)
        let program = try bundle.compiled(native: .required)
        // 23 of the 26 instructions (the rest: reductions and two-element steps); 19 when table
        // reads could not join.
        #expect(program.statistics.chunkedInstructions >= 23, "\(program.statistics)")
        let expected = try bundle.execute(arguments)
        for threads in [1, 2, 3] {
            let native = try Parallelism.withThreadCount(threads) { try program(arguments) }
            #expect(zip(native, expected).allSatisfy(bitwiseEqualUpToNaN), "\(threads) threads")
        }
    }

    @Test("the compiler flags keep IEEE arithmetic: no fast-math, no contraction, no fused multiply-adds; AVX2 exactly where the processor has it")
    func compilerFlags() throws {
        let flags = NativeCompiler.flags
        #expect(flags.contains("-ffp-contract=off") && flags.contains("-fno-fast-math"))
        #expect(!flags.contains { $0.hasPrefix("-march") || $0 == "-mfma" || $0 == "-ffast-math" || $0.hasPrefix("-Ofast") })
        #if arch(x86_64)
        let info = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        let avx2 = info.split(separator: "\n").first { $0.hasPrefix("flags") }.map { $0.split(separator: " ").contains("avx2") } ?? false
        #expect(flags.contains("-mavx2") == avx2)
        #else
        #expect(!flags.contains("-mavx2"))
        #endif
    }

    @Test("index tables that are one run or one element, with zeros or one element repeated around it, are affine reads; others are not")
    func affineReads() {
        typealias G = NativeCodeGenerator
        func read(_ table: [Int]) -> G.AffineRead? { G(instructions: [], tables: table).affine(0, table.count) }
        #expect(read([-1, 5, 6, 7]) == G.AffineRead(lo: 1, hi: 4, first: 5, stride: 1))
        #expect(read([2, 3, -1]) == G.AffineRead(lo: 0, hi: 2, first: 2, stride: 1))
        #expect(read([-1, 9, -1]) == G.AffineRead(lo: 1, hi: 2, first: 9, stride: 1))
        #expect(read([3, 3, 3]) == G.AffineRead(lo: 0, hi: 3, first: 3, stride: 0))
        #expect(read([-1, -1]) == G.AffineRead(lo: 0, hi: 0, first: 0, stride: 1))
        // A constant element (a captured zero) before or after the run, repeated or not.
        #expect(read([100, 10, 11, 12]) == G.AffineRead(lo: 1, hi: 4, first: 10, stride: 1, before: 100))
        #expect(read([11, 12, 13, 100, 100]) == G.AffineRead(lo: 0, hi: 3, first: 11, stride: 1, after: 100))
        #expect(read([7, 7, 10, 11, -1]) == G.AffineRead(lo: 2, hi: 4, first: 10, stride: 1, before: 7))
        #expect(read([1, 2, -1, 4]) == nil && read([1, 3, 5, 7]) == nil && read([5, 1, 2, 9, 9, 3]) == nil)
        // A run whose reads are shifted against what it wrote earlier stops there.
        var first = FrameInstruction(kind: .binary, op: .add, float64: true)
        (first.y, first.a, first.b, first.n) = (0, 40_000, 80_000, 5000)
        var shifted = FrameInstruction(kind: .binary, op: .add, float64: true)
        shifted.n = 5000
        shifted.y = 120_000
        shifted.table = 0
        let table = [-1] + Array(0..<4999) + Array(5000..<10_000).map { $0 + 5000 }   // frame[k − 1] (zero first) and a plain operand
        #expect(G(instructions: [first, shifted], tables: table).chunkedSegments(splits: []) == [0..<1, 1..<2])
        // Reading shifted what the run does not write: one run.
        let elsewhere = [-1] + Array(20_000..<24_999) + Array(5000..<10_000).map { $0 + 5000 }
        #expect(G(instructions: [first, shifted], tables: elsewhere).chunkedSegments(splits: []) == [0..<2])
    }

    @Test("a chunked run stops where its regions would overlap other than element for element")
    func chunkedRunRegions() {
        typealias G = NativeCodeGenerator
        func add(y: Int, a: Int, b: Int, n: Int = 5000, bScalar: Bool = false) -> FrameInstruction {
            var i = FrameInstruction(kind: .binary, op: .add, float64: true)
            (i.y, i.a, i.b, i.n, i.bScalar) = (y, a, b, n, bScalar)
            return i
        }
        let bytes = 5000 * 8
        // Chained element for element (in place included): one run.
        #expect(G(instructions: [add(y: 0, a: bytes, b: 2 * bytes), add(y: 0, a: 0, b: bytes)], tables: []).chunkedSegments(splits: []) == [0..<2])
        // The second writes over the first's input shifted by one element: two runs.
        #expect(G(instructions: [add(y: 0, a: bytes, b: 2 * bytes), add(y: bytes + 8, a: 0, b: 0)], tables: []).chunkedSegments(splits: []) == [0..<1, 1..<2])
        // The second reads throughout an element the first writes: two runs.
        #expect(G(instructions: [add(y: 0, a: bytes, b: 2 * bytes), add(y: 3 * bytes, a: bytes, b: 8, bScalar: true)], tables: [])
            .chunkedSegments(splits: []) == [0..<1, 1..<2])
        // Another size, or a split: two runs; small instructions: none.
        #expect(G(instructions: [add(y: 0, a: bytes, b: 2 * bytes), add(y: 3 * bytes, a: 0, b: 0, n: 6000)], tables: [])
            .chunkedSegments(splits: []) == [0..<1, 1..<2])
        #expect(G(instructions: [add(y: 0, a: bytes, b: 2 * bytes), add(y: 0, a: 0, b: bytes)], tables: []).chunkedSegments(splits: [1]) == [0..<1, 1..<2])
        #expect(G(instructions: [add(y: 0, a: 800, b: 1600, n: 100)], tables: []).chunkedSegments(splits: []).isEmpty)
    }

    @Test("long operands: index tables as arrays, pairwise sums over more than 64 elements, strided reductions")
    func longOperands() throws {
        for dtype in [DType.float64, .float32] {
            let x = try Tensor.uniform([8, 1], key: RandomKey(seed: 1), low: -2, high: 2, dtype: dtype)
            let y = try Tensor.uniform([1, 40], key: RandomKey(seed: 2), low: -2, high: 2, dtype: dtype)
            let w = try Tensor.uniform([3, 300], key: RandomKey(seed: 3), low: -2, high: 2, dtype: dtype)
            let (bundle, _) = try traceGraph({ a in
                let (x, y, w) = (a[0], a[1], a[2])
                return try [x + y, (x * y).multiplied(by: x, adding: y), w.sum(axes: [1]), w.mean(axes: [1]), w.max(axes: [1]),
                            w.reshaped([30, 30]).sum(axes: [0]), w.reshaped([3, 10, 30]).min(axes: [1]),
                            w.padded(low: [1, 2], high: [0, 1]) * 3, w.transposed().sin(), Tensor.concat([y, y], axis: 1).tanh()]
            }, at: [x, y, w])
            let program = try bundle.compiled(native: .required)
            #expect(program.statistics.nativeInstructions >= 10 && program.statistics.fallbacks == 0, "\(program.statistics)")
            #expect(zip(try program([x, y, w]), try bundle.execute([x, y, w])).allSatisfy(bitwiseEqual), "\(dtype)")
        }
    }

    @Test("the gradient of slices accumulates in place; a sum that may hold -0.0 does not; results stay bitwise",
          arguments: [NativeCode.off, .required])
    func accumulationInPlace(_ native: NativeCode) throws {
        // The backward pass of slicing: each slice's gradient, padded to the whole, added to the total.
        let p = try Tensor.uniform([6], key: RandomKey(seed: 31), low: -1, high: 1)
        let (gradient, _) = try traceGraph({ a in
            let (_, pullback) = try vjp(at: a[0]) { p in
                try (p.slice([0..<1]) * p.slice([2..<3]) + p.slice([4..<5]).exp() * p.slice([1..<2]) + p.slice([0..<1]).sin()).sum()
            }
            return [try pullback(a[1])]
        }, at: [p, try Tensor.ones([])])
        let program = try gradient.compiled(native: native)
        #expect(program.statistics.accumulationsInPlace >= 2, "\(program.statistics)")
        let signed = try Tensor([-0.0, 0.5, -0.0, 2, 0, -1.5], shape: [6])
        for (x, seed) in [(p, 1.0), (signed, 1.0), (signed, -0.0), (p, 0.0)] {
            let arguments = [x, Tensor(seed)]
            #expect(zip(try program(arguments), try gradient.execute(arguments)).allSatisfy(bitwiseEqual), "seed \(seed)")
        }
        // `x * y` may hold -0.0 (x + 0 would then be +0): added to in a fresh place. `|x|` cannot.
        let (sums, _) = try traceGraph({ a in
            [try a[0] * a[1] + a[2].padded(low: [1], high: [3]), try a[0].abs() + a[2].padded(low: [2], high: [2])]
        }, at: [signed, p, try Tensor.ones([2])])
        let both = try sums.compiled(native: native)
        #expect(both.statistics.accumulationsInPlace == 1 && both.statistics.foldedGathers == 2, "\(both.statistics)")
        let arguments = [signed, try Tensor.ones([6]), try Tensor([-0.0, 3], shape: [2])]
        let (compiled, expected) = (try both(arguments), try sums.execute(arguments))
        #expect(zip(compiled, expected).allSatisfy(bitwiseEqual))
        #expect(compiled[0].doubles[0].sign == .plus && compiled[0].doubles[2].sign == .plus, "-0 · 1 + 0 is +0")
    }

    @Test("a program split at a boundary re-runs its native backward part; concurrent frames")
    func boundaryAndConcurrency() throws {
        let x = try Tensor.uniform([6], key: RandomKey(seed: 3), low: -1, high: 1)
        let (bundle, _) = try traceGraph({ a in
            let (y, pullback) = try vjp(at: a[0]) { x in try (x.sin() * x).exp().sigmoid() }
            return [y, try pullback(a[1])]
        }, at: [x, try Tensor.ones([6])])
        let (forward, backward) = CompiledProgramTests.split(bundle, readingArgument: 1)
        let program = try bundle.compiled(order: forward + backward, boundary: forward.count, native: .required)
        #expect(program.statistics.nativeInstructions > 0)
        let frame = program.makeFrame()
        try program.bind([x], in: frame)
        try program.run(0..<forward.count, in: frame)
        for seed in [try Tensor.ones([6]), try Tensor.uniform([6], key: RandomKey(seed: 4), low: -2, high: 2)] {
            try program.bind([seed], from: 1, in: frame)
            try program.run(forward.count..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(1, in: frame), try bundle.execute([x, seed])[1]))
        }
        // Any range of positions runs (instructions outside a whole native run are interpreted).
        let whole = try program([x, try Tensor.ones([6])])
        let piecewise = program.makeFrame()
        try program.bind([x, try Tensor.ones([6])], in: piecewise)
        for p in program.positions { try program.run(p..<(p + 1), in: piecewise) }
        #expect(zip(whole, program.outputTypes.indices.map { program.output($0, in: piecewise) }).allSatisfy(bitwiseEqual))
        let expected = try bundle.execute([x, try Tensor.ones([6])])
        let results = Lock<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<50 where (try? program([x, try Tensor.ones([6])]))?.elementsEqual(expected, by: bitwiseEqual) == true {
                results.withLock { $0 += 1 }
            }
        }
        #expect(results.withLock { $0 } == 400)
    }

    @Test("under mixed precision and float64 debug the native runs step aside for the ordinary kernels")
    func numericPolicies() throws {
        let x = try Tensor.uniform([64], key: RandomKey(seed: 5), low: 0, high: 3, dtype: .float32)
        let (bundle, _) = try traceGraph({ a in [try (a[0].exp() * 1.001).sum()] }, at: [x])
        let program = try bundle.compiled(native: .required)
        #expect(program.statistics.nativeInstructions == 3)
        let half = try MixedPrecision.with(.float16) { (try program([x])[0], try bundle.execute([x])[0]) }
        let plain = try program([x])[0]
        #expect(bitwiseEqual(half.0, half.1) && !bitwiseEqual(half.0, plain))
        let policy = ExecutionPolicy(determinism: .strict, float64Debug: true)
        let debug = try ExecutionPolicy.with(policy) { (try program([x])[0], try bundle.execute([x])[0]) }
        #expect(bitwiseEqual(debug.0, debug.1))
    }

    @Test("a chunked run stores only the results read after it: its temporaries stay in variables, results the same bits")
    func chunkedTemporaries() throws {
        let n = 2 * Parallelism.elementChunk + 5
        let arguments = [try Tensor.uniform([n], key: RandomKey(seed: 8), low: -2, high: 2, dtype: .float32),
                         try Tensor.uniform([n], key: RandomKey(seed: 9), low: -2, high: 2, dtype: .float32)]
        // u, v and w are read only by the run itself; the two outputs are stored.
        let (bundle, _) = try traceGraph({ a in
            let u = try a[0] * 3 + a[1], v = try u.tanh(), w = try v * v
            return [try w - a[0], try (w + v).relu()]
        }, at: arguments)
        let directory = Self.cacheDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let local = NativeCompiler(executable: try NativeCompiler.system().executable, cacheDirectory: directory)
        let program = try bundle.compiled(native: .compiler(local))
        #expect(program.statistics.chunkedInstructions == program.statistics.nativeInstructions && program.statistics.chunkedInstructions >= 6)
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".c") })
        let source = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
        let run = try #require(source.components(separatedBy: "void adjoint_chunked_0(").dropFirst().first)
        #expect(run.components(separatedBy: "[k] = v").count - 1 == 2, "\(run)")
        let expected = try bundle.execute(arguments)
        for threads in [1, 2] {
            let native = try Parallelism.withThreadCount(threads) { try program(arguments) }
            #expect(zip(native, expected).allSatisfy(bitwiseEqualUpToNaN))
        }
    }

    @Test("libraries are cached by content and written whole; compiler failures are typed errors")
    func cacheAndErrors() throws {
        let (bundle, _) = try traceGraph({ a in [try a[0].exp() + 1] }, at: [try Tensor.zeros([3])])
        let directory = Self.cacheDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let compiler = try NativeCompiler.system()
        let local = NativeCompiler(executable: compiler.executable, cacheDirectory: directory)
        let first = try bundle.compiled(native: .compiler(local))
        let files = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(files.count == 2 && files[0].hasSuffix(".c") && files[1] == files[0].dropLast(2) + ".so", "\(files)")
        let source = try String(contentsOfFile: directory + "/" + files[0], encoding: .utf8)
        #expect(source.contains("void adjoint_segment_0(unsigned char *base)") && source.contains("exp("))
        let second = try bundle.compiled(native: .compiler(local))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == files)
        let (a, b) = (try first([try Tensor.ones([3])])[0], try second([try Tensor.ones([3])])[0])
        #expect(bitwiseEqual(a, b))
        let automatic = try bundle.compiled(native: .automatic)
        #expect(first.nativeCodeFailure == nil && automatic.nativeCodeFailure == nil && automatic.statistics.nativeInstructions == 2)

        let failing = NativeCompiler(executable: "/bin/false", cacheDirectory: directory)
        #expect { _ = try bundle.compiled(native: .compiler(failing)) } throws: { error in
            guard case let NativeCodeError.compilationFailed(command, status, _) = error else { return false }
            return command.hasPrefix("/bin/false -O3") && status == 1
        }
        let missing = NativeCompiler(executable: "/nonexistent/cc", cacheDirectory: directory)
        #expect { _ = try bundle.compiled(native: .compiler(missing)) } throws: { "\($0)".contains("/nonexistent/cc") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == files)   // nothing left behind
        let off = try bundle.compiled(native: .off)
        #expect(off.statistics.nativeInstructions == 0 && off.nativeCodeFailure == nil)
    }
}
