import Adjoint
@testable import AdjointCompiler
import AdjointExamples
import AdjointIR
import Foundation
import Testing

/// The chunked runs printed as CUDA C++ kernels, and NVRTC (loaded at run time) compiling every
/// one of them for an H100/H200 (sm_90). The NVRTC tests run where a `libnvrtc.so` is found
/// (`ADJOINT_NVRTC`, the loader's path, `/usr/local/cuda`); elsewhere they are reported skipped.
@Suite("CUDA kernels from the native code generator")
struct CUDASourceTests {
    static let nvrtc: NVRTC? = try? NVRTC.load()

    /// Every elementwise operator with a native form, unary on `x` and binary on `x`, `y`, over
    /// 5,000 elements of `dtype`: one chunked run holding them all.
    static func everyOperator(_ dtype: DType) throws -> CompiledProgram {
        let type = ValueType(dtype: dtype, shape: [5000])
        var nodes: [Node] = [], next = 2
        for op in OpCode.allCases {
            let inputs: [Int]
            if NativeCodeGenerator.unaryExpression(op, "x", float64: true) != nil { inputs = [0] }
            else if NativeCodeGenerator.binaryExpression(op, "a", "b", float64: true) != nil { inputs = [0, 1] }
            else { continue }
            nodes.append(Node(op: op, inputs: inputs.map(ValueID.init), outputs: [ValueID(next)], outputTypes: [type]))
            next += 1
        }
        let graph = Graph(inputs: [0, 1].map { GraphInput(id: ValueID($0), type: type, role: .argument) }, nodes: nodes,
                          outputs: (2..<next).map(ValueID.init))
        return try CompiledProgram(graph, captures: [:], order: nil, boundaries: [], native: .required)
    }

    /// Programs whose kernels cover the generator's forms: every operator (float64 and float32),
    /// stencil gradients and HVPs (padded reads, recomputation at shifted elements, arguments and
    /// outputs bound), fused sums and means, the heat equation's gradient through two steps.
    static func programs() throws -> [(String, CompiledProgram)] {
        let n = 2 * Parallelism.elementChunk + 77
        let x = try Tensor.uniform([n], key: RandomKey(seed: 41), low: -1, high: 1)
        let v = try Tensor.uniform([n], key: RandomKey(seed: 42), low: -1, high: 1)
        let s = try Tensor.uniform([n], key: RandomKey(seed: 43), low: -1, high: 1, dtype: .float32)
        let p = try Tensor([Float(0.25), 0.05], shape: [2])
        let gradientProgram = try compile(native: .required) { (a: [Tensor]) in [try gradient(at: a[0], of: Rosenbrock.value)] }.trace(for: [x]).program
        let hvpProgram = try compile(native: .required) { (a: [Tensor]) in [try hvp(at: a[0], direction: a[1], of: Rosenbrock.value)] }.trace(for: [x, v]).program
        let sums = try compile(native: .required) { (a: [Tensor]) in
            [try (a[0] * a[1]).tanh().sum(), try (a[0] * a[0] + a[1]).mean(), try a[0] * 2 + a[1]]
        }.trace(for: [x, v]).program
        let heat = try compile(native: .required) { (a: [Tensor]) in
            [try gradient(at: a[1]) { p in let t = try HeatEquation.step(HeatEquation.step(a[0], p), p); return try (t * t).mean() }]
        }.trace(for: [s, p]).program
        return [("every operator, float64", try everyOperator(.float64)), ("every operator, float32", try everyOperator(.float32)),
                ("Rosenbrock gradient", gradientProgram), ("Rosenbrock HVP", hvpProgram), ("fused sums", sums), ("heat gradient", heat)]
    }

    @Test("a kernel per chunked run, one thread per element, a second kernel summing each chunk where the run reduces; no host-only C")
    func source() throws {
        for (name, program) in try Self.programs() {
            let source = try #require(program.cudaSource(), "\(name)")
            let native = try #require(program.native)
            for (k, reductions) in native.chunkedReductions.enumerated() {
                #expect(source.contains("extern \"C\" __global__ void adjoint_chunked_\(k)(unsigned char *base, long begin, long end, void *const *bound, void *scratch)"), "\(name)")
                #expect(source.contains("adjoint_chunked_\(k)_sums(") == !reductions.isEmpty, "\(name)")
            }
            #expect(!source.contains("adjoint_chunked_\(native.runs.count)("), "\(name)")
            // No statement expressions, thread-local buffers, libm header or GCC builtins: NVRTC
            // has none of them.
            for construct in ["({", "_Thread_local", "#include", "__builtin_", "__attribute__"] {
                #expect(!source.contains(construct), "\(name): \(construct)")
            }
        }
        // Formulas with branches that declare variables (sigmoid) are lambdas called in place.
        #expect(NativeCodeGenerator.helpers(cuda: true).contains("([&]() -> double {"))
        #expect(NativeCodeGenerator.helpers.contains("({ double v1"))
    }

    @Test("NVRTC compiles every kernel to PTX for compute_90 and to a cubin for sm_90, reductions over axes (strided ones too), elementwise kernels reading tables and compact tables, comparisons, selections, softmaxes, cross-entropy, one-hot, gathers, scatter-adds, index checks and layout copies included", .enabled(if: nvrtc != nil, "no libnvrtc.so: set ADJOINT_NVRTC"))
    func compiles() throws {
        let nvrtc = try #require(Self.nvrtc)
        #expect(nvrtc.version.major >= 11, "\(nvrtc.version)")
        for (name, program) in try Self.programs() {
            // The whole program's kernels: its plain runs as one-thread kernels and each reducing
            // run's combination too (what `DeviceProgram` launches).
            let source = try #require(program.cudaSource(segments: program.deviceSegments))
            let native = try #require(program.native)
            let ptx = try nvrtc.compile(source, name: name, target: .ptx(compute: 90))
            let text = String(decoding: ptx, as: UTF8.self)
            #expect(text.contains(".target sm_90") && text.contains(".entry adjoint_chunked_0"), "\(name)")
            for k in program.deviceSegments.indices { #expect(text.contains(".entry adjoint_segment_\(k)("), "\(name)") }
            for (k, reductions) in native.chunkedReductions.enumerated() where !reductions.isEmpty {
                #expect(text.contains(".entry adjoint_chunked_\(k)_combine("), "\(name)")
            }
            // --fmad=false: no multiply and add of ours contracted into one. (The device
            // library's exp, log, sin… use fused multiply-adds of their own.)
            if !name.hasPrefix("every") && name != "fused sums" { #expect(!text.contains("fma.rn"), "\(name)") }
            let cubin = try nvrtc.compile(source, name: name, target: .cubin(sm: 90))
            #expect(cubin.starts(with: [0x7f, 0x45, 0x4c, 0x46]), "\(name): an ELF cubin")
        }
        // Reductions over axes, each a kernel of its own: strided and contiguous, within one
        // 2¹⁵-element block and over several, float64 and float32.
        for dtype in [DType.float64, .float32] {
            let x = try Tensor.uniform([420, 300], key: RandomKey(seed: 1), low: -1, high: 1, dtype: dtype)
            let z = try Tensor.uniform([2, 70000], key: RandomKey(seed: 2), low: -1, high: 1, dtype: dtype)
            let program = try compile(native: .required) { (v: [Tensor]) in
                [try v[0].sum(axes: [0]), try v[0].max(axes: [0]), try v[1].mean(axes: [1]), try v[1].min(axes: [1]),
                 try v[0].logsumexp(axes: [0]), try v[1].logsumexp(axes: [1])]
            }.trace(for: [x, z]).program
            let reductions = program.instructions.indices.filter { NativeCodeGenerator.hasReductionKernel(program.instructions[$0]) }
            #expect(reductions.count == 6, "\(dtype)")
            // Without library functions, no fused multiply-add; log-sum-exps call exp and log.
            let exponential = reductions.filter { program.instructions[$0].op == .logsumexp }
            for (part, ieee) in [(reductions.filter { !exponential.contains($0) }, true), (exponential, false)] {
                let source = try #require(program.cudaSource(reductions: part))
                let text = String(decoding: try nvrtc.compile(source, name: "reductions", target: .ptx(compute: 90)), as: UTF8.self)
                // A mean along 70,000 elements is split over threads: its leaves, then their combination.
                for k in part {
                    let names = NativeCodeGenerator.sumSplit(program.instructions[k]) == nil ? ["adjoint_reduce_\(k)"] : ["adjoint_reduce_\(k)_leaves", "adjoint_reduce_\(k)_combine"]
                    for name in names { #expect(text.contains(".entry \(name)("), "\(dtype)") }
                }
                #expect(part.contains { NativeCodeGenerator.sumSplit(program.instructions[$0]) != nil } == ieee, "\(dtype)")
                if ieee { #expect(!text.contains("fma.rn"), "\(dtype)") }
                #expect(try nvrtc.compile(source, name: "reductions", target: .cubin(sm: 90)).starts(with: [0x7f, 0x45, 0x4c, 0x46]))
                // And as kernels on their operand's and result's addresses.
                let directText = String(decoding: try nvrtc.compile(try #require(program.cudaSource(direct: part)), name: "direct", target: .ptx(compute: 90)),
                                        as: UTF8.self)
                for k in part {
                    let name = NativeCodeGenerator.directName(k)
                    for entry in NativeCodeGenerator.sumSplit(program.instructions[k]) == nil ? [name] : [name + "_leaves", name + "_combine"] {
                        #expect(directText.contains(".entry \(entry)("), "\(dtype)")
                    }
                }
            }
            // Elementwise kernels reading index tables from device memory (broadcasts, a gather,
            // a multiply-add), each a kernel of its own.
            let row = try Tensor.uniform([300], key: RandomKey(seed: 3), low: -1, high: 1, dtype: dtype)
            let broadcasts = try compile(native: .required) { (v: [Tensor]) in
                [try (v[0] + v[1]) * v[0].transposed().transposed(), try v[0].transposed().multiplied(by: v[0].transposed(), adding: v[0].transposed())]
            }.trace(for: [x, row]).program
            let elementwise = broadcasts.instructions.indices.filter { NativeCodeGenerator.hasElementwiseKernel(broadcasts.instructions[$0]) && NativeCodeGenerator.tableOperands(broadcasts.instructions[$0]) > 0 }
            #expect(!elementwise.isEmpty, "\(dtype)")
            let tableSource = try #require(broadcasts.cudaSource(elementwise: elementwise))
            let tableText = String(decoding: try nvrtc.compile(tableSource, name: "elementwise", target: .ptx(compute: 90)), as: UTF8.self)
            for k in elementwise { #expect(tableText.contains(".entry adjoint_elementwise_\(k)("), "\(dtype)") }
            #expect(!tableText.contains("fma.rn"), "\(dtype)")
            #expect(try nvrtc.compile(tableSource, name: "elementwise", target: .cubin(sm: 90)).starts(with: [0x7f, 0x45, 0x4c, 0x46]))
            // Layout operators the planner made gathers, as their operators' kernels on their operands' addresses.
            let layouts = try compile(native: .off) { (v: [Tensor]) in
                [try v[0].transposed(), try v[0].slice(starts: [1, 2], ends: [300, 200]), try v[1].broadcast(to: [420, 300]),
                 try v[0].padded(low: [1, 1], high: [2, 0], value: 0.5), try Tensor.concat([v[0], v[0]], axis: 1)]
            }.trace(for: [x, row]).program
            let gathers = layouts.instructions.indices.filter { layouts.instructions[$0].kind == .gather && NativeCodeGenerator.hasDirectKernel(layouts.fallbacks[$0]) }
            #expect(gathers.count == 5, "\(dtype)")
            let layoutText = String(decoding: try nvrtc.compile(try #require(layouts.cudaSource(direct: gathers)), name: "layouts", target: .ptx(compute: 90)), as: UTF8.self)
            for k in gathers { #expect(layoutText.contains(".entry \(NativeCodeGenerator.directName(k))("), "\(dtype)") }
            // Instructions the CPU interprets that have device kernels: comparisons and selections,
            // broadcasting, of float, integer and bool operands; softmax and log-softmax;
            // cross-entropy (over up to one of `Summation`'s blocks of classes, and over more), one-hot,
            // a gather and a scatter-add with the checks of their indices;
            // casts (those to integers with the checks of their values; to and from the 16-bit
            // floats), argmax, and mean squared errors within one block and over several.
            let labels = try Tensor((0..<420).map { Int64($0 % 7) }).reshaped([420, 1]), targets = Tensor((0..<420).map { Int32($0 % 300) })
            let selecting = try compile(native: .required) { (v: [Tensor]) in
                let mask = try v[0].greater(v[1])
                return [try Tensor.select(mask, v[0], 0.0), try v[2].lessEqual(v[2].reshaped([1, 420])), try mask.equal(v[0].less(0.5)),
                        try v[0].softmax(axis: 0), try v[0].logSoftmax(axis: 1), try v[0].crossEntropy(labels: v[3]), try v[3].oneHot(depth: 300),
                        try v[0].gather(v[3], axis: 1), try v[0].scatterAdd(v[3], v[0]),
                        try v[0].cast(to: .int32), try v[2].cast(to: .int32), try v[3].cast(to: .float64), try v[0].cast(to: .bool), try v[0].argmax(axis: 1),
                        try v[0].cast(to: .float16), try v[0].cast(to: .bfloat16), try v[0].cast(to: .float16).cast(to: .int32),
                        try v[4].crossEntropy(labels: v[5]), try v[0].meanSquaredError(v[0] * 2), try v[4].meanSquaredError(v[4] * 0.5)]
            }.trace(for: [x, row, labels, targets, try Tensor.uniform([2, Summation.blockSize + 1], key: RandomKey(seed: 4), low: -1, high: 1, dtype: dtype), Tensor([Int32(0), 5])]).program
            let selections = selecting.instructions.indices.filter {
                selecting.instructions[$0].kind == .fallback && NativeCodeGenerator.interpretedKernel(selecting.fallbacks[$0], $0) != nil
            }
            #expect(selections.count == 24, "\(dtype)")   // the int64 labels' reshape among them
            let selectSource = try #require(selecting.cudaSource(interpreted: selections))
            let selectText = String(decoding: try nvrtc.compile(selectSource, name: "selections", target: .ptx(compute: 90)), as: UTF8.self)
            /// Kernel `name`'s entries: a split sum's two (a mean squared error's), or itself.
            func entries(_ name: String, _ k: Int) -> [String] {
                NativeCodeGenerator.sumSplit(selecting.fallbacks[k]) == nil ? [name] : [name + "_leaves", name + "_combine"]
            }
            for k in selections {
                for entry in entries(NativeCodeGenerator.interpretedKernel(selecting.fallbacks[k], k)!.name, k) {
                    #expect(selectText.contains(".entry \(entry)("), "\(dtype)")
                }
            }
            #expect(selections.filter { selectText.contains(".entry \(NativeCodeGenerator.checkName($0))(") }.count == 8, "\(dtype)")
            #expect(try nvrtc.compile(selectSource, name: "selections", target: .cubin(sm: 90)).starts(with: [0x7f, 0x45, 0x4c, 0x46]))
            // Each also as a kernel on its operands' addresses, with its check.
            let directSelections = selections.filter { NativeCodeGenerator.hasDirectKernel(selecting.fallbacks[$0]) }
            #expect(directSelections.count == selections.count, "\(dtype)")
            let directSelectText = String(decoding: try nvrtc.compile(try #require(selecting.cudaSource(direct: directSelections)), name: "direct",
                                                                      target: .ptx(compute: 90)), as: UTF8.self)
            for k in directSelections {
                for entry in entries(NativeCodeGenerator.directName(k), k) { #expect(directSelectText.contains(".entry \(entry)("), "\(dtype)") }
            }
            #expect(selections.filter { directSelectText.contains(".entry \(NativeCodeGenerator.checkName($0))(") }.count == 8, "\(dtype)")
            // Reductions over axes that are not one run (read through strides, rows over one and
            // several of Summation's blocks), an empty log-sum-exp, and layout operators on
            // integers, bools and 16-bit floats; compact tables read by programs without native code.
            let wide = try Tensor.uniform([2, 200, 3, 200], key: RandomKey(seed: 5), low: -1, high: 1, dtype: dtype)
            let others = try compile(native: .off) { (v: [Tensor]) in
                let counts = try v[1].cast(to: .int32), half = try v[0].cast(to: .float16)
                return [try v[0].sum(axes: [0, 2]), try v[0].mean(axes: [1, 3]), try v[0].max(axes: [0, 3]), try v[0].min(axes: [0, 2]),
                        try v[0].logsumexp(axes: [1, 3]), try v[2].sum(axes: [1, 3]), try v[2].logsumexp(axes: [1, 3]),
                        try v[0].slice(starts: [0, 0, 0, 0], ends: [2, 0, 3, 20]).logsumexp(axes: [1]),
                        try counts.transposed(), try counts.padded(low: [1, 1], high: [0, 2], value: 7), try Tensor.concat([counts, counts], axis: 1),
                        try Tensor.stack([half, half], axis: 1), try half.broadcast(to: [2, 2, 10, 3, 20]).slice(starts: [0, 1, 0, 0, 0], ends: [2, 2, 9, 3, 20]),
                        try v[0].greater(0).reshaped([-1]), try v[3].padded(low: [3], high: [1], value: 0.5) * 2,
                        try Tensor.concat([v[3].slice([0..<1]), v[3], v[3].slice([4999..<5000])]) * 3,
                        try v[3].exp() * v[3], try v[3].multiplied(by: v[3], adding: v[3]), try v[3].reshaped([50, 100]) * v[3].slice([0..<100])]
            }.trace(for: [wide.slice(starts: [0, 0, 0, 0], ends: [2, 10, 3, 20]), try wide.sum(axes: [0, 2]).cast(to: .int64), wide,
                          try Tensor.uniform([5000], key: RandomKey(seed: 6), low: -1, high: 1, dtype: dtype)]).program
            let interpreted = others.instructions.indices.filter {
                others.instructions[$0].kind == .fallback && NativeCodeGenerator.interpretedKernel(others.fallbacks[$0], $0) != nil
            }
            let compactTables = others.instructions.indices.filter { others.instructions[$0].compact && NativeCodeGenerator.hasElementwiseKernel(others.instructions[$0]) }
            #expect(interpreted.filter { others.fallbacks[$0].op.family == .reduction }.count == 8, "\(dtype)")
            #expect(interpreted.filter { others.fallbacks[$0].op.family == .layout }.count >= 6, "\(dtype)")
            #expect(compactTables.count >= 2, "\(dtype)")
            let otherSource = try #require(others.cudaSource(elementwise: compactTables, interpreted: interpreted))
            let otherText = String(decoding: try nvrtc.compile(otherSource, name: "others", target: .ptx(compute: 90)), as: UTF8.self)
            for k in interpreted { #expect(otherText.contains(".entry \(NativeCodeGenerator.interpretedKernel(others.fallbacks[k], k)!.name)("), "\(dtype)") }
            for k in compactTables { #expect(otherText.contains(".entry \(NativeCodeGenerator.elementwiseName(k))("), "\(dtype)") }
            #expect(try nvrtc.compile(otherSource, name: "others", target: .cubin(sm: 90)).starts(with: [0x7f, 0x45, 0x4c, 0x46]))
            // Elementwise instructions without folded gathers, reductions and interpreted operators
            // also as kernels on their operands' addresses, a broadcast's through strides.
            let direct = others.instructions.indices.filter { k in
                let i = others.instructions[k]
                return NativeCodeGenerator.hasElementwiseKernel(i) && i.kind != .gather && i.accumulator < 0 && others.fallbacks[k].inputs.allSatisfy { $0.table < 0 }
            }
            #expect(direct.count >= 3 && direct.contains { others.instructions[$0].table >= 0 }, "\(dtype)")
            let directInterpreted = interpreted.filter { NativeCodeGenerator.hasDirectKernel(others.fallbacks[$0]) }
            #expect(directInterpreted.count >= 14, "\(dtype)")
            let directSource = try #require(others.cudaSource(direct: direct + directInterpreted))
            let directText = String(decoding: try nvrtc.compile(directSource, name: "direct", target: .ptx(compute: 90)), as: UTF8.self)
            for k in direct + directInterpreted { #expect(directText.contains(".entry \(NativeCodeGenerator.directName(k))("), "\(dtype)") }
            #expect(try nvrtc.compile(directSource, name: "direct", target: .cubin(sm: 90)).starts(with: [0x7f, 0x45, 0x4c, 0x46]))
        }
    }

    /// A stand-in for `libcublas.so`, compiled here: the functions `CUBLAS` takes, each writing
    /// its call (and a stream's or workspace's address) to a log that `fake_log` returns.
    static let fakeCUBLAS = """
        #include <stdint.h>
        #include <stdio.h>
        #include <string.h>
        static char text[4096]; static size_t used;
        static void note(const char *s) { size_t n = strlen(s); if (used + n < sizeof text) { memcpy(text + used, s, n); used += n; text[used] = 0; } }
        const char *fake_log(void) { return text; }
        int cublasCreate_v2(void **h) { *h = (void *)1; note("create;"); return 0; }
        int cublasDestroy_v2(void *h) { (void)h; return 0; }
        int cublasSetStream_v2(void *h, void *s) { char b[64]; (void)h; snprintf(b, sizeof b, "stream %lu;", (unsigned long)(uintptr_t)s); note(b); return 0; }
        int cublasSetWorkspace_v2(void *h, void *w, size_t n) { char b[64]; (void)h; snprintf(b, sizeof b, "workspace %lu %zu;", (unsigned long)(uintptr_t)w, n); note(b); return 0; }
        #define GEMM(name, T) int name(void *h, int ta, int tb, int m, int n, int k, const T *alpha, const void *a, int lda, const void *b, int ldb, \\
            const T *beta, void *c, int ldc) { (void)h; (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; (void)ldb; \\
            (void)beta; (void)c; (void)ldc; note(#name ";"); return 0; }
        #define BATCHED(name, T) int name(void *h, int ta, int tb, int m, int n, int k, const T *alpha, const void *a, int lda, const void *b, int ldb, \\
            const T *beta, void *c, int ldc, int count) { (void)h; (void)ta; (void)tb; (void)m; (void)n; (void)k; (void)alpha; (void)a; (void)lda; (void)b; \\
            (void)ldb; (void)beta; (void)c; (void)ldc; (void)count; note(#name ";"); return 0; }
        GEMM(cublasSgemm_v2, float) GEMM(cublasDgemm_v2, double) BATCHED(cublasSgemmBatched, float) BATCHED(cublasDgemmBatched, double)
        """

    @Test("cuBLAS takes each product on its stream with that stream's workspace, set after the stream (which puts the handle back on the shared one)")
    func cublasWorkspaces() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-fake-cublas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("fake.c"), library = directory.appendingPathComponent("libcublas.so").path
        try Self.fakeCUBLAS.write(to: source, atomically: true, encoding: .utf8)
        let cc = Process()
        cc.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        cc.arguments = ["cc", "-shared", "-fPIC", "-o", library, source.path]
        try cc.run()
        cc.waitUntilExit()
        try #require(cc.terminationStatus == 0, "cc could not build the stand-in cuBLAS")
        let blas = try CUBLAS.load(path: library)
        let single = GEMM(float64: false, transposeA: false, transposeB: true, m: 4, n: 3, k: 2, lda: 4, ldb: 3, ldc: 4, a: 8, b: 16, c: 24, batch: 1, arrays: 0)
        var batched = single
        (batched.float64, batched.batch, batched.arrays) = (true, 5, 4096)
        try blas.gemm(single, stream: OpaquePointer(bitPattern: 0x10), workspace: (address: 0x2000, bytes: 4 << 20))
        try blas.gemm(batched, stream: OpaquePointer(bitPattern: 0x20), workspace: (address: 0x3000, bytes: 4 << 20))
        try blas.gemm(single, stream: nil, workspace: nil)
        let loaded = try #require(dlopen(library, RTLD_NOW | RTLD_NOLOAD)), log = try #require(dlsym(loaded, "fake_log"))
        typealias Log = @convention(c) () -> UnsafePointer<CChar>
        #expect(String(cString: unsafeBitCast(log, to: Log.self)())
                    == "create;stream 16;workspace 8192 4194304;cublasSgemm_v2;stream 32;workspace 12288 4194304;cublasDgemmBatched;stream 0;cublasSgemm_v2;")
        dlclose(loaded)
        #expect(CUBLAS.workspaceBytes(computeCapability: 9) == 32 << 20 && CUBLAS.workspaceBytes(computeCapability: 8) == 4 << 20)
    }

    @Test("NVRTC reports a source that does not compile with its log, and a missing library by the paths it tried; so do the CUDA driver and cuBLAS")
    func errors() throws {
        #expect(throws: CUBLASError.unavailable(searched: ["/nonexistent/libcublas.so"])) { try CUBLAS.load(path: "/nonexistent/libcublas.so") }
        #expect(throws: CUBLASError.missingSymbol(library: "libm.so.6", symbol: "cublasCreate_v2")) { try CUBLAS.load(path: "libm.so.6") }
        if CUBLAS.candidates.allSatisfy({ dlopen($0, RTLD_NOW | RTLD_NOLOAD) == nil && dlopen($0, RTLD_LAZY) == nil }) {
            #expect(throws: CUBLASError.unavailable(searched: CUBLAS.candidates)) { try CUBLAS.load() }
        }
        if dlopen("libcuda.so.1", RTLD_NOW) == nil {
            #expect(throws: CUDADriverError.unavailable(searched: CUDADriver.candidates)) { try CUDADriver.load() }
        }
        #expect(throws: NVRTCError.unavailable(searched: ["/nonexistent/libnvrtc.so"])) { try NVRTC.load(path: "/nonexistent/libnvrtc.so") }
        guard let nvrtc = Self.nvrtc else { return }
        do {
            _ = try nvrtc.compile("extern \"C\" __global__ void k() { undeclared = 1; }", name: "broken.cu", target: .ptx(compute: 90))
            Issue.record("a broken source compiled")
        } catch let NVRTCError.compilationFailed(name, log) {
            #expect(name == "broken.cu" && log.contains("undeclared"), "\(log)")
        }
    }
}
