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
            let device = try DeviceProgram(program, device: emulator)
            for seed in [UInt64(3), 11] {
                let arguments = try Self.arguments(program, seed: seed)
                let expected = try program(arguments), got = try device(arguments)
                #expect(got.count == expected.count, "\(name)")
                for (o, (a, b)) in zip(expected, got).enumerated() {
                    let same = a.valueType == b.valueType && Self.bits(a) == Self.bits(b)
                    #expect(same, "\(name) output \(o), seed \(seed)")
                }
            }
        }
    }

    @Test("the launch plan: a one-thread kernel per plain run, a kernel over each chunked run's elements, then its sums and their combination")
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
        let device = try DeviceProgram(program, device: HostKernelEmulator())
        let kernels = device.launches.map(\.kernel)
        #expect(kernels.filter { $0.hasPrefix("adjoint_segment_") }.count == native.segments.count)
        for (r, reductions) in native.chunkedReductions.enumerated() {
            let name = NativeCodeGenerator.chunkedFunctionName(r)
            let at = try #require(kernels.firstIndex(of: name))
            let launch = device.launches[at]
            #expect(launch.blocks * launch.threads >= native.chunkedElements[r] && (launch.blocks - 1) * launch.threads < native.chunkedElements[r])
            if !reductions.isEmpty { #expect(Array(kernels[(at + 1)...].prefix(2)) == [name + "_sums", name + "_combine"]) }
        }
        for l in device.launches where l.kernel.hasPrefix("adjoint_segment_") || l.kernel.hasSuffix("_combine") { #expect(l.blocks == 1 && l.threads == 1) }
        #expect(kernels.contains { $0.hasSuffix("_combine") })
        let expected = try program([x]), got = try device([x])
        #expect(expected[0].scalars(as: Double.self)[0] == 0, "the CPU's tree")
        for (o, (a, b)) in zip(expected, got).enumerated() {
            let same = Self.bits(a) == Self.bits(b)
            #expect(same, "output \(o)")
        }
    }

    @Test("programs the device cannot run, and calls it cannot take, are typed errors")
    func errors() throws {
        let emulator = try HostKernelEmulator()
        let a = try Tensor.uniform([64, 64], key: RandomKey(seed: 1), low: -1, high: 1)
        let product = try compile(native: .required) { (v: [Tensor]) in [try (v[0].matmul(v[0]) * 2).sum()] }.trace(for: [a]).program
        do {
            _ = try DeviceProgram(product, device: emulator)
            Issue.record("a program with a matmul ran on the device")
        } catch let DeviceProgramError.noDeviceForm(instruction, operation) {
            #expect(operation == "matmul" && product.instructions[instruction].kind == .matmul)
        }
        let interpreted = try compile(native: .off) { (v: [Tensor]) in [try v[0] * 2] }.trace(for: [a]).program
        #expect(throws: DeviceProgramError.noNativeCode) { try DeviceProgram(interpreted, device: emulator) }
        let x = try Tensor.uniform([5000], key: RandomKey(seed: 2), low: -1, high: 1)
        let program = try compile(native: .required) { (v: [Tensor]) in [try v[0] * 2 + 1] }.trace(for: [x]).program
        let device = try DeviceProgram(program, device: emulator)
        #expect(throws: DeviceProgramError.argumentMismatch("called with 2 arguments; the program takes 1")) { try device([x, x]) }
        #expect(throws: DeviceProgramError.argumentMismatch("argument 0 was compiled as f64[5000], got f32[5000]")) {
            try device([x.cast(to: .float32)])
        }
        let same = Self.bits(try device([x])[0]) == Self.bits(try program([x])[0])
        #expect(same)
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
        let memory = try emulator.allocate(6)
        defer { emulator.release(memory) }
        try module.launch("k", blocks: 2, threads: 3, arguments: [memory])
        var bytes = [UInt8](repeating: 0, count: 6)
        try bytes.withUnsafeMutableBytes { try emulator.copy(memory, toHost: $0.baseAddress!, bytes: 6) }
        #expect(bytes == [0, 1, 2, 10, 11, 12])
    }
}
