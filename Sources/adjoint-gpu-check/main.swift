// adjoint-gpu-check: runs the native code generator's CUDA kernels on GPU 0 against the native
// CPU code, run by run (`GPUKernelCheck`), and writes a JSON report.
//
//   adjoint-gpu-check [--report report.json] [--elements N] [--prepare-only]
//
// NVRTC is found as `NVRTC.load()` says (ADJOINT_NVRTC, the loader's path, /usr/local/cuda); the
// driver as libcuda.so.1. Exit status: 0 when every kernel whose arithmetic is IEEE on both sides
// (+ − × ÷, square roots, Adjoint's float32 tanh) equals the CPU bit for bit and the kernels using
// the device's math library (exp, log, sin, float64 tanh, …) agree within 1e-5 (float32) or 1e-13
// (float64) relative; 1 otherwise; 2 when no GPU, driver or NVRTC is there.
import AdjointAutodiff
import AdjointCompiler
import AdjointIR
import AdjointTensor
import Foundation

struct ProgramReport: Codable {
    var name: String
    var bitwiseExpected: Bool
    var tolerance: Double
    var runs: [GPUKernelCheck.Run]
    var passed: Bool
}

struct Report: Codable {
    var device: String
    var computeCapability: String
    var nvrtc: String
    var nvrtcVersion: String
    var elements: Int
    var programs: [ProgramReport]
    var passed: Bool
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data("adjoint-gpu-check: \(message)\n".utf8))
    exit(status)
}

let args = CommandLine.arguments
var reportPath: String?
var n = 1_000_000
var prepareOnly = false
var index = 1
while index < args.count {
    switch args[index] {
    case "--report" where index + 1 < args.count: reportPath = args[index + 1]; index += 2
    case "--prepare-only": prepareOnly = true; index += 1
    case "--elements" where index + 1 < args.count:
        guard let value = Int(args[index + 1]), value > 4096, value <= 1 << 28 else {
            fail("--elements must be an integer in 4097...\(1 << 28), got '\(args[index + 1])'", status: 2)
        }
        n = value
        index += 2
    default: fail("unknown or incomplete argument '\(args[index])'; usage: adjoint-gpu-check [--report report.json] [--elements N] [--prepare-only]", status: 2)
    }
}


func rosenbrock(_ x: Tensor) throws -> Tensor {
    let m = x.shape[0]
    let head = try x.slice([0..<(m - 1)]), tail = try x.slice([1..<m])
    let a = try tail - head * head, b = try head * -1 + 1
    return try (a * a * 100 + b * b).sum()
}

func heatStep(_ s: Tensor, _ p: Tensor) throws -> Tensor {
    let m = s.shape[0]
    let zero = try Tensor.zeros([1], dtype: .float32)
    let left = try Tensor.concat([zero, s.slice([0..<(m - 1)])]), right = try Tensor.concat([s.slice([1..<m]), zero])
    return try s + p.slice([0..<1]) * (left + right - s * 2) + p.slice([1..<2]) * s.tanh()
}

/// Every elementwise operator with a native form over `x` (and `y`): one run of all of them.
func everyOperator(_ dtype: DType, elements n: Int) throws -> (CompiledProgram, [Tensor]) {
    let type = ValueType(dtype: dtype, shape: [n])
    var nodes: [Node] = [], next = 2
    for op in OpCode.allCases where op.family == .unary || op.family == .binary {
        guard op != .multiplyAdd else { continue }
        let inputs = op.family == .unary ? [0] : [0, 1]
        nodes.append(Node(op: op, inputs: inputs.map(ValueID.init), outputs: [ValueID(next)], outputTypes: [type]))
        next += 1
    }
    let graph = Graph(inputs: [0, 1].map { GraphInput(id: ValueID($0), type: type, role: .argument) }, nodes: nodes,
                      outputs: (2..<next).map(ValueID.init))
    let x = try Tensor.uniform([n], key: RandomKey(seed: 1), low: 0.1, high: 2, dtype: dtype)
    let y = try Tensor.uniform([n], key: RandomKey(seed: 2), low: -2, high: 2, dtype: dtype)
    return (try CompiledProgram(graph, captures: [:], order: nil, boundaries: [], native: .required), [x, y])
}

var programs: [(name: String, program: CompiledProgram, arguments: [Tensor], bitwise: Bool, tolerance: Double)] = []
do {
    let x = try Tensor.uniform([n], key: RandomKey(seed: 3), low: -1, high: 1)
    let v = try Tensor.uniform([n], key: RandomKey(seed: 4), low: -1, high: 1)
    let s = try Tensor.uniform([n], key: RandomKey(seed: 5), low: -1, high: 1, dtype: .float32)
    let p = try Tensor([Float(0.25), 0.05], shape: [2])
    let gradientFunction = compile(native: .required) { (a: [Tensor]) in [try gradient(at: a[0], of: rosenbrock)] }
    let hvpFunction = compile(native: .required) { (a: [Tensor]) in [try hvp(at: a[0], direction: a[1], of: rosenbrock)] }
    let heatFunction = compile(native: .required) { (a: [Tensor]) in
        [try gradient(at: a[1]) { p in let t = try heatStep(heatStep(a[0], p), p); return try (t * t).mean() }]
    }
    let sumsFunction = compile(native: .required) { (a: [Tensor]) in [try (a[0] * a[1] + a[0]).sum(), try (a[0] * a[0] - a[1]).mean()] }
    programs.append(("Rosenbrock gradient, f64", try gradientFunction.trace(for: [x]).program, [x], true, 0))
    programs.append(("Rosenbrock HVP, f64", try hvpFunction.trace(for: [x, v]).program, [x, v], true, 0))
    programs.append(("heat equation: gradient through two steps, f32 (Adjoint's tanh)", try heatFunction.trace(for: [s, p]).program, [s, p], true, 0))
    programs.append(("fused sum and mean, f64", try sumsFunction.trace(for: [x, v]).program, [x, v], true, 0))
    let (f64, a64) = try everyOperator(.float64, elements: n), (f32, a32) = try everyOperator(.float32, elements: n)
    programs.append(("every elementwise operator, f64 (device math library)", f64, a64, false, 1e-13))
    programs.append(("every elementwise operator, f32 (device math library)", f32, a32, false, 1e-5))
} catch {
    fail("building the programs: \(error)", status: 1)
}

// The programs are compiled (their C into the native library cache) before anything of CUDA is
// loaded: `--prepare-only` stops here, so a bundle can carry the libraries to a machine without a
// C compiler (scripts/device-check).
if prepareOnly {
    print("prepared \(programs.count) programs")
    exit(0)
}
let nvrtc: NVRTC, driver: CUDADriver
do {
    nvrtc = try NVRTC.load()
    driver = try CUDADriver.load()
} catch {
    fail("\(error)", status: 2)
}
print("device: \(driver.deviceName), compute capability \(driver.capability.major).\(driver.capability.minor); NVRTC \(nvrtc.version.major).\(nvrtc.version.minor) at \(nvrtc.path)")

var reports: [ProgramReport] = []
for entry in programs {
    do {
        let runs = try GPUKernelCheck.check(entry.program, arguments: entry.arguments, nvrtc: nvrtc, driver: driver)
        let passed = !runs.isEmpty && runs.allSatisfy { entry.bitwise ? $0.differing == 0 : $0.maximumRelativeDifference <= entry.tolerance }
        reports.append(ProgramReport(name: entry.name, bitwiseExpected: entry.bitwise, tolerance: entry.tolerance, runs: runs, passed: passed))
        for r in runs {
            print(String(format: "%@ run %d: %d elements, %d compared, %d differ (max relative %.3g); CPU %.3f ms, GPU %.3f ms",
                         entry.name, r.run, r.elements, r.compared, r.differing, r.maximumRelativeDifference, r.cpuMilliseconds, r.gpuMilliseconds))
        }
        print("\(entry.name): \(passed ? "passed" : "FAILED")")
    } catch {
        print("\(entry.name): FAILED: \(error)")
        reports.append(ProgramReport(name: entry.name + " (error: \(error))", bitwiseExpected: entry.bitwise, tolerance: entry.tolerance, runs: [], passed: false))
    }
}
let report = Report(device: driver.deviceName, computeCapability: "\(driver.capability.major).\(driver.capability.minor)", nvrtc: nvrtc.path,
                    nvrtcVersion: "\(nvrtc.version.major).\(nvrtc.version.minor)", elements: n, programs: reports,
                    passed: reports.allSatisfy(\.passed))
if let reportPath {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do { try encoder.encode(report).write(to: URL(fileURLWithPath: reportPath), options: .atomic) } catch { fail("writing \(reportPath): \(error)", status: 1) }
}
print(report.passed ? "all kernels passed" : "some kernels FAILED")
exit(report.passed ? 0 : 1)
