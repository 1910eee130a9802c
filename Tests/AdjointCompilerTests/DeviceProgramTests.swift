import Adjoint
@testable import AdjointCompiler
import AdjointExamples
import AdjointIR
import Foundation
import Testing

/// The generated CUDA kernels run where there is no GPU: compiled as C++ for this CPU and run
/// thread by thread (`HostKernelEmulator`), checked against the native CPU code run by run
/// (`GPUKernelCheck`, what `adjoint-gpu-check` runs on a GPU) and whole programs run on the
/// device (`DeviceProgram`) against the CPU's calls.
@Suite("Device programs and the kernel check, on the host emulation of the CUDA kernels")
struct DeviceProgramTests {
    /// Arguments of a program's types: uniform in [0.1, 2) (every operator's domain where there is one).
    static func arguments(_ program: CompiledProgram, seed: UInt64) throws -> [Tensor] {
        try program.argumentTypes.enumerated().map { k, type in
            try Tensor.uniform(type.shape, key: RandomKey(seed: seed + UInt64(k)), low: 0.1, high: 2, dtype: type.dtype)
        }
    }

    /// Uniform in [-1, 1).
    static func uniform(_ shape: [Int], _ seed: UInt64, _ dtype: DType) throws -> Tensor {
        try Tensor.uniform(shape, key: RandomKey(seed: seed), low: -1, high: 1, dtype: dtype)
    }

    static func bits(_ t: Tensor) -> [UInt64] {
        t.dtype == .float64 ? t.scalars(as: Double.self).map(\.bitPattern) : t.scalars(as: Float.self).map { UInt64($0.bitPattern) }
    }

    @Test("every chunked run's kernels, emulated, write what the CPU's native run writes, bit for bit, library functions included")
    func kernelCheck() throws {
        let emulator = try HostKernelEmulator()
        for (name, program) in try CUDASourceTests.programs() {
            let runs = try GPUKernelCheck.check(program, arguments: Self.arguments(program, seed: 7), device: emulator, repeats: 1)
            #expect(runs.count == program.native?.runs.count && !runs.isEmpty, "\(name)")
            for run in runs {
                #expect(run.compared >= run.elements && run.differing == 0, "\(name) run \(run.run): \(run.differing) of \(run.compared) differ")
            }
        }
    }

    @Test("whole programs run on the device equal the CPU's calls bit for bit: plain runs, chunked runs, sums combined on the device")
    func wholePrograms() throws {
        let emulator = try HostKernelEmulator()
        for (name, program) in try CUDASourceTests.programs() {
            // A frame held by the program, and one per call (the constants copied into each).
            for framePerCall in [false, true] {
                let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator), framePerCall: framePerCall)
                for seed in [UInt64(3), 11] {
                    let arguments = try Self.arguments(program, seed: seed)
                    let expected = try program(arguments), got = try device(arguments)
                    #expect(got.count == expected.count, "\(name)")
                    for (o, (a, b)) in zip(expected, got).enumerated() {
                        let same = a.valueType == b.valueType && Self.bits(a) == Self.bits(b)
                        #expect(same, "\(name) output \(o), seed \(seed), frame per call \(framePerCall)")
                    }
                }
            }
        }
    }

    @Test("a plain run that holds a chunked run's fused reduction runs its other instructions on the device as a run of their own")
    func plainRunsAcrossChunkedRuns() throws {
        // The heat step with its boundary as concatenated zeros: at 20,000 cells a plain run
        // starts at a fused mean and goes on past its chunked run (the CPU interprets the rest).
        func step(_ s: Tensor, _ p: Tensor) throws -> Tensor {
            let m = s.shape[0], zero = try Tensor.zeros([1], dtype: .float32)
            let left = try Tensor.concat([zero, s.slice([0..<(m - 1)])]), right = try Tensor.concat([s.slice([1..<m]), zero])
            return try s + p.slice([0..<1]) * (left + right - s * 2) + p.slice([1..<2]) * s.tanh()
        }
        let s = try Tensor.uniform([20000], key: RandomKey(seed: 5), low: -1, high: 1, dtype: .float32)
        let p = try Tensor([Float(0.25), 0.05], shape: [2])
        let program = try compile(native: .required) { (a: [Tensor]) in
            [try gradient(at: a[1]) { p in let t = try step(step(a[0], p), p); return try (t * t).mean() }]
        }.trace(for: [s, p]).program
        let native = try #require(program.native)
        let runMembers = Set(native.runs.flatMap { Array($0) })
        #expect(native.segments.contains { segment in segment.contains { runMembers.contains($0) } }, "the case this test is about")
        for segment in program.deviceSegments { #expect(!segment.contains { runMembers.contains($0) }) }
        let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: HostKernelEmulator()))
        let same = Self.bits(try device([s, p])[0]) == Self.bits(try program([s, p])[0])
        #expect(same)
    }

    @Test("a plain run's instructions dealt out over a block's threads, more elements than threads, equal the CPU's bit for bit")
    func parallelPlainRuns() throws {
        // Every instruction kind a plain run holds, each over more elements than the block has
        // threads (so each thread takes several) and some short enough to be unrolled: unary,
        // binary with a scalar, broadcasts and a transpose through index tables, products plus
        // sums, sums, means and maxima along contiguous and strided axes, a slice's gradient
        // accumulated in place.
        let threads = NativeCodeGenerator.blockThreads
        for dtype in [DType.float64, .float32] {
            let a = try Self.uniform([30, 40], 1, dtype), b = try Self.uniform([1, 40], 2, dtype), c = try Self.uniform([30, 1], 3, dtype)
            let program = try compile(native: .required) { (v: [Tensor]) in
                let x = try (v[0] * v[1] + v[2]).exp()
                let t = try x.transposed() * 2
                let rows = try t.sum(axes: [0]), columns = try x.mean(axes: [1]), peaks = try x.max(axes: [0])
                let g = try gradient(at: v[0]) { p in try (p.slice([0..<30, 0..<3]) * p.slice([0..<30, 0..<3])).sum() + (p * p).sum() }
                return [t, rows, columns, peaks, g, try (x - 1).sum()]
            }.trace(for: [a, b, c]).program
            let native = try #require(program.native)
            #expect(native.runs.isEmpty && !program.deviceSegments.isEmpty, "plain runs only")
            let sizes = program.deviceSegments.flatMap { $0.map { program.instructions[$0].n } }
            #expect(sizes.contains { $0 > 3 * threads } && sizes.contains { $0 <= NativeCodeGenerator.unrollLimit }, "\(sizes)")
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: HostKernelEmulator()))
            let expected = try program([a, b, c]), got = try device([a, b, c])
            for (o, (e, d)) in zip(expected, got).enumerated() {
                let same = e.valueType == d.valueType && Self.bits(e) == Self.bits(d)
                #expect(same, "\(dtype) output \(o)")
            }
        }
    }

    @Test("a custom operator's call in a program runs on the host in its place: operands out after the work before it, its result in before the work after it")
    func customOperatorsOnTheHost() throws {
        // x / (1 + |x|) with raw loops over the host values; its VJP with tensor operators.
        try CustomOperators.register(CustomOperator(name: "deviceprogram.softsign", forward: { xs in
            try Tensor(xs[0].scalars(as: Double.self).map { $0 / (1 + Swift.abs($0)) }, shape: xs[0].shape)
        }, vjp: { xs, _, g in let d = try xs[0].abs() + 1; return [try g / (d * d)] }), replacing: true)
        let x = try Self.uniform([40, 30], 31, .float64)
        let program = try compile(native: .required) { (v: [Tensor]) in
            let y = try Tensor.custom("deviceprogram.softsign", [v[0] * 2 + 1])
            let z = try Tensor.custom("deviceprogram.softsign", [v[0].transposed()])
            let g = try gradient(at: v[0]) { p in try (Tensor.custom("deviceprogram.softsign", [p * 3]) * p).sum() }
            return [try (y * v[0]).sum(axes: [0]), try z * 2, g]
        }.trace(for: [x]).program
        let calls = program.fallbacks.indices.filter { program.instructions[$0].kind == .fallback && program.fallbacks[$0].op == .customCall }
        #expect(calls.count == 3)
        for framePerCall in [false, true] {
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: HostKernelEmulator()), framePerCall: framePerCall)
            #expect(device.steps.filter { if case .host = $0 { true } else { false } }.count == calls.count)
            let expected = try program([x]), got = try device([x])
            for (o, (e, d)) in zip(expected, got).enumerated() {
                let same = e.valueType == d.valueType && Self.bits(e) == Self.bits(d)
                #expect(same, "output \(o), frame per call \(framePerCall)")
            }
        }
        // Through `compile(device:)`'s function, a train step's loss and gradient.
        let step = CompiledFunction<Tensor, Tensor>(pool: DeviceMemoryPool(device: try HostKernelEmulator())) { p in
            try gradient(at: p) { p in try Tensor.custom("deviceprogram.softsign", [p.exp()]).sum() }
        }
        let cpu = try gradient(at: x) { p in try Tensor.custom("deviceprogram.softsign", [p.exp()]).sum() }
        #expect(Self.bits(try step(x)) == Self.bits(cpu))
    }

    @Test("the launch plan: a one-block kernel per plain run, a kernel over each chunked run's elements, then its sums and their combination")
    func launches() throws {
        let chunk = Parallelism.elementChunk, n = 3 * chunk + 77
        // A sum over four chunks whose partials are 1e16, 1, -1e16, 1: the strict tree gives 0,
        // left to right 1. A value read after it on the device, and a small plain part.
        var values = [Double](repeating: 0, count: n)
        (values[0], values[chunk], values[2 * chunk], values[3 * chunk]) = (5e15, 0.5, -5e15, 0.5)
        let x = try Tensor(values, shape: [n])
        let program = try compile(native: .required) { (a: [Tensor]) in
            let s = try (a[0] + a[0]).sum()
            return [try a[0] * s, try (a[0].slice([0..<10]) + 1).mean()]
        }.trace(for: [x]).program
        let native = try #require(program.native)
        #expect(!native.segments.isEmpty && !native.runs.isEmpty)
        let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: HostKernelEmulator()))
        let kernels = device.launches.map(\.kernel)
        #expect(kernels.filter { $0.hasPrefix("adjoint_segment_") }.count == program.deviceSegments.count)
        for (r, reductions) in native.chunkedReductions.enumerated() {
            let name = NativeCodeGenerator.chunkedFunctionName(r)
            let at = try #require(kernels.firstIndex(of: name))
            let launch = device.launches[at]
            #expect(launch.blocks * launch.threads >= native.chunkedElements[r] && (launch.blocks - 1) * launch.threads < native.chunkedElements[r])
            if !reductions.isEmpty { #expect(Array(kernels[(at + 1)...].prefix(2)) == [name + "_sums", name + "_combine"]) }
        }
        for l in device.launches where l.kernel.hasPrefix("adjoint_segment_") { #expect(l.blocks == 1 && l.threads == NativeCodeGenerator.blockThreads) }
        for l in device.launches where l.kernel.hasSuffix("_combine") { #expect(l.blocks == 1 && l.threads == 1) }
        #expect(kernels.contains { $0.hasSuffix("_combine") })
        let expected = try program([x]), got = try device([x])
        #expect(expected[0].scalars(as: Double.self)[0] == 0, "the CPU's tree")
        for (o, (a, b)) in zip(expected, got).enumerated() {
            let same = Self.bits(a) == Self.bits(b)
            #expect(same, "output \(o)")
        }
    }

    @Test("programs the device cannot run, and calls it cannot take, are typed errors; programs without native code run instruction by instruction")
    func errors() throws {
        let emulator = try HostKernelEmulator()
        let a = try Tensor.uniform([64, 64], key: RandomKey(seed: 1), low: -1, high: 1)
        // Every operator the CPU's kernels take has a device form. A graph that is not one of
        // them (here a sum with an axis attribute, as a forged file could hold) is refused before
        // anything runs; the CPU refuses it when its interpreter reaches it.
        let type = ValueType(dtype: .float64, shape: [64, 64])
        let forged = Graph(inputs: [GraphInput(id: ValueID(0), type: type, role: .argument)],
                           nodes: [Node(op: .mul, inputs: [ValueID(0), ValueID(0)], outputs: [ValueID(1)], outputTypes: [type]),
                                   Node(op: .sum, attributes: .axis(1), inputs: [ValueID(1)], outputs: [ValueID(2)],
                                        outputTypes: [ValueType(dtype: .float64, shape: [64])])],
                           outputs: [ValueID(2)])
        let unusual = try CompiledProgram(forged, captures: [:], order: nil, boundaries: [], native: .required)
        #expect(throws: TensorError.self) { try unusual([a]) }
        do {
            _ = try DeviceProgram(unusual, pool: DeviceMemoryPool(device: emulator))
            Issue.record("a program with an interpreted operator without a device kernel ran on the device")
        } catch let DeviceError.noDeviceForm(instruction, operation) {
            #expect(operation == OpCode.sum.rawValue && unusual.instructions[instruction].kind == .fallback)
            #expect(DeviceError.noDeviceForm(instruction: instruction, operation: operation).description
                        == "instruction \(instruction) (\(OpCode.sum.rawValue)) has no device form")
        }
        // Without native code (`NativeCode.off`) each instruction is a kernel of its own: the same bits.
        let interpreted = try compile(native: .off) { (v: [Tensor]) in [try (v[0] * 2 + 1).sum(axes: [0]) * v[0].slice([0..<1])] }.trace(for: [a]).program
        #expect(interpreted.native == nil)
        let kernels = try DeviceProgram(interpreted, pool: DeviceMemoryPool(device: emulator))
        #expect(kernels.launches.allSatisfy { $0.kernel.hasPrefix("adjoint_elementwise_") || $0.kernel.hasPrefix("adjoint_reduce_") })
        let sameWithout = Self.bits(try kernels([a])[0]) == Self.bits(try interpreted([a])[0])
        #expect(sameWithout)
        let x = try Tensor.uniform([5000], key: RandomKey(seed: 2), low: -1, high: 1)
        let program = try compile(native: .required) { (v: [Tensor]) in [try v[0] * 2 + 1] }.trace(for: [x]).program
        let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
        #expect(throws: TensorError.invalidArgument(op: "DeviceProgram", detail: "called with 2 arguments; the program takes 1")) { try device([x, x]) }
        #expect(throws: TensorError.shapeMismatch(op: "DeviceProgram", detail: "argument 0 was compiled as f64[5000], got f32[5000]")) {
            try device([x.cast(to: .float32)])
        }
        let same = Self.bits(try device([x])[0]) == Self.bits(try program([x])[0])
        #expect(same)
    }

    /// The largest difference between `a` and `b` relative to the largest magnitude in `a`.
    static func relativeDifference(_ a: Tensor, _ b: Tensor) -> Double {
        let x = a.dtype == .float64 ? a.scalars(as: Double.self) : a.scalars(as: Float.self).map(Double.init)
        let y = b.dtype == .float64 ? b.scalars(as: Double.self) : b.scalars(as: Float.self).map(Double.init)
        guard x.count == y.count else { return .infinity }
        let scale = x.map(Swift.abs).max() ?? 0
        return zip(x, y).map { Swift.abs($0 - $1) }.max().map { $0 / Swift.max(scale, .leastNormalMagnitude) } ?? 0
    }

    @Test("matmuls run as GEMMs on the device: plain, transposed on either side, batched, broadcast, folded, empty; within rounding of the CPU",
          arguments: [DType.float64, .float32])
    func matmuls(dtype: DType) throws {
        let emulator = try HostKernelEmulator()
        func uniform(_ shape: [Int], _ seed: UInt64) throws -> Tensor { try Self.uniform(shape, seed, dtype) }
        // (operands, the product, the batch size of its GEMM: 0 where nothing is launched)
        let cases: [(String, [Tensor], ([Tensor]) throws -> Tensor, Int)] = [
            ("plain", [try uniform([7, 5], 1), try uniform([5, 3], 2)], { try $0[0].matmul($0[1]) }, 1),
            ("aᵀ", [try uniform([5, 7], 3), try uniform([5, 3], 4)], { try $0[0].matmul($0[1], transposeSelf: true) }, 1),
            ("bᵀ", [try uniform([7, 5], 5), try uniform([3, 5], 6)], { try $0[0].matmul($0[1], transposeOther: true) }, 1),
            ("aᵀbᵀ", [try uniform([5, 7], 7), try uniform([3, 5], 8)], { try $0[0].matmul($0[1], transposeSelf: true, transposeOther: true) }, 1),
            ("folded batch", [try uniform([4, 7, 5], 9), try uniform([5, 3], 10)], { try $0[0].matmul($0[1]) }, 1),
            ("batched", [try uniform([4, 7, 5], 11), try uniform([4, 5, 3], 12)], { try $0[0].matmul($0[1]) }, 4),
            ("broadcast batch, transposed", [try uniform([5, 7], 13), try uniform([2, 3, 3, 5], 14)],
             { try $0[0].matmul($0[1], transposeSelf: true, transposeOther: true) }, 6),
            ("empty", [try uniform([0, 5], 15), try uniform([5, 3], 16)], { try $0[0].matmul($0[1]) }, 0),
            ("k = 0", [try uniform([4, 0], 17), try uniform([0, 3], 18)], { try $0[0].matmul($0[1]) }, 1),
        ]
        for (name, operands, product, batch) in cases {
            // Arithmetic around the product: it reads and writes the frame between kernels.
            let program = try compile(native: .required) { (v: [Tensor]) in [try product([v[0] * 2, v[1] + 1]) * 3] }.trace(for: operands).program
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
            let gemms = device.steps.compactMap { if case let .gemm(g) = $0 { g } else { nil } }
            #expect(gemms.map(\.batch) == (batch == 0 ? [] : [batch]), "\(name)")
            #expect(gemms.allSatisfy { $0.invalidity == nil && $0.float64 == (dtype == .float64) }, "\(name)")
            let expected = try program(operands)[0], got = try device(operands)[0]
            let difference = Self.relativeDifference(expected, got)
            #expect(expected.shape == got.shape && difference <= (dtype == .float64 ? 1e-14 : 1e-6), "\(name): \(difference)")
            // With a frame per call: the products' operands rebased, a batch's arrays written per call.
            let perCall = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator), framePerCall: true)
            for _ in 0..<2 { #expect(Self.bits(try perCall(operands)[0]) == Self.bits(got), "\(name), frame per call") }
        }
        // A program that is one product: no kernels, one GEMM.
        let (a, b) = (try uniform([6, 5], 20), try uniform([5, 4], 21))
        let alone = try compile(native: .required) { (v: [Tensor]) in [try v[0].matmul(v[1])] }.trace(for: [a, b]).program
        let device = try DeviceProgram(alone, pool: DeviceMemoryPool(device: emulator))
        #expect(device.steps.count == 1 && device.launches.isEmpty)
        #expect(Self.relativeDifference(try alone([a, b])[0], try device([a, b])[0]) <= (dtype == .float64 ? 1e-14 : 1e-6))
    }

    @Test("reductions over axes too large for a plain run are kernels of their own: the CPU's strict results bit for bit",
          arguments: [DType.float64, .float32])
    func axisReductions(dtype: DType) throws {
        let emulator = try HostKernelEmulator()
        func uniform(_ shape: [Int], _ seed: UInt64) throws -> Tensor { try Self.uniform(shape, seed, dtype) }
        // (operand, the reduction): strided axes of 1, 5 and 7 blocks of 64 rows (the fixed tree's
        // uneven shapes), contiguous axes within one 2¹⁵-element block and over 3 and 5 of them;
        // sums, means, maxima, minima and log-sum-exps.
        let cases: [(String, Tensor, (Tensor) throws -> Tensor)] = [
            ("sum, axis 0, 300 rows", try uniform([300, 700], 1), { try $0.sum(axes: [0]) }),
            ("mean, axis 0, 420 rows", try uniform([420, 300], 2), { try $0.mean(axes: [0]) }),
            ("max, axis 1 of 3, 130 rows", try uniform([3, 130, 400], 3), { try $0.max(axes: [1]) }),
            ("min, axis 0, 40 rows", try uniform([40, 2000], 4), { try $0.min(axes: [0]) }),
            ("sum, axis 1, 70,000 long", try uniform([3, 70000], 5), { try $0.sum(axes: [1]) }),
            ("mean, axis 1, 140,000 long", try uniform([2, 140_000], 6), { try $0.mean(axes: [1]) }),
            ("max, axis 1, 5,000 long", try uniform([20, 5000], 7), { try $0.max(axes: [1]) }),
            ("sum, axis 1, 30,000 long", try uniform([4, 30000], 8), { try $0.sum(axes: [1]) }),
            ("sum over an empty axis", try uniform([0, 70000], 9), { try $0.sum(axes: [0]) }),
            ("log-sum-exp, axis 0, 300 rows", try uniform([300, 700], 11), { try $0.logsumexp(axes: [0]) }),
            ("log-sum-exp, axis 1, 70,000 long", try uniform([3, 70000], 12), { try $0.logsumexp(axes: [1]) }),
            ("log-sum-exp, axis 1, 5,000 long", try uniform([20, 5000], 13), { try $0.logsumexp(axes: [1]) }),
            // Rows of +∞ and of −∞: a maximum that is not finite is the result.
            ("log-sum-exp of infinite rows", try uniform([2, 5000], 14).abs() * Tensor([Double.infinity, -Double.infinity]).reshaped([2, 1]).cast(to: dtype),
             { try $0.logsumexp(axes: [1]) }),
            // Sums and means split over threads (NativeCodeGenerator.sumSplit): two leaves; a last
            // block of 10 elements (one leaf), and of 100 (its paths end above the leaves' depth).
            ("split sum, 4,096 long", try uniform([1, 4096], 15), { try $0.sum(axes: [1]) }),
            ("split mean, 32,778 long", try uniform([3, 32778], 16), { try $0.mean(axes: [1]) }),
            ("split sum, 32,868 long", try uniform([2, 32868], 17), { try $0.sum(axes: [1]) }),
            ("split sum, 100,003 long", try uniform([100_003], 18), { try $0.sum() }),
        ]
        for (name, x, reduction) in cases {
            // Arithmetic around the reduction: its operand is computed on the device, its result read there.
            // (The split cases without native code: there, one row's sum is a chunked run's.)
            let program = try compile(native: name.hasPrefix("split") ? .off : .required) { (v: [Tensor]) in [try reduction(v[0] * 2 + 1) * 3] }
                .trace(for: [x]).program
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
            #expect(device.launches.contains { $0.kernel.hasPrefix("adjoint_reduce_") }, "\(name): the case this test is about")
            // Sums and means along at least 4,096 contiguous elements are split.
            let split = name.hasPrefix("split") || name.hasPrefix("sum, axis 1") || name.hasPrefix("mean, axis 1")
            #expect(device.launches.contains { $0.kernel.hasSuffix("_leaves") } == split, "\(name): split or not")
            let same = Self.bits(try device([x])[0]) == Self.bits(try program([x])[0])
            #expect(same, "\(name)")
        }
        // A program of reductions alone (no native runs at all): kernels of their own still.
        let x = try uniform([420, 300], 10)
        let alone = try compile(native: .required) { (v: [Tensor]) in [try v[0].sum(axes: [0]), try v[0].mean(axes: [0])] }.trace(for: [x]).program
        let device = try DeviceProgram(alone, pool: DeviceMemoryPool(device: emulator))
        #expect(device.launches.map(\.kernel).allSatisfy { $0.hasPrefix("adjoint_reduce_") } && device.launches.count == 2)
        let same = try zip(device([x]), alone([x])).allSatisfy { Self.bits($0) == Self.bits($1) }
        #expect(same)
    }

    @Test("elementwise instructions read through index tables, too large for a plain run and in no chunked run, are kernels of their own: the CPU's bits")
    func tableKernels() throws {
        let emulator = try HostKernelEmulator()
        let x = try Tensor.uniform([300, 400], key: RandomKey(seed: 1), low: -1, high: 1)
        let row = try Tensor.uniform([400], key: RandomKey(seed: 2), low: -1, high: 1)
        let column = try Tensor.uniform([300, 1], key: RandomKey(seed: 3), low: -1, high: 1)
        let programs: [(String, ([Tensor]) throws -> [Tensor])] = [
            ("broadcast rows and columns", { v in [try (v[0] + v[1]) * v[2] - v[1] / v[2]] }),
            ("a transpose's gather, a product and a sum", { v in [try v[0].transposed().multiplied(by: v[2].reshaped([1, 300]), adding: v[0].transposed())] }),
            // The gradient of slices: each added into the running total in place.
            ("gradient through slices", { v in
                [try gradient(at: v[0]) { x in try (x.slice([0..<150]) * 2).sum() + (x.slice([100..<300]) * v[1]).sum() }]
            }),
        ]
        for (name, f) in programs {
            let program = try compile(native: .required) { (v: [Tensor]) in try f(v) }.trace(for: [x, row, column]).program
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
            #expect(device.launches.contains { $0.kernel.hasPrefix("adjoint_elementwise_") }, "\(name): the case this test is about")
            let same = try zip(device([x, row, column]), program([x, row, column])).allSatisfy { Self.bits($0) == Self.bits($1) }
            #expect(same, "\(name)")
        }
        // Compact tables (a rule, not an entry per element: one-dimensional shifts, pads,
        // concatenations and scalar broadcasts over more elements than a plain run takes), which
        // programs without native code keep as instructions of their own.
        let u = try Tensor.uniform([5000], key: RandomKey(seed: 4), low: -1, high: 1)
        let compact = try compile(native: .off) { (v: [Tensor]) in
            let inner = try v[0].slice([1..<4999])
            return [try v[0].slice([2..<5000]) - v[0].slice([0..<4998]) * inner, try v[0].padded(low: [3], high: [1], value: 0.5) * 2,
                    try Tensor.concat([v[0], Tensor.zeros([7])]) + v[1].slice([0..<1]).reshaped([]),
                    try gradient(at: v[0]) { x in try (x.slice([0..<4990]) * 2).sum() + (x.slice([10..<5000]) * x.slice([0..<4990])).sum() },
                    try v[0].padded(low: [1], high: [4], value: -2),
                    // Edges repeated: a rule whose entries before and after its run differ.
                    try Tensor.concat([v[0].slice([0..<1]), v[0], v[0].slice([4999..<5000])]) * 3,
                    try Tensor.concat([v[0].slice([4999..<5000]), v[0], v[0].slice([0..<1])])]
        }.trace(for: [u, row]).program
        let kinds = Set(compact.instructions.filter(\.compact).map(\.kind))
        #expect(compact.native == nil && kinds == [.gather, .binary], "\(kinds)")
        let device = try DeviceProgram(compact, pool: DeviceMemoryPool(device: emulator))
        #expect(compact.instructions.indices.filter { compact.instructions[$0].compact }.allSatisfy { k in
            device.launches.contains { $0.kernel == NativeCodeGenerator.elementwiseName(k) }
        })
        for (o, (a, b)) in try zip(device([u, row]), compact([u, row])).enumerated() {
            let same = a.shape == b.shape && Self.bits(a) == Self.bits(b)
            #expect(same, "compact tables, output \(o)")
        }
    }

    @Test("comparisons, selections, softmaxes, cross-entropy, one-hot, gathers and scatter-adds, which the CPU interprets, are kernels of their own (broadcasting; along any axis): the CPU's bits",
          arguments: [DType.float64, .float32])
    func interpretedKernels(dtype: DType) throws {
        let emulator = try HostKernelEmulator()
        func uniform(_ shape: [Int], _ seed: UInt64) throws -> Tensor { try Self.uniform(shape, seed, dtype) }
        let x = try uniform([30, 40], 1), row = try uniform([40], 2), column = try uniform([30, 1], 3)
        let labels = try Tensor((0..<30).map { Int64($0 % 7) }).reshaped([30, 1]), classes = Tensor((0..<40).map { Int64($0 % 5) })
        let targets = Tensor((0..<30).map { Int32(($0 * 13) % 40) })
        // Five of `Summation`'s blocks. Row 0's shifted exponentials: 1 in block 0, and in each
        // other block one value b of 0.38 units in the last place of 1 (zeros elsewhere). Its sum
        // is then 1 + ulp in the strict tree ((1 + b) + (b + b)) + b, 1 left to right and
        // 1 + 2 ulp right to left; its loss is that sum's logarithm (label 0), so each order
        // gives other bits. Rows 1 and 2 are uniform.
        let wideClasses = 4 * Summation.blockSize + 7, ulp = dtype == .float64 ? Double.ulpOfOne : Double(Float.ulpOfOne)
        var tied = [Double](repeating: -1000, count: wideClasses)
        tied[0] = 0
        for b in 1...4 { tied[b * Summation.blockSize] = Foundation.log(0.38 * ulp) }
        let wide = try Tensor.concat([try Tensor(tied).reshaped([1, wideClasses]).cast(to: dtype), try uniform([2, wideClasses], 5) * 12])
        // The same sums for a mean squared error: differences of 1 and of √b, the rest 0.
        let squares = try Tensor(tied.map { $0 == 0 ? 1 : $0 == -1000 ? 0 : Foundation.sqrt(0.38 * ulp) }).cast(to: dtype)
        // (name, arguments, the kernels the case is about, the function)
        let programs: [(String, [Tensor], String, ([Tensor]) throws -> [Tensor])] = [
            ("every comparison, against a row, a column and a single value", [x, row, column], "adjoint_select_", { v in
                [try v[0].equal(v[1]), try v[0].notEqual(v[2]), try v[0].less(v[1]), try v[0].lessEqual(v[2]),
                 try v[0].greater(0.25), try v[2].greaterEqual(v[1])]
            }),
            // Ties: x against its own first row (so that row's elements are equal), and against itself.
            ("ties: equal elements compare equal, not less, not greater", [x, try x.slice([0..<1])], "adjoint_select_", { v in
                [try v[0].equal(v[1]), try v[0].lessEqual(v[1]), try v[0].greaterEqual(v[0]), try v[0].less(v[0])]
            }),
            ("where over broadcast branches and conditions", [x, row, column], "adjoint_select_", { v in
                [try Tensor.select(v[0].greater(v[1]), v[0], v[2]), try Tensor.select(v[2].less(0), v[1], v[2]),
                 try Tensor.select(v[0].less(v[2]), 0.0, v[0])]
            }),
            ("relu's derivative, a where on a comparison with zero", [x, row], "adjoint_select_", { v in
                [try gradient(at: v[0]) { x in try (x.relu() * v[1]).sum() }]
            }),
            ("integer labels compared, bool masks compared for equality", [labels, classes, x], "adjoint_select_", { v in
                let hits = try v[0].equal(v[1])
                return [hits, try hits.notEqual(v[2].greater(0)), try v[0].greater(v[1])]
            }),
            ("softmax and log-softmax along each axis, and a log-softmax's gradient", [x, row], "adjoint_softmax_", { v in
                [try v[0].softmax(axis: 1), try v[0].logSoftmax(axis: 0), try gradient(at: v[0]) { x in try (x.logSoftmax(axis: 1) * v[1]).sum() }]
            }),
            ("cross-entropy with int32 labels, its gradient (softmax less one-hot)", [try x * 30, targets], "adjoint_crossentropy_", { v in
                [try v[0].crossEntropy(labels: v[1]), try gradient(at: v[0]) { x in try x.crossEntropy(labels: v[1]).mean() }]
            }),
            ("cross-entropy over more classes than one of Summation's blocks, and its gradient",
             [wide, Tensor([0, Int64(wideClasses - 1), 70_001])],
             "adjoint_crossentropy_", { v in
                [try v[0].crossEntropy(labels: v[1]), try gradient(at: v[0]) { x in try x.crossEntropy(labels: v[1]).sum() }]
            }),
            ("mean squared error within one block and over five, and its gradient", [x, try uniform([30, 40], 6), squares, try squares * 0],
             "adjoint_mse_", { v in
                [try v[0].meanSquaredError(v[1]), try v[2].meanSquaredError(v[3]), try gradient(at: v[0]) { x in try x.meanSquaredError(v[1]) }]
            }),
            // Index tensors as arguments (not constants the compiler folds into tables), with repeats.
            ("gathers with index tensors along either axis, and their gradients (scatter-adds)",
             [x, Tensor([Int32](arrayLiteral: 3, 0, 3, 29, 3)), try Tensor([Int64](arrayLiteral: 39, 0, 5, 5, 12, 1)).reshaped([3, 2]), try labels.reshaped([30]),
              try uniform([5, 40], 4)],
             "adjoint_gather_", { v in
                [try v[0].gather(v[1]), try v[0].gather(v[2], axis: 1), try v[3].gather(v[1]),
                 try gradient(at: v[0]) { x in try (x.gather(v[1]) * x.gather(v[1])).sum() + x.gather(v[2], axis: 1).sum() },
                 // Three distinct updates added at row 3: their order shows in the rounding.
                 try v[0].scatterAdd(v[1], v[4])]
            }),
            // Axes that are not one run: read through strides in the CPU's permuted order. Rows of
            // 40,000 elements span two of Summation's blocks; a broadcast bias's gradient sums over
            // axes 0 and 2; a log-sum-exp over an empty axis is -∞.
            ("reductions over axes that are not one run, and an empty log-sum-exp",
             [try uniform([4, 5, 3, 6], 7), try uniform([2, 200, 3, 200], 8), try uniform([1, 5, 1], 9), try uniform([3, 0, 4], 10)],
             "adjoint_reduce_", { v in
                [try v[0].sum(axes: [0, 2]), try v[0].mean(axes: [1, 3], keepDims: true), try v[0].max(axes: [0, 3]), try v[0].min(axes: [0, 2, 3]),
                 try v[0].logsumexp(axes: [1, 3]), try (v[0] * 400).logsumexp(axes: [0, 2]), try v[1].sum(axes: [1, 3]), try v[1].logsumexp(axes: [1, 3]),
                 try gradient(at: v[2]) { b in try (v[0].slice(starts: [0, 0, 0, 0], ends: [4, 5, 3, 1]).reshaped([4, 5, 3]) * b).sum() },
                 try v[3].logsumexp(axes: [1]), try v[3].sum(axes: [1])]
            }),
            // Elements the planner does not alias or gather (integers, bools, 16-bit floats): each
            // layout operator copies words. The pads' values in each dtype, -3, 1.5 and true.
            ("layout operators on int64, int32, bool, float16 and bfloat16 elements", [try labels.reshaped([6, 5]), targets, x], "adjoint_layout_", { v in
                let mask = try v[0].greater(2), half = try v[2].cast(to: .float16), brain = try v[2].cast(to: .bfloat16)
                return [try v[0].transposed(), try v[0].reshaped([5, 6]).slice(starts: [1, 2], ends: [4, 6]), try v[0].broadcast(to: [2, 6, 5]),
                        try Tensor.concat([v[0], v[0].slice(starts: [0, 1], ends: [6, 3]), v[0]], axis: 1),
                        try Tensor.stack([v[1], v[1].padded(low: [2], high: [0]).slice(starts: [0], ends: [30])], axis: 1),
                        try Tensor.stack([v[1], v[1]], axis: 0), try v[0].padded(low: [1, 0], high: [2, 3], value: -3),
                        try mask.transposed(), try mask.padded(low: [0, 1], high: [1, 0], value: 1), try Tensor.concat([mask, mask], axis: 0),
                        try half.transposed().slice(starts: [3, 1], ends: [40, 29]), try brain.padded(low: [1, 1], high: [0, 2], value: 1.5),
                        try Tensor.stack([half, half.transposed([1, 0]).transposed()], axis: 2), try brain.broadcast(to: [2, 30, 40])]
            }),
            ("one-hot of int64 labels in float64, float32, int32 and bool", [try labels.reshaped([30])], "adjoint_onehot_", { v in
                [try v[0].oneHot(depth: 9), try v[0].oneHot(depth: 7, dtype: .float32), try v[0].oneHot(depth: 7, dtype: .int32),
                 try v[0].oneHot(depth: 8, dtype: .bool)]
            }),
        ]
        for (name, arguments, kernel, f) in programs {
            let program = try compile(native: .required) { (v: [Tensor]) in try f(v) }.trace(for: arguments).program
            let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
            #expect(device.launches.contains { $0.kernel.hasPrefix(kernel) }, "\(name): the case this test is about")
            // A scatter-add's base goes into its output as one device copy, before its kernel.
            let scatters = device.launches.filter { $0.kernel.hasPrefix("adjoint_scatteradd_") }.count
            #expect(device.steps.filter { if case .copy = $0 { true } else { false } }.count == scatters, "\(name)")
            for (o, (a, b)) in try zip(device(arguments), program(arguments)).enumerated() {
                let same = a.valueType == b.valueType && a.scalars(as: Bool.self) == b.scalars(as: Bool.self)
                    && (a.dtype.isFloatingPoint ? Self.bits(a) == Self.bits(b) : a.scalars(as: Int64.self) == b.scalars(as: Int64.self))
                #expect(same, "\(name) output \(o)")
            }
        }
    }

    @Test("a mean squared error is a split sum: leaves of its blocks' pairwise trees, combined up the trees and across the blocks in the strict order: the CPU's bits")
    func meanSquaredErrorSplit() throws {
        let emulator = try HostKernelEmulator()
        // Six of `Summation`'s blocks. Uniform differences, and differences whose squares sum to 1
        // in block 0 and to 0.38 units in the last place of 1 in each of blocks 1 to 3: the sum is
        // 1 + ulp in the tree, 1 left to right. Then one leaf (3,000 elements), and none.
        let n = 5 * Summation.blockSize + 3, ulp = [DType.float64: Double.ulpOfOne, .float32: Double(Float.ulpOfOne)]
        let cases = try [DType.float64, .float32].flatMap { dtype -> [(Tensor, Tensor)] in
            var tied = [Double](repeating: 0, count: n)
            tied[0] = 1
            for b in 1...3 { tied[b * Summation.blockSize] = Foundation.sqrt(0.38 * ulp[dtype]!) }
            return [(try Self.uniform([n], 11, dtype) * 4, try Self.uniform([n], 12, dtype)),
                    (try Tensor(tied).cast(to: dtype), try Tensor.full([n], 0, dtype: dtype)),
                    (try Self.uniform([3000], 13, dtype), try Self.uniform([3000], 14, dtype)),
                    (try Tensor.full([0], 0, dtype: dtype), try Tensor.full([0], 0, dtype: dtype))]
        }
        for (a, b) in cases {
            let program = try compile(native: .off) { (v: [Tensor]) in [try v[0].meanSquaredError(v[1])] }.trace(for: [a, b]).program
            let expected = try a.meanSquaredError(b)
            for framePerCall in [false, true] {
                let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator), framePerCall: framePerCall)
                #expect(framePerCall || device.launches.map(\.kernel).allSatisfy { $0.hasPrefix("adjoint_mse_") }, "\(a.dtype) [\(a.elementCount)]")
                #expect(Self.bits(try device([a, b])[0]) == Self.bits(expected), "\(a.dtype) [\(a.elementCount)], frame per call \(framePerCall)")
            }
        }
    }

    @Test("an interpreted instruction whose output shares bytes with an operand gets no device kernel (its threads would race)")
    func overlappingRegions() {
        let type = ValueType(dtype: .float64, shape: [4, 8])   // 256 bytes
        func softmax(output: Int) -> CompiledProgram.Fallback {
            CompiledProgram.Fallback(op: .softmax, attributes: .axis(1), inputs: [.init(offset: 0, type: type)], output: .init(offset: output, type: type))
        }
        #expect(NativeCodeGenerator.interpretedKernel(softmax(output: 256), 0)?.threads == 4)
        #expect(NativeCodeGenerator.interpretedKernel(softmax(output: 0), 0) == nil)
        #expect(NativeCodeGenerator.interpretedKernel(softmax(output: 248), 0) == nil)
    }

    @Test("an index out of range on the device (cross-entropy's labels, one-hot's and a gather's indices) is the CPU's error, for the first one in program order")
    func indexChecks() throws {
        let emulator = try HostKernelEmulator()
        let x = try Tensor.uniform([6, 5], key: RandomKey(seed: 1), low: -1, high: 1)
        let step = compile(native: .required) { (v: [Tensor]) -> [Tensor] in
            [try v[0].crossEntropy(labels: v[1]).sum(), try v[2].oneHot(depth: 4), try v[0].gather(v[3], axis: 1)]
        }
        let good = [x, Tensor([Int64](arrayLiteral: 0, 1, 2, 3, 4, 0)), Tensor([Int32](arrayLiteral: 3, 2, 1)), Tensor([Int64](arrayLiteral: 4, 0))]
        let program = try step.trace(for: good).program
        let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: emulator))
        #expect(device.launches.filter { $0.kernel.hasPrefix("adjoint_check_") }.count == 3)
        let agree = try zip(device(good), program(good)).allSatisfy { $0.scalars(as: Double.self) == $1.scalars(as: Double.self) }
        #expect(agree)
        let cases: [([Tensor], TensorError)] = [
            ([x, Tensor([Int64](arrayLiteral: 0, 1, 5, 3, -1, 0)), good[2], good[3]],
             .indexOutOfRange(op: OpCode.crossEntropyWithLogits.rawValue, index: 5, bound: 5, position: "indices element 2 (axis 1)")),
            ([x, good[1], Tensor([Int32](arrayLiteral: 3, -2, 4)), good[3]],
             .indexOutOfRange(op: OpCode.oneHot.rawValue, index: -2, bound: 4, position: "indices element 1 (axis 1)")),
            ([x, good[1], good[2], Tensor([Int64](arrayLiteral: 0, 5))],
             .indexOutOfRange(op: OpCode.gather.rawValue, index: 5, bound: 5, position: "indices element 1 (axis 1)")),
            // Both: the first instruction's.
            ([x, Tensor([Int64](arrayLiteral: 0, 1, 2, 3, 4, 9)), Tensor([Int32](arrayLiteral: 4, 0, 0)), good[3]],
             .indexOutOfRange(op: OpCode.crossEntropyWithLogits.rawValue, index: 9, bound: 5, position: "indices element 5 (axis 1)")),
        ]
        for (arguments, error) in cases {
            #expect(throws: error) { try program(arguments) }
            #expect(throws: error) { try device(arguments) }
        }
        // After a failed call, a good one succeeds (the checks rewrite their words every call).
        #expect(try device(good)[0].scalars(as: Double.self) == program(good)[0].scalars(as: Double.self))
    }

    @Test("an MLP's train step (products forward and transposed backward, biases, their gradients reduced over the batch; tanh and squared error, relu and squared error, relu and cross-entropy) runs whole on the device within rounding of the CPU",
          arguments: ["tanh", "relu", "relu, cross-entropy"])
    func mlpTrainStep(model: String) throws {
        // Batch 256 × 300 hidden: the first bias's gradient reduces 76,800 elements over the batch
        // axis, beyond a plain run (a reduction kernel of its own).
        let x = try Tensor.uniform([256, 20], key: RandomKey(seed: 1), low: -1, high: 1, dtype: .float32)
        let labels = Tensor((0..<256).map { Int64(($0 * 7) % 4) })
        let parameters = try [[20, 300], [300], [300, 4], [4]].enumerated().map { k, shape in
            try Tensor.uniform(shape, key: RandomKey(seed: 2 + UInt64(k)), low: -0.3, high: 0.3, dtype: .float32)
        }
        let relu = model.hasPrefix("relu"), crossEntropy = model.hasSuffix("cross-entropy")
        let step = compile(native: .required) { (v: [Tensor]) -> [Tensor] in
            let (loss, g) = try valueWithGradient(at: Array(v[2...])) { w in
                let hidden = try v[0].matmul(w[0]) + w[1]
                let y = try ((relu ? hidden.relu() : hidden.tanh()).matmul(w[2]) + w[3]) * 0.5
                return try crossEntropy ? y.crossEntropy(labels: v[1]).mean() : (y * y).mean()
            }
            return [loss] + (try zip(v[2...], g).map { try $0 - $1 * 0.1 })
        }
        let arguments = [x, labels] + parameters
        let program = try step.trace(for: arguments).program
        let device = try DeviceProgram(program, pool: DeviceMemoryPool(device: try HostKernelEmulator()))
        #expect(device.steps.filter { if case .gemm = $0 { true } else { false } }.count >= 4)
        #expect(device.launches.contains { $0.kernel.hasPrefix("adjoint_reduce_") })
        #expect(device.launches.contains { $0.kernel.hasPrefix("adjoint_select_") } == relu)
        #expect(device.launches.contains { $0.kernel.hasPrefix("adjoint_crossentropy_") } == crossEntropy)
        let expected = try program(arguments), got = try device(arguments)
        for (o, (a, b)) in zip(expected, got).enumerated() {
            #expect(Self.relativeDifference(a, b) <= 1e-6, "output \(o)")
        }
    }

    @Test("a matrix product BLAS would refuse is a typed error before anything runs")
    func invalidProducts() throws {
        let emulator = try HostKernelEmulator()
        let memory = try emulator.allocate(64 * 8)
        defer { emulator.release(memory) }
        let good = GEMM(float64: true, transposeA: false, transposeB: false, m: 2, n: 2, k: 2, lda: 2, ldb: 2, ldc: 2,
                        a: memory, b: memory + 32, c: memory + 64, batch: 1, arrays: 0)
        try emulator.gemm(good, on: nil)
        var bad = good
        bad.lda = 1
        #expect(throws: KernelDeviceError.invalidGEMM("lda 1 < 2")) { try emulator.gemm(bad, on: nil) }
        #expect(throws: KernelDeviceError.invalidGEMM("ldb 2 < 3")) { try emulator.gemm(GEMM(float64: true, transposeA: false, transposeB: true, m: 2, n: 3, k: 2,
                                                                                              lda: 2, ldb: 2, ldc: 2, a: memory, b: memory, c: memory, batch: 1, arrays: 0), on: nil) }
        bad = good; bad.m = -1
        #expect(throws: KernelDeviceError.invalidGEMM("m -1, n 2, k 2, batch 1: must be non-negative (batch ≥ 1)")) { try emulator.gemm(bad, on: nil) }
        bad = good; bad.batch = 2
        #expect(throws: KernelDeviceError.invalidGEMM("a batch of 2 without address arrays")) { try emulator.gemm(bad, on: nil) }
        bad = good; bad.c = 0
        #expect(throws: KernelDeviceError.invalidGEMM("product 0 of the batch has a null address")) { try emulator.gemm(bad, on: nil) }
        bad = good; bad.ldc = 1 << 40
        #expect(throws: KernelDeviceError.invalidGEMM("a dimension exceeds 32 bits")) { try emulator.gemm(bad, on: nil) }
        #expect(throws: KernelDeviceError.foreignStream("the stream")) { try emulator.gemm(good, on: OtherStream()) }
    }

    @Test("the emulator reports a source its compiler rejects, an unknown kernel and a launch no generated kernel takes")
    func emulatorErrors() throws {
        let emulator = try HostKernelEmulator()
        do {
            _ = try emulator.load("extern \"C\" __global__ void k(unsigned char *base) { undeclared = 1; }")
            Issue.record("a broken source compiled")
        } catch let KernelDeviceError.compilationFailed(_, output) {
            #expect(output.contains("undeclared"), "\(output)")
        }
        let module = try emulator.load("extern \"C\" __global__ void k(unsigned char *base) { base[blockIdx.x * blockDim.x + threadIdx.x] = (unsigned char)(blockIdx.x * 10 + threadIdx.x); }")
        #expect(throws: KernelDeviceError.noKernel("missing")) { try module.launch("missing", blocks: 1, threads: 1, arguments: [0]) }
        #expect(throws: KernelDeviceError.badArguments(kernel: "k", count: 3)) { try module.launch("k", blocks: 1, threads: 1, arguments: [0, 0, 0]) }
        // Neither load, the failed one nor the loaded one, leaves its files behind.
        let prefix = URL(fileURLWithPath: emulator.directoryPrefix)
        let left = try FileManager.default.contentsOfDirectory(atPath: prefix.deletingLastPathComponent().path).filter { $0.hasPrefix(prefix.lastPathComponent) }
        #expect(left.isEmpty, "\(left)")
        let memory = try emulator.allocate(6)
        defer { emulator.release(memory) }
        try module.launch("k", blocks: 2, threads: 3, arguments: [memory])
        var bytes = [UInt8](repeating: 0, count: 6)
        try bytes.withUnsafeMutableBytes { try emulator.copy(memory, toHost: $0.baseAddress!, bytes: 6) }
        #expect(bytes == [0, 1, 2, 10, 11, 12])
        // A stream or event of another device is refused.
        let other = try HostKernelEmulator(), stream = try emulator.makeStream()
        #expect(throws: KernelDeviceError.foreignStream("the stream")) { try module.launch("k", blocks: 1, threads: 1, arguments: [memory], on: OtherStream()) }
        #expect(throws: KernelDeviceError.foreignStream("the event")) { try stream.wait(ManualEvent()) }
        try module.launch("k", blocks: 1, threads: 1, arguments: [memory], on: try other.makeStream())
        let start = try stream.record(), end = try stream.record()
        #expect(try end.isComplete() && end.milliseconds(since: start) >= 0)
    }
}

/// A device over the host emulation that counts what reaches it and refuses allocations beyond a
/// byte budget (the out-of-memory path of the pool).
final class CountingDevice: KernelDevice {
    struct OutOfMemory: Error, Equatable { var bytes: Int }
    let base: HostKernelEmulator
    let budget: Int
    var allocations = 0, releases = 0, held: [UInt64: Int] = [:]
    init(budget: Int = .max) throws { (base, self.budget) = (try HostKernelEmulator(), budget) }
    var name: String { "counting " + base.name }
    func load(_ source: String) throws -> any KernelModule { try base.load(source) }
    func allocate(_ bytes: Int) throws -> UInt64 {
        guard held.values.reduce(0, +) + bytes <= budget else { throw OutOfMemory(bytes: bytes) }
        allocations += 1
        let address = try base.allocate(bytes)
        held[address] = bytes
        return address
    }
    func release(_ address: UInt64) {
        releases += 1
        held[address] = nil
        base.release(address)
    }
    func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws { try base.copy(source, toDevice: destination, bytes: bytes) }
    func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws { try base.copy(source, toHost: destination, bytes: bytes) }
    func synchronize() throws {}
    func makeStream() throws -> any KernelStream { try base.makeStream() }
    func gemm(_ product: GEMM, on stream: (any KernelStream)?) throws { try base.gemm(product, on: stream) }
}

/// A stream no device made.
final class OtherStream: KernelStream {
    func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws {}
    func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws {}
    func copy(device source: UInt64, toDevice destination: UInt64, bytes: Int) throws {}
    func record() throws -> any KernelEvent { ManualEvent() }
    func wait(_ event: any KernelEvent) throws {}
    func synchronize() throws {}
}

/// An event that completes when a test says so (@unchecked Sendable: one test's thread uses it).
final class ManualEvent: KernelEvent, @unchecked Sendable {
    var complete = false
    func isComplete() throws -> Bool { complete }
    func synchronize() throws { complete = true }
    func milliseconds(since start: any KernelEvent) throws -> Double { 0 }
}

@Suite("The caching device allocator")
struct DeviceMemoryPoolTests {
    @Test("a released block is handed out again for its size class; the counters are the CPU pool's")
    func reuse() throws {
        let device = try CountingDevice(), pool = DeviceMemoryPool(device: device)
        let a = try pool.allocate(1000)
        #expect(a.capacity == 1024)
        pool.release(a.address, capacity: a.capacity)
        let b = try pool.allocate(900), c = try pool.allocate(5000)
        #expect(b.address == a.address && b.capacity == 1024 && c.capacity == StoragePool.capacity(for: 5000))
        #expect(device.allocations == 2 && device.releases == 0)
        #expect(pool.statistics == StoragePool.Statistics(liveBytes: 1024 + c.capacity, peakBytes: 1024 + c.capacity, allocationCount: 3,
                                                          systemAllocationCount: 2, cachedBytes: 0))
        pool.release(c.address, capacity: c.capacity)
        #expect(pool.statistics.liveBytes == 1024 && pool.statistics.cachedBytes == c.capacity && pool.statistics.peakBytes == 1024 + c.capacity)
        pool.resetPeak()
        #expect(pool.statistics.peakBytes == 1024)
        pool.release(b.address, capacity: b.capacity)
        pool.trim()
        #expect(pool.statistics.cachedBytes == 0 && device.releases == 2 && device.held.isEmpty)
    }

    @Test("above the cache limit released blocks go back to the device; a refused allocation empties the cache and tries once more")
    func limits() throws {
        let device = try CountingDevice(budget: 5 << 19), pool = DeviceMemoryPool(device: device, cacheLimit: 1 << 20)
        let small = try pool.allocate(1 << 20), large = try pool.allocate(1 << 20)
        pool.release(small.address, capacity: small.capacity)
        pool.release(large.address, capacity: large.capacity)   // over the limit: freed
        #expect(device.releases == 1 && pool.statistics.cachedBytes == 1 << 20)
        // 2 MiB more fits only once the cached MiB is given back.
        let big = try pool.allocate(2 << 20)
        #expect(device.releases == 2 && pool.statistics.cachedBytes == 0 && pool.statistics.liveBytes == 2 << 20)
        #expect(throws: CountingDevice.OutOfMemory(bytes: 2 << 20)) { try pool.allocate(2 << 20) }
        #expect(pool.statistics.liveBytes == 2 << 20 && pool.statistics.allocationCount == 3)
        pool.release(big.address, capacity: big.capacity)
    }

    @Test("a block released behind work still pending on a stream is not handed out before that work has run")
    func streamOrdered() throws {
        let device = try CountingDevice(), pool = DeviceMemoryPool(device: device)
        let a = try pool.allocate(4096), event = ManualEvent()
        pool.release(a.address, capacity: a.capacity, pending: event)
        let b = try pool.allocate(4096)
        #expect(b.address != a.address && device.allocations == 2 && pool.statistics.cachedBytes == 4096)
        event.complete = true
        let c = try pool.allocate(4096)
        #expect(c.address == a.address && device.allocations == 2 && pool.statistics.cachedBytes == 0)
        // Trimming waits for a pending block's event before the device frees it.
        let late = ManualEvent()
        pool.release(b.address, capacity: b.capacity, pending: late)
        pool.trim()
        #expect(late.complete && device.releases == 1)
        pool.release(c.address, capacity: c.capacity)
    }

    @Test("a block released behind pending work is handed out at once for work on the stream it was released on, not for another")
    func sameStream() throws {
        let device = try CountingDevice(), pool = DeviceMemoryPool(device: device)
        let mine = OtherStream(), theirs = OtherStream()
        let a = try pool.allocate(4096, on: mine)
        pool.release(a.address, capacity: a.capacity, pending: ManualEvent(), stream: mine)
        let other = try pool.allocate(4096, on: theirs), unordered = try pool.allocate(4096)
        #expect(other.address != a.address && unordered.address != a.address && device.allocations == 3)
        // The stream runs its new work after the old: the block is free for it.
        var block = try pool.allocate(4096, on: mine)
        #expect(block.address == a.address && device.allocations == 3 && pool.statistics.cachedBytes == 0)
        // A thread whose stream runs behind the host, making and dropping a tensor a step, holds
        // one block for it, not one per step.
        for _ in 0..<100 {
            pool.release(block.address, capacity: block.capacity, pending: ManualEvent(), stream: mine)
            block = try pool.allocate(4096, on: mine)
        }
        #expect(block.address == a.address && device.allocations == 3)
        // A stream that is gone is not kept for its cached block, and no later stream (one made
        // where it was, say) takes the block before its event completes.
        var gone: OtherStream? = OtherStream()
        weak let watched = gone
        pool.release(other.address, capacity: other.capacity, pending: ManualEvent(), stream: gone)
        gone = nil
        let later = OtherStream(), fresh = try pool.allocate(4096, on: later)
        #expect(watched == nil && fresh.address != other.address && device.allocations == 4)
        for b in [block, fresh, unordered] { pool.release(b.address, capacity: b.capacity) }
        pool.trim()
        #expect(device.held.isEmpty)
    }

    @Test("a program taking a frame per call holds none between calls: each call's frame goes back behind its work, and the next call on the stream reuses it")
    func framePerCall() throws {
        let pool = DeviceMemoryPool(device: try HostKernelEmulator())
        let x = try DeviceProgramTests.uniform([3000], 41, .float64)
        // A constant (2.5) in the frame, a sum's index check-free reduction, a chunked run.
        let program = try compile(native: .required) { (v: [Tensor]) in [try (v[0] * 2.5 + 1).sum(), try v[0].relu() * v[0]] }.trace(for: [x]).program
        let resident = try DeviceProgram(program, pool: pool)
        let residentBytes = pool.statistics.liveBytes
        let perCall = try DeviceProgram(program, pool: pool, framePerCall: true)
        let held = pool.statistics.liveBytes - residentBytes
        #expect(held < StoragePool.capacity(for: program.statistics.frameBytes), "the per-call program holds its constants and scratch, not a frame")
        let expected = try resident([x])
        let systemAllocations = pool.statistics.systemAllocationCount
        for _ in 0..<5 {
            let got = try perCall([x])
            #expect(zip(got, expected).allSatisfy { DeviceProgramTests.bits($0) == DeviceProgramTests.bits($1) })
            #expect(pool.statistics.liveBytes == residentBytes + held, "the call's frame went back")
        }
        #expect(pool.statistics.systemAllocationCount == systemAllocations + 1, "one frame from the device, reused by every later call")
        // The resident frame's API has nothing to work on.
        #expect(throws: TensorError.self) { try perCall.upload([x]) }
        #expect(throws: TensorError.self) { try perCall.launch() }
        #expect(throws: TensorError.self) { try perCall.download() }
        // A program each of whose instructions reads arguments and writes an output whole runs
        // with no frame and no kernel of the frame's (no steps): its arguments copied into
        // blocks, its results written into blocks of their own (a reshape's and a row slice's
        // read from their argument's), all given back behind the call.
        let (m, row) = (try DeviceProgramTests.uniform([30, 40], 42, .float64), try DeviceProgramTests.uniform([40], 43, .float64))
        let direct = try compile(native: .off) { (v: [Tensor]) in
            [try v[0].sum(axes: [0]), try v[0].softmax(axis: 1), try v[0].logsumexp(axes: [1]), try v[0].less(v[1]), try v[0] * v[1],
             try v[0].reshaped([40, 30]), try v[0].slice(starts: [10, 0], ends: [20, 40]), try v[0].transposed()]
        }.trace(for: [m, row]).program
        let framed = try DeviceProgram(direct, pool: pool), before = pool.statistics.liveBytes
        let unframed = try DeviceProgram(direct, pool: pool, framePerCall: true)
        #expect(!framed.steps.isEmpty && unframed.steps.isEmpty)
        #expect(pool.statistics.liveBytes == before, "no constants, no tables")
        let reference = try direct([m, row])
        for got in [try framed([m, row]), try unframed([m, row]), try unframed([m, row])] {
            #expect(zip(got, reference).allSatisfy { DeviceProgramTests.bits($0) == DeviceProgramTests.bits($1) })
        }
        #expect(pool.statistics.liveBytes == before, "the call's blocks went back")
    }

    @Test("device programs take their frames from the pool and give them back; a second program reuses them")
    func programs() throws {
        let device = try CountingDevice(), pool = DeviceMemoryPool(device: device)
        let x = try Tensor.uniform([3 * Parallelism.elementChunk + 77], key: RandomKey(seed: 5), low: -1, high: 1)
        let program = try compile(native: .required) { (a: [Tensor]) in [try (a[0] * a[0]).sum(), try a[0] * 3] }.trace(for: [x]).program
        var first: DeviceProgram? = try DeviceProgram(program, pool: pool)
        let held = pool.statistics.liveBytes
        #expect(held >= program.statistics.frameBytes && device.allocations == 3)
        let expected = try program([x]), got = try first!([x])
        #expect(expected[0].scalars(as: Double.self) == got[0].scalars(as: Double.self))
        first = nil
        #expect(pool.statistics.liveBytes == 0 && pool.statistics.cachedBytes == held)
        let second = try DeviceProgram(program, pool: pool)
        #expect(device.allocations == 3 && pool.statistics.systemAllocationCount == 3 && pool.statistics.allocationCount == 6)
        #expect(try second([x])[0].scalars(as: Double.self) == expected[0].scalars(as: Double.self))
    }
}

@Suite("Compiled functions on a device")
struct CompiledOnDeviceTests {
    @Test("compile(device:) runs each signature's program on the device: the CPU's bits, one trace per signature, transforms through the dispatch point")
    func compiledFunctions() throws {
        let pool = DeviceMemoryPool(device: try HostKernelEmulator())
        let onDevice = CompiledFunction<Tensor, Tensor>(pool: pool) { x in try gradient(at: x, of: Rosenbrock.value) }
        let onCPU = compile(native: .required) { (x: Tensor) in try gradient(at: x, of: Rosenbrock.value) }
        #expect(onDevice.device == .cuda(0) && onCPU.device == .cpu)
        for (n, seed) in [(5000, UInt64(1)), (5000, 2), (2 * Parallelism.elementChunk + 9, 3)] {
            let x = try Tensor.uniform([n], key: RandomKey(seed: seed), low: -1, high: 1)
            let same = try onDevice(x).scalars(as: Double.self).map(\.bitPattern) == onCPU(x).scalars(as: Double.self).map(\.bitPattern)
            #expect(same, "n \(n)")
        }
        #expect(onDevice.traces == 2 && pool.statistics.liveBytes > 0)
        // Inside a transform the traced graph runs through the dispatch point (on the CPU).
        let x = try Tensor.uniform([5000], key: RandomKey(seed: 4), low: -1, high: 1)
        let throughDevice = try gradient(at: x) { try onDevice($0).sum() }, eager = try gradient(at: x) { try gradient(at: $0, of: Rosenbrock.value).sum() }
        #expect(throughDevice.scalars(as: Double.self) == eager.scalars(as: Double.self))
        // Calls from several threads take turns with the one device frame.
        let inputs = try (0..<4).map { try Tensor.uniform([5000], key: RandomKey(seed: 10 + UInt64($0)), low: -1, high: 1) }
        let results = Lock([[Double]](repeating: [], count: 4))
        DispatchQueue.concurrentPerform(iterations: 4) { k in
            let y = (try? onDevice(inputs[k]).scalars(as: Double.self)) ?? []
            results.withLock { $0[k] = y }
        }
        for k in 0..<4 { #expect(try results.withLock { $0[k] } == onCPU(inputs[k]).scalars(as: Double.self), "thread \(k)") }
    }

    @Test("a device that cannot be used is a typed error at the first call; integer operators and strided reductions run there")
    func errors() throws {
        let x = try Tensor.uniform([5000], key: RandomKey(seed: 1), low: -1, high: 1)
        let available = (try? NVRTC.load()) != nil && (try? CUDADriver.load()) != nil
        let gpu = compile(device: .cuda()) { (x: Tensor) in try x * 2 + 1 }
        if available {
            #expect(try gpu(x).scalars(as: Double.self) == (x * 2 + 1).scalars(as: Double.self))
        } else {
            do {
                _ = try gpu(x)
                Issue.record("ran on a device that is not there")
            } catch let DeviceError.unavailable(device, reason) {
                #expect(device == .cuda(0) && reason.contains("not found"), "\(reason)")
            }
        }
        #expect(throws: DeviceError.unavailable(device: .cuda(1), reason: "only GPU 0 is used")) { try compile(device: .cuda(1)) { (x: Tensor) in try x * 2 }(x) }
        #expect(Device.cuda(1).description == "cuda:1" && Device.cuda().description == "cuda")
        let a = try Tensor.uniform([64, 64], key: RandomKey(seed: 2), low: -1, high: 1)
        // A program of operators the CPU interprets, integer ones among them, runs whole there.
        let integer = CompiledFunction<Tensor, Tensor>(pool: DeviceMemoryPool(device: try HostKernelEmulator())) { v in
            try v.cast(to: .int64).transposed().cast(to: .float64).sum(axes: [0, 2]) * 2
        }
        let small = try Tensor.uniform([2, 3, 4], key: RandomKey(seed: 3), low: -9, high: 9)
        #expect(try integer(small).scalars(as: Double.self) == (try small.cast(to: .int64).transposed().cast(to: .float64).sum(axes: [0, 2]) * 2).scalars(as: Double.self))
        let product = CompiledFunction<Tensor, Tensor>(pool: DeviceMemoryPool(device: try HostKernelEmulator())) { v in try v.matmul(v) * 2 }
        #expect(try DeviceProgramTests.relativeDifference(product(a), a.matmul(a) * 2) <= 1e-14)
    }
}
