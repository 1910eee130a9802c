import Adjoint
@testable import AdjointCompiler
import AdjointExamples
import AdjointTestSupport
import Foundation
import Testing

/// Fusion across chunked runs by recomputation, bound arguments and outputs, and what `compile`
/// leaves out (values no output needs, arrays of one repeated element).
@Suite("Fusion by recomputation and in-place binding")
struct FusionTests {
    static func rosenbrock(_ x: Tensor) throws -> Tensor { try Rosenbrock.value(x) }

    /// The chunked functions of the only library in `directory`, by name.
    static func chunkedFunctions(in directory: String) throws -> [String] {
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".c") })
        let source = try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
        return source.components(separatedBy: "\nvoid adjoint_chunked_").dropFirst().map { $0 }
    }

    @Test("the gradient and the HVP of a stencil are one pass over their inputs: producers recomputed at shifted elements, nothing else stored; bitwise the eager transforms with 1, 2 and 3 threads",
          arguments: [DType.float64, .float32])
    func stencilGradient(dtype: DType) throws {
        let n = 2 * Parallelism.elementChunk + 77   // not a multiple of the chunk
        let x = try Tensor.uniform([n], key: RandomKey(seed: 21), low: -1, high: 1, dtype: dtype)
        let v = try Tensor.uniform([n], key: RandomKey(seed: 22), low: -1, high: 1, dtype: dtype)
        let bodies: [(String, ([Tensor]) throws -> [Tensor])] = [
            ("gradient", { a in [try gradient(at: a[0], of: Self.rosenbrock)] }),
            ("hvp", { a in [try hvp(at: a[0], direction: a[1], of: Self.rosenbrock)] }),
        ]
        for (name, body) in bodies {
            let directory = NativeCodeTests.cacheDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let local = NativeCompiler(executable: try NativeCompiler.system().executable, cacheDirectory: directory)
            let compiled = compile(native: .compiler(local), body)
            let expected = try body([x, v])
            for threads in [1, 2, 3] {
                let native = try Parallelism.withThreadCount(threads) { try compiled([x, v]) }
                #expect(zip(native, expected).allSatisfy(bitwiseEqual), "\(name), \(threads) threads")
            }
            // Every run but the last computes nothing; the last recomputes what it reads (the
            // interior loop's `r` variables) and stores only the gradient.
            let functions = try Self.chunkedFunctions(in: directory)
            #expect(functions.count >= 2, "\(name)")
            for f in functions.dropLast() { #expect(!f.contains("[k] = v"), "\(name): \(f)") }
            let last = try #require(functions.last)
            #expect(last.contains("double r0 =") || last.contains("float r0 ="), "\(name): \(last)")
            #expect(last.components(separatedBy: "[k] = v").count - 1 == 3, "\(name): one store in each of the three loops: \(last)")
            // The argument is read and the output written in place (no copies).
            let program = try compiled.trace(for: [x, v]).program
            #expect(program.native?.bound.compactMap(\.output) == [0], "\(name)")
            #expect(program.native?.bound.compactMap(\.argument).contains(0) == true, "\(name)")
        }
    }

    @Test("a program cut anywhere runs its pieces correctly: a run whose values a later run recomputes is interpreted unless the range reaches that run")
    func rangesCutAnywhere() throws {
        let n = Parallelism.elementChunk + 9
        let x = try Tensor.uniform([n], key: RandomKey(seed: 23), low: -1, high: 1)
        // The last run (the gradient's pads and sum, then the scale and tanh) can be cut inside.
        let (bundle, _) = try traceGraph({ a in [try (gradient(at: a[0], of: Self.rosenbrock) * 3).tanh()] }, at: [x])
        let program = try bundle.compiled(order: bundle.graph.nodesReachingOutputs, native: .required)
        let native = try #require(program.native)
        #expect(zip(native.chunkedReach, native.chunkedEnd).contains { $0 > $1 }, "a run relies on a later one")
        let expected = try bundle.execute([x])[0]
        #expect(bitwiseEqual(try program([x])[0], expected))
        for cut in program.positions {
            let frame = program.makeFrame()
            try program.bind([x], in: frame)
            try program.run(0..<cut, in: frame)
            try program.run(cut..<program.positions.upperBound, in: frame)
            #expect(bitwiseEqual(program.output(0, in: frame), expected), "cut at \(cut)")
        }
    }

    @Test("a producer is recomputed only while what it reads stays unchanged up to the end of the reading run")
    func recomputationNeedsStableInputs() throws {
        typealias G = NativeCodeGenerator
        let (n, m) = (5000, 5001)
        let (a, b, y, z) = (0, 8 * n, 16 * n, 32 * n)
        func add(y: Int, a: Int, b: Int) -> FrameInstruction {
            var i = FrameInstruction(kind: .binary, op: .add, float64: true)
            (i.y, i.a, i.b, i.n) = (y, a, b, n)
            return i
        }
        // The reader: m elements, element k reads y[k − 1] (zero first) plus b[k] (zero last).
        var reader = FrameInstruction(kind: .binary, op: .add, float64: true)
        (reader.y, reader.n, reader.table) = (z, m, 0)
        let table = [-1] + Array(0..<n).map { y / 8 + $0 } + Array(0..<n).map { b / 8 + $0 } + [-1]
        // y = a + b, then the reader (another size: another run).
        let plain = G(instructions: [add(y: y, a: a, b: b), reader], tables: table, lastReaders: [1, Int.max])
        let runs = plain.chunkedSegments(splits: [])
        #expect(runs == [0..<1, 1..<2])
        let fused = plain.fusion(runs, splits: [])
        #expect(fused.recomputed[G.Read(instruction: 1, operand: 0)]?.instruction == 0)
        #expect(fused.recomputed[G.Read(instruction: 1, operand: 0)]?.shift == -1)
        #expect(fused.skipped == [0] && fused.stored == [1] && fused.reach == [2, 2])
        // After a split (a part that re-runs on its own), not across it.
        #expect(plain.fusion(plain.chunkedSegments(splits: [1]), splits: [1]).recomputed.isEmpty)
        // a is overwritten after y is computed (in y's run, element for element): y is read back.
        let overwritten = G(instructions: [add(y: y, a: a, b: b), add(y: a, a: b, b: b), reader], tables: table, lastReaders: [2, Int.max, Int.max])
        let runs2 = overwritten.chunkedSegments(splits: [])
        #expect(runs2 == [0..<2, 2..<3])
        let kept = overwritten.fusion(runs2, splits: [])
        #expect(kept.recomputed.isEmpty && kept.skipped.isEmpty && kept.stored == [0, 1, 2] && kept.reach == [2, 3])
        // y's reader is recomputed by a later run that cannot recompute y itself (a is
        // overwritten after y): that run reads y from memory, after y's last reader, so y is stored.
        var second = FrameInstruction(kind: .binary, op: .add, float64: true)
        (second.y, second.n, second.table) = (z, m, 0)
        var third = FrameInstruction(kind: .binary, op: .add, float64: true)
        (third.y, third.n, third.table) = (48 * n, m + 1, 2 * m)
        let thirdTable = [-1] + Array(0..<m).map { z / 8 + $0 } + Array(0..<n).map { b / 8 + $0 } + [-1, -1]
        let chain = G(instructions: [add(y: y, a: a, b: b), add(y: a, a: b, b: b), second, third], tables: table + thirdTable,
                      lastReaders: [2, Int.max, 3, Int.max])
        let chainRuns = chain.chunkedSegments(splits: [])
        #expect(chainRuns == [0..<2, 2..<3, 3..<4])
        let late = chain.fusion(chainRuns, splits: [])
        let tree = try #require(late.recomputed[G.Read(instruction: 3, operand: 0)])
        #expect(tree.instruction == 2 && tree.operands[0] == nil, "y read from memory")
        #expect(late.skipped == [2] && late.stored.isSuperset(of: [0, 1, 3]), "skipped \(late.skipped), stored \(late.stored)")
        // A producer writing in place over its operand (y = y + b) is read back, not recomputed.
        let inPlace = G(instructions: [add(y: y, a: y, b: b), reader], tables: table, lastReaders: [1, Int.max])
        #expect(inPlace.fusion(inPlace.chunkedSegments(splits: []), splits: []).recomputed.isEmpty)
        // Without tracking readers (no `lastReaders`), every result is stored, recomputed or not.
        let untracked = G(instructions: [add(y: y, a: a, b: b), reader], tables: table)
        #expect(untracked.fusion(runs, splits: []).stored == [0, 1])
    }

    @Test("arguments and outputs touched only by chunked runs are bound in place; one an interpreted instruction reads, or an output that is an argument, is copied; results equal either way")
    func boundInPlace() throws {
        let n = Parallelism.elementChunk + 3
        let x = try Tensor.uniform([n], key: RandomKey(seed: 24), low: -1, high: 1)
        let y = try Tensor.uniform([n], key: RandomKey(seed: 25), low: -1, high: 1)
        // x is also read by a reduction of part of it (interpreted), y only by the run; the first
        // output is an argument itself, the second and third come from the run, the last from
        // the reduction.
        let body: ([Tensor]) throws -> [Tensor] = { a in [a[1], try (a[0] * a[1]).exp(), try a[1].tanh() - a[0], try a[0].slice([0..<100]).sum()] }
        let (bundle, _) = try traceGraph(body, at: [x, y])
        let program = try bundle.compiled(native: .required)
        let bound = try #require(program.native?.bound)
        #expect(bound.compactMap(\.argument) == [] && bound.compactMap(\.output) == [1, 2], "\(bound)")
        let expected = try bundle.execute([x, y])
        #expect(zip(try program([x, y]), expected).allSatisfy(bitwiseEqual))
        // A wrong argument is refused before anything runs.
        #expect(throws: TensorError.self) { try program([x, try Tensor.zeros([n + 1])]) }
        #expect(throws: TensorError.self) { try program([x]) }
        // An output that is part of a value the run writes (a slice of it) is not bound: the run
        // writes the whole value through one pointer.
        let (part, _) = try traceGraph({ a in [try (a[0] * 2).exp().slice([1..<n]), try (a[1] + 1).slice([0..<(n - 1)])] }, at: [x, y])
        let partProgram = try part.compiled(native: .required)
        #expect(partProgram.native?.bound.compactMap(\.output) == [], "\(partProgram.native?.bound ?? [])")
        #expect(zip(try partProgram([x, y]), try part.execute([x, y])).allSatisfy(bitwiseEqual))
        // Matmuls read and write bound regions at their bound addresses: weights read by a
        // product and by a run, an input read only by a product, outputs of runs (a gradient step).
        let (w, input) = (try Tensor.uniform([128, 64], key: RandomKey(seed: 31), low: -1, high: 1),
                          try Tensor.uniform([64, 128], key: RandomKey(seed: 32), low: -1, high: 1))
        let (dense, _) = try traceGraph({ a in
            let (loss, g) = try valueWithGradient(at: a[1]) { w in try a[0].matmul(w).tanh().sum() }
            return [loss, try a[1] - g * 0.01, try a[0].matmul(a[1]).tanh()]
        }, at: [input, w])
        let d = try dense.compiled(native: .required)
        // (The outputs' bytes held other values earlier, which interpreted instructions touched:
        // they are copied.)
        #expect(d.native?.bound.compactMap(\.argument) == [0, 1], "\(d.native?.bound ?? [])")
        #expect(d.native?.boundMatmuls.isEmpty == false)
        for threads in [1, 2] {
            let results = try Parallelism.withThreadCount(threads) { try d([input, w]) }
            #expect(zip(results, try dense.execute([input, w])).allSatisfy(bitwiseEqual), "\(threads) threads")
        }
        // Under `compile` the outputs get bytes of their own: the update, written by a run, is
        // bound too (the 64 × 64 tanh is no chunked run, the loss a reduction).
        let denseBody: ([Tensor]) throws -> [Tensor] = { a in
            let (loss, g) = try valueWithGradient(at: a[1]) { w in try a[0].matmul(w).tanh().sum() }
            return [loss, try a[1] - g * 0.01, try a[0].matmul(a[1]).tanh()]
        }
        let compiledDense = compile(native: .required, denseBody)
        let denseProgram = try compiledDense.trace(for: [input, w]).program
        #expect(denseProgram.native?.bound.compactMap(\.output) == [1] && denseProgram.native?.bound.compactMap(\.argument) == [0, 1])
        #expect(zip(try compiledDense([input, w]), try denseBody([input, w])).allSatisfy(bitwiseEqual))
        // Bound arguments: a program reading both only in its run.
        let (only, _) = try traceGraph({ a in [try (a[0] * a[1]).exp()] }, at: [x, y])
        let p = try only.compiled(native: .required)
        #expect(p.native?.bound.compactMap(\.argument) == [0, 1])
        #expect(bitwiseEqual(try p([x, y])[0], try only.execute([x, y])[0]))
        #expect(throws: TensorError.self) { try p([x, try Tensor.zeros([n], dtype: .float32)]) }
        // Under mixed precision the ordinary kernels run it, on copies: their values, not native code's.
        let (xf, yf) = (try x.cast(to: .float32), try y.cast(to: .float32))
        let (single, _) = try traceGraph({ a in [try (a[0] * a[1]).exp()] }, at: [xf, yf])
        let q = try single.compiled(native: .required)
        #expect(q.native?.bound.compactMap(\.argument) == [0, 1])
        let half = try MixedPrecision.with(.float16) { (try q([xf, yf])[0], try single.execute([xf, yf])[0]) }
        let plain = try q([xf, yf])[0]
        #expect(bitwiseEqual(half.0, half.1) && !bitwiseEqual(half.0, plain))
    }

    @Test("compile runs only what its outputs need, and reads an array of one repeated element as that element")
    func deadValuesAndUniformCaptures() throws {
        let x = try Tensor.uniform([Parallelism.elementChunk + 1], key: RandomKey(seed: 26), low: -1, high: 1)
        let compiled = compile(native: .off) { (a: [Tensor]) in [try gradient(at: a[0], of: Self.rosenbrock)] }
        let trace = try compiled.trace(for: [x])
        // The loss and the sum are traced but not run.
        #expect(trace.program.statistics.operations < trace.bundle.graph.nodes.count)
        #expect(trace.bundle.graph.nodes.contains { $0.op == .sum } && !trace.bundle.graph.nodesReachingOutputs.contains { trace.bundle.graph.nodes[$0].op == .sum })
        // The backward's seed, ones broadcast to the slice's shape, is a capture of equal elements:
        // read as one element.
        #expect(trace.program.instructions.contains { $0.aScalar || $0.bScalar })
        #expect(ProgramPlanner.hasEqualElements(try Tensor.ones([3])))
        #expect(!ProgramPlanner.hasEqualElements(try Tensor([1, 1, 2], shape: [3])))
        #expect(!ProgramPlanner.hasEqualElements(try Tensor.ones([1])))
        #expect(!ProgramPlanner.hasEqualElements(try Tensor.zeros([0])))
        // -0.0 and 0.0 differ bitwise: not one repeated element.
        #expect(!ProgramPlanner.hasEqualElements(try Tensor([0.0, -0.0], shape: [2])))
        #expect(bitwiseEqual(try compiled([x])[0], try gradient(at: x, of: Self.rosenbrock)))
    }

    @Test("large operands read through affine index tables keep six numbers per operand, not one per element: gathers, binary operators and multiply-adds, interpreted, native and under mixed precision, equal the eager results",
          arguments: [DType.float64, .float32])
    func compactTables(dtype: DType) throws {
        let n = NativeCodeGenerator.elementLimit * 3 + 5
        let x = try Tensor.uniform([n], key: RandomKey(seed: 27), low: -2, high: 2, dtype: dtype)
        let s = try Tensor.uniform([1], key: RandomKey(seed: 28), low: 0.5, high: 1.5, dtype: dtype)
        let m = try Tensor.uniform([4, n / 4], key: RandomKey(seed: 29), low: -1, high: 1, dtype: dtype)
        let r = try Tensor.uniform([n / 4], key: RandomKey(seed: 30), low: -1, high: 1, dtype: dtype)
        let body: ([Tensor]) throws -> [Tensor] = { a in
            let (x, s) = (a[0], a[1])
            let shifted = try x.slice([1..<n]).padded(low: [0], high: [1], value: 0.5)   // a gather (pad value 0.5)
            let left = try x.slice([0..<(n - 1)]).padded(low: [1], high: [0])             // folded into the add
            return [try shifted * x, try (left + x).exp(), try x.multiplied(by: s, adding: x),
                    try a[2] + a[3]]                                                      // a row broadcast: not affine
        }
        let (bundle, _) = try traceGraph(body, at: [x, s, m, r])
        let interpreted = try bundle.compiled()
        let kinds = Set(interpreted.instructions.filter(\.compact).map(\.kind))
        #expect(kinds.isSuperset(of: [.gather, .binary, .multiplyAdd]), "\(kinds)")
        #expect(interpreted.instructions.contains { !$0.compact && $0.table >= 0 && $0.n == 4 * (n / 4) })   // the row broadcast
        #expect(interpreted.tables.count < 3 * n, "\(interpreted.tables.count) table entries")
        let expected = try bundle.execute([x, s, m, r])
        #expect(zip(try interpreted([x, s, m, r]), expected).allSatisfy(bitwiseEqual))
        let native = try bundle.compiled(native: .required)
        #expect(zip(try native([x, s, m, r]), expected).allSatisfy(bitwiseEqualUpToNaN))
        if dtype == .float32 {
            // Mixed precision sends the binary operators to the ordinary kernels (folded operands
            // expanded from their rules).
            let half = try MixedPrecision.with(.float16) { (try interpreted([x, s, m, r]), try bundle.execute([x, s, m, r])) }
            #expect(zip(half.0, half.1).allSatisfy(bitwiseEqual))
        }
    }

    @Test("affine tables: entries, ranges read, and the tables detected as rules; layout tables as pieces or packed numbers")
    func affineTables() {
        let rule = AffineTable(lo: 2, hi: 5, first: 10, stride: 1, before: 7, after: -1)
        #expect((0..<7).map(rule.entry) == [7, 7, 10, 11, 12, -1, -1])
        #expect(rule.readRange(count: 7) == 7...12)
        #expect(AffineTable(lo: 0, hi: 3, first: 4, stride: 0).readRange(count: 3) == 4...4)
        #expect(AffineTable(lo: 0, hi: 0, first: 0, stride: 1).readRange(count: 3) == nil)
        #expect(AffineTable.detect([7, 7, 10, 11, 12, -1, -1][...]) == rule)
        #expect(AffineTable(rule.encoded[...]) == rule)
        var filled = [Int](repeating: 0, count: 4)
        filled.withUnsafeMutableBufferPointer { rule.fill($0.baseAddress!, from: 1, count: 4) }
        #expect(filled == [7, 10, 11, 12])
        // Layout tables: a pad is a rule over its input, a concatenation of two inputs is not.
        let pad = LayoutTable([nil, (0, 0), (0, 1), (0, 2), nil])
        #expect((0..<5).map { pad[$0].map { [$0.input, $0.index] } } == [nil, [0, 0], [0, 1], [0, 2], nil])
        let concat = LayoutTable([(0, 1), (0, 2), (1, 0), nil, (1, 1 << 40)])
        #expect((0..<5).map { concat[$0].map { [$0.input, $0.index] } } == [[0, 1], [0, 2], [1, 0], nil, [1, 1 << 40]])
        #expect(concat.map { $0?.input ?? -1 } == [0, 0, 1, -1, 1] && concat.count == 5)
        // Large: a concatenation of whole inputs with padding is a few pieces; a transposition is
        // packed numbers; either way every entry reads back, through `map` and the subscript.
        let n = 100_000
        let joined = LayoutTable(count: 2 * n + 1) { k in k < n ? (1, k) : k == n ? nil : (0, k - n - 1) }
        #expect(joined.pieces == [.init(start: 0, input: 1, first: 0), .init(start: n, input: -1, first: 0), .init(start: n + 1, input: 0, first: 0)])
        #expect(joined.contiguousRun == nil && LayoutTable(count: n) { (2, $0 + 5) }.contiguousRun! == (2, 5))
        // A broadcast scalar, then a run: two pieces, the first of stride 0.
        let broadcast = LayoutTable(count: n) { k in k < n / 2 ? (0, 7) : (0, k) }
        #expect(broadcast.pieces == [.init(start: 0, input: 0, first: 7, stride: 0), .init(start: n / 2, input: 0, first: n / 2)])
        #expect(broadcast[3]! == (0, 7) && broadcast[n / 2 + 1]! == (0, n / 2 + 1) && broadcast.contiguousRun == nil)
        let transposed = LayoutTable(count: n) { k in (0, (k % 100) * 1000 + k / 100) }
        #expect(transposed.pieces == nil && transposed.contiguousRun == nil)
        for table in [joined, broadcast, transposed] {
            let all = table.map { $0.map { [$0.input, $0.index] } }
            #expect((0..<table.count).allSatisfy { k in table[k].map { [$0.input, $0.index] } == all[k] })
        }
        #expect(joined.map { $0?.index ?? -1 }[(n - 1)...(n + 2)] == [n - 1, -1, 0, 1] && transposed[1]! == (0, 1000))
    }

    @Test("sums and means of all a run's elements are taken into the run: each chunk sums its block, the blocks combine in the strict tree — bitwise the eager kernels with 1–3 threads; other policies interpret",
          arguments: [DType.float64, .float32])
    func fusedReductions(dtype: DType) throws {
        for n in [3 * Parallelism.elementChunk + 77, 5000 + Parallelism.elementChunk / 4] {
            let x = try Tensor.uniform([n], key: RandomKey(seed: 31), low: -1, high: 1, dtype: dtype)
            let w = try Tensor.uniform([n], key: RandomKey(seed: 32), low: -1, high: 1, dtype: dtype)
            // Two reductions in one run, an output of the run's size, and a value of the run's
            // size reading a reduction's result (its own run: the result comes after the run).
            let body: ([Tensor]) throws -> [Tensor] = { a in
                let (x, w) = (a[0], a[1])
                let s = try (x * w).tanh().sum(), m = try (x * x + w).mean()
                return [s, m, try x * 2 + w, try x * s]
            }
            let directory = NativeCodeTests.cacheDirectory()
            defer { try? FileManager.default.removeItem(atPath: directory) }
            let local = NativeCompiler(executable: try NativeCompiler.system().executable, cacheDirectory: directory)
            let compiled = compile(native: .compiler(local), body)
            let expected = try body([x, w])
            for threads in [1, 2, 3] {
                let native = try Parallelism.withThreadCount(threads) { try compiled([x, w]) }
                #expect(zip(native, expected).allSatisfy(bitwiseEqual), "\(dtype) n \(n), \(threads) threads")
            }
            let program = try compiled.trace(for: [x, w]).program
            let runs = try #require(program.native).chunkedReductions
            #expect(runs.map(\.count).reduce(0, +) == 2 && runs.contains { $0.count == 2 }, "\(runs)")
            let functions = try Self.chunkedFunctions(in: directory)
            #expect(functions.filter { $0.contains("[begin / \(Parallelism.elementChunk)] = adjoint_pairwise_") }.count == 1)
            // The block buffers are the caller's, not thread-local arrays of the library: the
            // loader's dynamic TLS outlives `dlclose`, and LeakSanitizer's exit-time scan reads it
            // unmapped (the release step under AddressSanitizer fails on it).
            let file = try #require(try FileManager.default.contentsOfDirectory(atPath: directory).first { $0.hasSuffix(".c") })
            let source = try String(contentsOfFile: directory + "/" + file, encoding: .utf8)
            #expect(!source.contains("_Thread_local") && !source.contains("__thread"))
            #expect(functions.filter { $0.contains("(unsigned char *)blocks + \(NativeCodeGenerator.fusedBlockBytes))") }.count == 1)
            // Other determinism policies sum another way: the program is interpreted, as eager.
            for policy in [DeterminismPolicy.bestEffort, .fast] where policy == .bestEffort {
                let eager = try ExecutionPolicy.with(ExecutionPolicy(determinism: policy)) { try body([x, w]) }
                let interpreted = try ExecutionPolicy.with(ExecutionPolicy(determinism: policy)) { try compiled([x, w]) }
                #expect(zip(interpreted, eager).allSatisfy(bitwiseEqual), "\(dtype) n \(n), \(policy)")
            }
        }
    }

    @Test("a reduction joins a run only over all its elements, and ends it for whoever reads its result")
    func fusedReductionLimits() {
        typealias G = NativeCodeGenerator
        let n = 5000
        func add(y: Int, a: Int, b: Int, n: Int = n) -> FrameInstruction {
            var i = FrameInstruction(kind: .binary, op: .add, float64: true)
            (i.y, i.a, i.b, i.n) = (y, a, b, n)
            return i
        }
        func sum(y: Int, a: Int, outer: Int = 1, extent: Int = n, inner: Int = 1) -> FrameInstruction {
            var i = FrameInstruction(kind: .reduce, op: .sum, float64: true)
            (i.y, i.a, i.n, i.outer, i.extent, i.inner) = (y, a, outer * inner, outer, extent, inner)
            return i
        }
        let (a, b, c, y) = (0, 8 * n, 16 * n, 24 * n)
        // c = a + b; sum(c) into y; a + b again: one run.
        let whole = G(instructions: [add(y: c, a: a, b: b), sum(y: y, a: c), add(y: c, a: a, b: b)], tables: [])
        #expect(whole.chunkedSegments(splits: []) == [0..<3])
        #expect(whole.fusedReductions(0..<3).map(\.instruction) == [1])
        // Its result written where an earlier instruction of the run wrote (a value read before
        // the reduction): still one run — the result comes after the run, as after that value's
        // last reader. Where its own operand lies: not (the rule is conservative).
        #expect(G(instructions: [add(y: y, a: a, b: b), add(y: c, a: y, b: b), sum(y: y, a: c)], tables: []).chunkedSegments(splits: []) == [0..<3])
        #expect(G(instructions: [add(y: c, a: a, b: b), sum(y: c, a: c)], tables: []).chunkedSegments(splits: []) == [0..<1])
        // Read by the next instruction, or overwritten by it: that one starts a run of its own.
        var reader = add(y: b, a: a, b: y)
        reader.bScalar = true
        #expect(G(instructions: [add(y: c, a: a, b: b), sum(y: y, a: c), reader], tables: []).chunkedSegments(splits: []) == [0..<2, 2..<3])
        #expect(G(instructions: [add(y: c, a: a, b: b), sum(y: y, a: c), add(y: y, a: a, b: b)], tables: []).chunkedSegments(splits: []) == [0..<2, 2..<3])
        // Not all of the run's elements (rows of a matrix, part of them), or a reduction first: no.
        #expect(G(instructions: [add(y: c, a: a, b: b), sum(y: y, a: c, outer: 2, extent: n / 2)], tables: []).chunkedSegments(splits: []) == [0..<1])
        #expect(G(instructions: [add(y: c, a: a, b: b), sum(y: y, a: c, extent: n - 1)], tables: []).chunkedSegments(splits: []) == [0..<1])
        #expect(G(instructions: [sum(y: y, a: c), add(y: c, a: a, b: b)], tables: []).chunkedSegments(splits: []) == [1..<2])
        // A reduction is always computed and its result never stored by the loop.
        let fusion = whole.fusion([0..<3], splits: [])
        #expect(fusion.stored.contains(1) && !fusion.skipped.contains(1))
    }
}
