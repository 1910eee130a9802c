// adjoint-gpu-check: runs the native code generator's CUDA kernels on GPU 0 against the native
// CPU code, run by run (`GPUKernelCheck`), then the programs without library functions whole on
// the device (`DeviceProgram`) against the CPU's calls, timed, with MLP train steps (their matrix
// products through cuBLAS; tanh and squared error, and the issue's relu and cross-entropy) and
// the operators the CPU interprets (strided reductions, indexing, casts, layout copies), then
// eager computations on device tensors (Rosenbrock's gradient, the issue's MLP step, the heat
// equation through `unroll`) against the CPU's, timed; writes a JSON report.
//
//   adjoint-gpu-check [--report report.json] [--elements N] [--prepare-only] [--emulate]
//
// --emulate: the kernels compiled as C++ for this CPU and run thread by thread
// (`HostKernelEmulator`) instead of on a GPU: the check's own logic, where there is none (its
// times are the emulation's, not a device's).
//
// NVRTC is found as `NVRTC.load()` says (ADJOINT_NVRTC, the loader's path, /usr/local/cuda); the
// driver as libcuda.so.1. Exit status: 0 when every kernel whose arithmetic is IEEE on both sides
// (+ − × ÷, square roots, Adjoint's float32 tanh) equals the CPU bit for bit and the kernels using
// the device's math library (exp, log, sin, float64 tanh, …) agree within 1e-5 (float32) or 1e-13
// (float64) relative; 1 otherwise; 2 when no GPU, driver or NVRTC is there.
import AdjointAutodiff
import AdjointCompiler
import AdjointIR
import AdjointStateful
import AdjointTensor
import Foundation

struct ProgramReport: Codable {
    var name: String
    var bitwiseExpected: Bool
    var tolerance: Double
    var runs: [GPUKernelCheck.Run]
    var passed: Bool
}

/// A whole program run on the device: its launches (kernels and GEMMs), how its outputs compare
/// with the CPU's call (bitwise, or within `tolerance` relative where it is not 0), and the
/// medians of `repeats` timings.
struct WholeProgramReport: Codable {
    var name: String
    var launches: Int
    var tolerance = 0.0
    var compared = 0, differing = 0
    var maximumRelativeDifference = 0.0
    /// The CPU's call; the device's launches, between events on its stream (arguments already
    /// there); the device's call with the copies in and out, on the host's clock.
    var cpuMilliseconds = 0.0, deviceMilliseconds = 0.0, deviceWithCopiesMilliseconds = 0.0
    /// The device memory the program held at most (frame, reductions' operands and partials).
    var peakDeviceBytes = 0
    var passed = false
}

/// An eager computation on device tensors (`Tensor.to(.cuda())`, one operator at a time on the
/// thread's stream) against the same on the CPU: how its results compare, and the medians of its
/// times on the host's clock (the device's work waited for at the end of each repeat).
struct DeviceTensorReport: Codable {
    var name: String
    var tolerance = 0.0
    var compared = 0, differing = 0
    var maximumRelativeDifference = 0.0
    var cpuMilliseconds = 0.0, deviceMilliseconds = 0.0
    /// The device memory the device tensors and operator programs held at most.
    var peakDeviceBytes = 0
    var passed = false
}

struct Report: Codable {
    var device: String
    var nvrtc: String
    var nvrtcVersion: String
    var elements: Int
    var programs: [ProgramReport]
    var wholePrograms: [WholeProgramReport]
    /// Whether `compile(device: .cuda())` gave the CPU's bits (nil: not run, under `--emulate`).
    var compiledOnDevice: Bool?
    var deviceTensors: [DeviceTensorReport]
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
var emulate = false
var index = 1
while index < args.count {
    switch args[index] {
    case "--report" where index + 1 < args.count: reportPath = args[index + 1]; index += 2
    case "--prepare-only": prepareOnly = true; index += 1
    case "--emulate": emulate = true; index += 1
    case "--elements" where index + 1 < args.count:
        guard let value = Int(args[index + 1]), value > 4096, value <= 1 << 28 else {
            fail("--elements must be an integer in 4097...\(1 << 28), got '\(args[index + 1])'", status: 2)
        }
        n = value
        index += 2
    default: fail("unknown or incomplete argument '\(args[index])'; usage: adjoint-gpu-check [--report report.json] [--elements N] [--prepare-only] [--emulate]", status: 2)
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
    let zero = try Tensor.zeros([1], dtype: .float32, on: s.device)
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

/// An MLP 784-512-512-10's data at `batch` (float32): inputs, targets (labels for the issue's
/// model) and parameters (weights, zero biases).
func mlpData(batch: Int, issueModel: Bool) throws -> (x: Tensor, target: Tensor, parameters: [Tensor]) {
    let widths = [784, 512, 512, 10]
    let x = try Tensor.uniform([batch, widths[0]], key: RandomKey(seed: 20), low: -1, high: 1, dtype: .float32)
    let target: Tensor = issueModel ? Tensor((0..<batch).map { Int64(($0 * 7) % widths[3]) })
        : try Tensor.uniform([batch, widths[3]], key: RandomKey(seed: 21), low: -1, high: 1, dtype: .float32)
    var parameters: [Tensor] = []
    for l in 0..<3 {
        parameters.append(try Tensor.uniform([widths[l], widths[l + 1]], key: RandomKey(seed: 22 + UInt64(l)), low: -0.05, high: 0.05, dtype: .float32))
        parameters.append(try Tensor.zeros([widths[l + 1]], dtype: .float32))
    }
    return (x, target, parameters)
}

/// An MLP 784-512-512-10's train step at `batch` (float32, biases): tanh and mean squared error
/// against targets, or — the issue's model — `relu` and cross-entropy against labels; loss and
/// the updated parameters.
func mlpStep(batch: Int, issueModel: Bool) throws -> (CompiledProgram, [Tensor]) {
    let (x, target, parameters) = try mlpData(batch: batch, issueModel: issueModel)
    let step = compile(native: .required) { (a: [Tensor]) -> [Tensor] in
        let (loss, g) = try valueWithGradient(at: Array(a[2...])) { p in
            if issueModel {
                let h1 = try (a[0].matmul(p[0]) + p[1]).relu(), h2 = try (h1.matmul(p[2]) + p[3]).relu()
                return try (h2.matmul(p[4]) + p[5]).crossEntropy(labels: a[1]).mean()
            }
            let h1 = try (a[0].matmul(p[0]) + p[1]).tanh(), h2 = try (h1.matmul(p[2]) + p[3]).tanh()
            let e = try h2.matmul(p[4]) + p[5] - a[1]
            return try (e * e).mean()
        }
        return [loss] + (try zip(a[2...], g).map { try $0 - $1 * 0.01 })
    }
    let arguments = [x, target] + parameters
    return (try step.trace(for: arguments).program, arguments)
}

// Programs with matrix products (cuBLAS on a GPU): whole on the device only, within rounding. The
// issue's model gets a looser tolerance: cuBLAS rounds the products in an order of its own, so a
// pre-activation within rounding of zero can take the other side of `relu`'s mask on the device,
// which moves its example's share of a gradient by a whole term (about 1/batch of the largest
// element) rather than by rounding.
var products: [(name: String, program: CompiledProgram, arguments: [Tensor], bitwise: Bool, tolerance: Double)] = []
do {
    for batch in [256, 4096] {
        let (program, arguments) = try mlpStep(batch: batch, issueModel: false)
        products.append(("MLP 784-512-512-10 train step, batch \(batch), f32 (biases, tanh, MSE)", program, arguments, false, 1e-4))
    }
    for batch in [256, 4096] {
        let (program, arguments) = try mlpStep(batch: batch, issueModel: true)
        products.append(("MLP 784-512-512-10 train step, batch \(batch), f32 (biases, relu, cross-entropy: the issue's model)", program, arguments, false, 1e-2))
    }
} catch {
    fail("building the MLP steps: \(error)", status: 1)
}

// Operators the CPU interprets, whole on the device: comparisons, `where`, gathers, one-hot
// encodings, scatter-adds, casts, `argmax`, mean squared errors, reductions over axes that are
// not one run and layout operators on integer, bool and 16-bit elements (IEEE arithmetic and
// copies: the CPU's bits); then softmaxes, cross-entropy and log-sum-exps (the device's exp and
// log: within 1e-13).
do {
    let x = try Tensor.uniform([32, 64, 50], key: RandomKey(seed: 40), low: -1, high: 1)
    let labels = try Tensor((0..<(32 * 64)).map { Int64(($0 * 7) % 50) }).reshaped([32, 64])
    let exact = compile(native: .required) { (v: [Tensor]) -> [Tensor] in
        let counts = try v[0].cast(to: .int32), mask = try v[0].greater(0), half = try v[0].cast(to: .float16)
        return [try v[0].sum(axes: [0, 2]), try v[0].mean(axes: [1]), try v[0].max(axes: [0, 2]), try v[0].min(axes: [2, 0]),
                try Tensor.select(mask, v[0], v[0] * -2), try v[0].argmax(axis: 2), try v[1].oneHot(depth: 50, dtype: .float32),
                try v[0].gather(v[1].reshaped([-1]).slice([0..<100]), axis: 2), try v[0].scatterAdd(v[1].reshaped([-1]).slice([0..<10]), v[0].slice(starts: [0, 0, 0], ends: [32, 64, 10]), axis: 2),
                try v[0].meanSquaredError(v[0] * 0.5),
                try (v[0] * 9).cast(to: .int64).transposed([2, 0, 1]), try counts.padded(low: [1, 0, 2], high: [0, 3, 0], value: -4),
                try Tensor.concat([mask, mask.slice(starts: [0, 0, 0], ends: [32, 64, 7])], axis: 2), try Tensor.stack([half, half], axis: 1),
                try half.transposed([1, 2, 0]).cast(to: .float32)]
    }
    let approximate = compile(native: .required) { (v: [Tensor]) -> [Tensor] in
        [try v[0].softmax(axis: 1), try v[0].logSoftmax(axis: 2), try v[0].reshaped([32 * 64, 50]).crossEntropy(labels: v[1].reshaped([-1])),
         try v[0].logsumexp(axes: [0, 2]), try v[0].logsumexp(axes: [2])]
    }
    products.append(("operators the CPU interprets: strided reductions, selections, indexing, casts, layout copies of integers, bools and f16", try exact.trace(for: [x, labels]).program, [x, labels], true, 0))
    products.append(("operators the CPU interprets: softmaxes, cross-entropy, log-sum-exps (device math library)", try approximate.trace(for: [x, labels]).program, [x, labels], false, 1e-13))
} catch {
    fail("building the interpreted operators' programs: \(error)", status: 1)
}

// The programs are compiled (their C into the native library cache) before anything of CUDA is
// loaded: `--prepare-only` stops here, so a bundle can carry the libraries to a machine without a
// C compiler (scripts/device-check).
if prepareOnly {
    print("prepared \(programs.count + products.count) programs")
    exit(0)
}
let device: any KernelDevice
var nvrtcPath = "", nvrtcVersion = ""
do {
    if emulate {
        device = try HostKernelEmulator()
    } else {
        let nvrtc = try NVRTC.load()
        device = CUDAKernelDevice(nvrtc: nvrtc, driver: try CUDADriver.load())
        (nvrtcPath, nvrtcVersion) = (nvrtc.path, "\(nvrtc.version.major).\(nvrtc.version.minor)")
    }
} catch {
    fail("\(error)", status: 2)
}
print("device: \(device.name)" + (nvrtcPath.isEmpty ? "" : "; NVRTC \(nvrtcVersion) at \(nvrtcPath)"))

var reports: [ProgramReport] = []
for entry in programs {
    do {
        let runs = try GPUKernelCheck.check(entry.program, arguments: entry.arguments, device: device)
        let passed = !runs.isEmpty && runs.allSatisfy { entry.bitwise ? $0.differing == 0 : $0.maximumRelativeDifference <= entry.tolerance }
        reports.append(ProgramReport(name: entry.name, bitwiseExpected: entry.bitwise, tolerance: entry.tolerance, runs: runs, passed: passed))
        for r in runs {
            print(String(format: "%@ run %d: %d elements, %d compared, %d differ (max relative %.3g); CPU %.3f ms, device %.3f ms",
                         entry.name, r.run, r.elements, r.compared, r.differing, r.maximumRelativeDifference, r.cpuMilliseconds, r.deviceMilliseconds))
        }
        print("\(entry.name): \(passed ? "passed" : "FAILED")")
    } catch {
        print("\(entry.name): FAILED: \(error)")
        reports.append(ProgramReport(name: entry.name + " (error: \(error))", bitwiseExpected: entry.bitwise, tolerance: entry.tolerance, runs: [], passed: false))
    }
}

/// The median of `repeats` timings of `body`, in milliseconds.
func median(_ repeats: Int, _ body: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<repeats {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
    }
    return times.sorted()[times.count / 2]
}

// The programs whose arithmetic is IEEE on both sides, whole on the device: the same bits as the
// CPU's call, and their times (the issue's Rosenbrock target is the first one's device time);
// then the MLP steps, within their tolerance.
var wholes: [WholeProgramReport] = []
let pool = DeviceMemoryPool(device: device)
for entry in programs.filter(\.bitwise) + products {
    var whole = WholeProgramReport(name: entry.name, launches: 0, tolerance: entry.tolerance)
    do {
        pool.resetPeak()
        let program = try DeviceProgram(entry.program, pool: pool)
        whole.launches = program.steps.count
        let expected = try entry.program(entry.arguments), got = try program(entry.arguments)
        for (a, b) in zip(expected, got) {
            let x = a.dtype == .float64 ? a.scalars(as: Double.self) : a.scalars(as: Float.self).map(Double.init)
            let y = b.dtype == .float64 ? b.scalars(as: Double.self) : b.scalars(as: Float.self).map(Double.init)
            for (u, v) in zip(x, y) {
                whole.compared += 1
                guard u.bitPattern != v.bitPattern, !(u.isNaN && v.isNaN) else { continue }
                whole.differing += 1
                let relative = abs(u - v) / max(abs(u), abs(v), 1)
                whole.maximumRelativeDifference = max(whole.maximumRelativeDifference, relative.isNaN ? .infinity : relative)
            }
        }
        let repeats = emulate ? 3 : 50
        whole.cpuMilliseconds = try median(repeats) { _ = try entry.program(entry.arguments) }
        try program.upload(entry.arguments)
        // The device's own clock: events on the program's stream around its launches.
        var deviceTimes: [Double] = []
        for _ in 0..<repeats {
            let start = try program.stream.record()
            try program.launch()
            let end = try program.stream.record()
            try end.synchronize()
            deviceTimes.append(try end.milliseconds(since: start))
        }
        whole.deviceMilliseconds = deviceTimes.sorted()[repeats / 2]
        whole.deviceWithCopiesMilliseconds = try median(repeats) { _ = try program(entry.arguments) }
        whole.peakDeviceBytes = pool.statistics.peakBytes
        whole.passed = whole.compared > 0 && (entry.bitwise ? whole.differing == 0 : whole.maximumRelativeDifference <= entry.tolerance)
        print(String(format: "%@, whole on the device: %d launches, %d compared, %d differ (max relative %.3g); CPU %.3f ms, device %.3f ms (%.3f ms with copies), %d device bytes at most: %@",
                     entry.name, whole.launches, whole.compared, whole.differing, whole.maximumRelativeDifference, whole.cpuMilliseconds, whole.deviceMilliseconds,
                     whole.deviceWithCopiesMilliseconds, whole.peakDeviceBytes, whole.passed ? "passed" : "FAILED"))
    } catch {
        whole.name += " (error: \(error))"
        print("\(entry.name), whole on the device: FAILED: \(error)")
    }
    wholes.append(whole)
}

// The public path on a GPU: `compile(device: .cuda())` (the process's device runtime, its pool
// and stream) against the CPU's compiled gradient.
var publicPath: Bool?
if !emulate {
    do {
        let x = try Tensor.uniform([n], key: RandomKey(seed: 9), low: -1, high: 1)
        let onDevice = compile(device: .cuda()) { (x: Tensor) in try gradient(at: x, of: rosenbrock) }
        let onCPU = compile(native: .required) { (x: Tensor) in try gradient(at: x, of: rosenbrock) }
        publicPath = try onDevice(x).scalars(as: Double.self).map(\.bitPattern) == onCPU(x).scalars(as: Double.self).map(\.bitPattern)
        print("compile(device: .cuda()), Rosenbrock gradient: \(publicPath! ? "the CPU's bits: passed" : "differs from the CPU: FAILED")")
    } catch {
        publicPath = false
        print("compile(device: .cuda()), Rosenbrock gradient: FAILED: \(error)")
    }
}

// Eager computations on device tensors (the issue's eager targets): Rosenbrock's gradient, the
// issue's MLP train step, and the heat equation's gradient through `unroll` (storeAll and
// binomial:10), each against the CPU's eager run. Under `--emulate` the emulation is installed
// as the device, at sizes it runs in seconds.
var tensorReports: [DeviceTensorReport] = []
do {
    let gpu = Device.cuda(0)
    let tensors = emulate ? DeviceRuntime.install(DeviceMemoryPool(device: device), as: gpu) : try DeviceRuntime.tensors(for: gpu)
    let repeats = emulate ? 3 : 20
    /// Compares `got` (on the device) with `expected`, times both, and records the report.
    func measure(_ name: String, tolerance: Double, cpu: () throws -> [Tensor], device run: () throws -> [Tensor]) {
        var entry = DeviceTensorReport(name: name, tolerance: tolerance)
        do {
            tensors.pool.resetPeak()
            let expected = try cpu(), got = try run().map { try $0.to(.cpu) }
            for (a, b) in zip(expected, got) {
                for (u, v) in zip(a.doubles, b.doubles) {
                    entry.compared += 1
                    guard u.bitPattern != v.bitPattern, !(u.isNaN && v.isNaN) else { continue }
                    entry.differing += 1
                    let relative = abs(u - v) / max(abs(u), abs(v), 1)
                    entry.maximumRelativeDifference = max(entry.maximumRelativeDifference, relative.isNaN ? .infinity : relative)
                }
            }
            entry.cpuMilliseconds = try median(repeats) { _ = try cpu() }
            entry.deviceMilliseconds = try median(repeats) {
                _ = try run()
                try gpu.synchronize()
            }
            entry.peakDeviceBytes = tensors.pool.statistics.peakBytes
            entry.passed = entry.compared > 0 && (tolerance == 0 ? entry.differing == 0 : entry.maximumRelativeDifference <= tolerance)
            print(String(format: "%@, eager on device tensors: %d compared, %d differ (max relative %.3g); CPU %.3f ms, device %.3f ms, %d device bytes at most: %@",
                         name, entry.compared, entry.differing, entry.maximumRelativeDifference, entry.cpuMilliseconds, entry.deviceMilliseconds,
                         entry.peakDeviceBytes, entry.passed ? "passed" : "FAILED"))
        } catch {
            entry.name += " (error: \(error))"
            print("\(name), eager on device tensors: FAILED: \(error)")
        }
        tensorReports.append(entry)
    }

    let m = emulate ? 4096 : n
    let x = try Tensor.uniform([m], key: RandomKey(seed: 9), low: -1, high: 1), dx = try x.to(gpu)
    measure("Rosenbrock gradient, \(m) f64", tolerance: 0, cpu: { [try gradient(at: x, of: rosenbrock)] },
            device: { [try gradient(at: dx, of: rosenbrock)] })

    for batch in emulate ? [16] : [256, 4096] {
        let (input, labels, parameters) = try mlpData(batch: batch, issueModel: true)
        func step(_ x: Tensor, _ labels: Tensor, _ parameters: [Tensor]) throws -> [Tensor] {
            let (loss, g) = try valueWithGradient(at: parameters) { p in
                let h1 = try (x.matmul(p[0]) + p[1]).relu(), h2 = try (h1.matmul(p[2]) + p[3]).relu()
                return try (h2.matmul(p[4]) + p[5]).crossEntropy(labels: labels).mean()
            }
            return [loss] + (try zip(parameters, g).map { try $0 - $1 * 0.01 })
        }
        let (dInput, dLabels, dParameters) = (try input.to(gpu), try labels.to(gpu), try parameters.map { try $0.to(gpu) })
        measure("MLP 784-512-512-10 train step, batch \(batch), f32 (relu, cross-entropy)", tolerance: 1e-2,
                cpu: { try step(input, labels, parameters) }, device: { try step(dInput, dLabels, dParameters) })
    }

    let cells = emulate ? 4096 : n, steps = emulate ? 3 : 1000
    let s0 = try Tensor.uniform([cells], key: RandomKey(seed: 30), low: 0, high: 1, dtype: .float32)
    let coefficients = Tensor([Float(0.1), Float(0.01)])
    typealias Heat = TensorStep<Tensor, Void, Tensor, Tensor>
    let heat = Heat { s, _, p in
        let next = try heatStep(s, p)
        return (next, try next.mean())
    }
    let loss = Heat.Loss.final { try $0.mean() }
    let (dS0, dCoefficients) = (try s0.to(gpu), try coefficients.to(gpu))
    for schedule in [CheckpointSchedule.storeAll, .binomial(snapshots: 10)] {
        measure("heat equation gradient, \(cells) f32 cells × \(steps) steps, \(schedule)", tolerance: 1e-5,
                cpu: { [try unroll(heat, from: s0, parameters: coefficients, steps: steps, loss: loss, schedule: schedule).parameterGradient] },
                device: { [try unroll(heat, from: dS0, parameters: dCoefficients, steps: steps, loss: loss, schedule: schedule).parameterGradient] })
    }
} catch {
    print("device tensors: FAILED: \(error)")
    tensorReports.append(DeviceTensorReport(name: "device tensors (error: \(error))"))
}

let report = Report(device: device.name, nvrtc: nvrtcPath, nvrtcVersion: nvrtcVersion, elements: n, programs: reports,
                    wholePrograms: wholes, compiledOnDevice: publicPath, deviceTensors: tensorReports,
                    passed: reports.allSatisfy(\.passed) && wholes.allSatisfy(\.passed) && publicPath != false && tensorReports.allSatisfy(\.passed))
if let reportPath {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    do { try encoder.encode(report).write(to: URL(fileURLWithPath: reportPath), options: .atomic) } catch { fail("writing \(reportPath): \(error)", status: 1) }
}
print(report.passed ? "all kernels passed" : "some kernels FAILED")
exit(report.passed ? 0 : 1)
