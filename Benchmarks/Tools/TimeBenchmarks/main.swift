// Long-horizon unroll benchmarks, one configuration per process so that the peak resident set
// size it reports is its own. Prints one JSON object per run. Driven by Benchmarks/time.sh.
//
//   TimeBenchmarks thermal <swiftad|tensor|compiled|native|plain> <steps> [schedule] [repeats]
//   TimeBenchmarks oscillator <swiftad|swiftad-eager|plain|swiftad-gains|swiftad-gains-eager|swiftad-body|swiftad-body-step|swiftad-body-eager|plain-gains> <steps> [schedule] [repeats]
//                                                  (ControlledOscillator: 3-Float state, 20 Float parameters)
//   TimeBenchmarks scalar-chain [repeats]
//   TimeBenchmarks heat <native|interpreted|tensor> <steps> [schedule] [repeats] [cells]
//                                                  (HeatEquation: 10⁶ float32 cells, gradient w.r.t. (α, β))
//   TimeBenchmarks rosenbrock [calls] [elements] [variant]  (gradient and HVP, eager and `compile`d)
//   TimeBenchmarks compile <elements> [calls]      (`compile`: trace + compile time, warm call against the eager function)
//   TimeBenchmarks chain <steps> <snapshot budget MiB> [--no-verify]
//   TimeBenchmarks cost <steps> <snapshots>        (Revolve's predicted forward steps)
//   TimeBenchmarks eventlog <directory> [seconds per configuration]
//                                                  (appends per second per backend and fsync policy)
//   TimeBenchmarks policy <rounds>                 (strict vs bestEffort vs fast vs float64 debug,
//                                                   interleaved: MLP training step and thermal unroll)
import Adjoint
import AdjointExamples
import AdjointSwiftAD
import AdjointSwiftADExamples
import Foundation
#if canImport(Glibc)
import Glibc
#endif

func peakRSSKiB() -> Int {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss
}

/// Resets the kernel's high-water mark of the resident set (`VmHWM`), so that a later
/// ``highWaterRSSKiB()`` measures from here (Linux; elsewhere nothing happens).
func resetPeakRSS() {
    _ = try? "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
}

/// `VmHWM` of /proc/self/status in KiB (0 where there is none).
func highWaterRSSKiB() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

func euclideanNorm(_ xs: [Double]) -> Double { xs.reduce(0) { $0 + $1 * $1 }.squareRoot() }

func emit(_ fields: [String: Any]) {
    let data = try! JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
    print(String(decoding: data, as: UTF8.self))
}

let args = CommandLine.arguments
guard args.count >= 2 else {
    FileHandle.standardError.write(Data("usage: TimeBenchmarks thermal|chain|cost …\n".utf8))
    exit(2)
}
Parallelism.threadCount = 2

/// Argument `index` as a positive integer (`fallback` when it is absent); anything else ends the
/// process with a message naming the argument.
func positive(_ index: Int, _ name: String, default fallback: Int? = nil) -> Int {
    guard index < args.count else {
        if let fallback { return fallback }
        FileHandle.standardError.write(Data("TimeBenchmarks \(args[1]): missing <\(name)>\n".utf8))
        exit(2)
    }
    guard let value = Int(args[index]), value > 0 else {
        FileHandle.standardError.write(Data("TimeBenchmarks \(args[1]): <\(name)> must be a positive integer, got '\(args[index])'\n".utf8))
        exit(2)
    }
    return value
}

/// Argument `index`, which must be one of `choices`; anything else ends the process with a message.
func choice(_ index: Int, _ name: String, _ choices: [String], default fallback: String? = nil) -> String {
    if index >= args.count, let fallback { return fallback }
    guard index < args.count, choices.contains(args[index]) else {
        let got = index < args.count ? "got '\(args[index])'" : "missing"
        FileHandle.standardError.write(Data("TimeBenchmarks \(args[1]): <\(name)> must be one of \(choices.joined(separator: ", ")); \(got)\n".utf8))
        exit(2)
    }
    return args[index]
}

func runBenchmark() throws {
    switch args[1] {
    case "mlp-step":
        // The 784-512-512-10 SGD step (batch 256, float32), eager or compiled (`compile`): median ms.
        //   TimeBenchmarks mlp-step <eager|compiled|compiled-interpreted> [steps]
        let key = RandomKey(seed: 2026)
        func layer(_ i: Int, _ fanIn: Int, _ fanOut: Int) throws -> Tensor {
            let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
            return try Tensor.uniform([fanIn, fanOut], key: key.fold(in: UInt64(i)), low: -bound, high: bound, dtype: .float32)
        }
        var parameters = [try layer(1, 784, 512), try Tensor.zeros([512], dtype: .float32), try layer(2, 512, 512),
                          try Tensor.zeros([512], dtype: .float32), try layer(3, 512, 10), try Tensor.zeros([10], dtype: .float32)]
        let x = try Tensor.uniform([256, 784], key: key.fold(in: 100), dtype: .float32)
        let labels = try (Tensor.uniform([256], key: key.fold(in: 101)) * 10).cast(to: .int64)
        func step(_ a: [Tensor]) throws -> [Tensor] {
            let (loss, grads) = try valueWithGradient(at: Array(a[0..<6])) { p in
                let h1 = try (a[6].matmul(p[0]) + p[1]).relu()
                let h2 = try (h1.matmul(p[2]) + p[3]).relu()
                return try (h2.matmul(p[4]) + p[5]).crossEntropy(labels: a[7]).mean()
            }
            let lr = try Tensor(-0.01, dtype: .float32)
            return [loss] + (try zip(a[0..<6], grads).map { w, g in try w + g * lr })
        }
        let mode = choice(2, "mode", ["eager", "compiled", "compiled-interpreted"], default: "eager"), steps = positive(3, "steps", default: 50)
        let run: ([Tensor]) throws -> [Tensor]
        switch mode {
        case "compiled": let f = compile(native: .automatic, step); run = { try f($0) }
        case "compiled-interpreted": let f = compile(native: .off, step); run = { try f($0) }
        default: run = step
        }
        for _ in 0..<3 { parameters = Array(try run(parameters + [x, labels])[1...]) }
        let times = try (0..<steps).map { _ in try seconds { parameters = Array(try run(parameters + [x, labels])[1...]) } * 1e3 }
        emit(["workload": "mlp-step", "mode": mode, "median_ms": median(times)])
    case "profile-jacobian":
        // Batched Jacobians and Hessians (vmap): per-call medians and where the time goes. The
        // workloads of the package-benchmark suite (100 → 100 → 100 tanh MLP, 1,000-parameter
        // softplus regression).
        let key = RandomKey(seed: 7)
        let (width, bound) = (100, 0.1)
        let w1 = try Tensor.uniform([width, width], key: key.fold(in: 1), low: -bound, high: bound)
        let b1 = try Tensor.uniform([width], key: key.fold(in: 2), low: -bound, high: bound)
        let w2 = try Tensor.uniform([width, width], key: key.fold(in: 3), low: -bound, high: bound)
        let b2 = try Tensor.uniform([width], key: key.fold(in: 4), low: -bound, high: bound)
        func mlp(_ x: Tensor) throws -> Tensor {
            let h = try (w1.matmul(x.reshaped([-1, 1])).reshaped([-1]) + b1).tanh()
            return try w2.matmul(h.reshaped([-1, 1])).reshaped([-1]) + b2
        }
        let a = try Tensor.uniform([200, 1000], key: key.fold(in: 5), low: -0.05, high: 0.05)
        func regression(_ x: Tensor) throws -> Tensor { try a.matmul(x.reshaped([-1, 1])).softplus().sum() + (x * x).sum() * 0.5 }
        let x = try Tensor.uniform([width], key: key.fold(in: 12), low: -1, high: 1)
        let y = try Tensor.uniform([1000], key: key.fold(in: 13), low: -1, high: 1)
        let repeats = positive(2, "repeats", default: 200)
        let workloads: [(String, () throws -> Void)] = [
            ("jacobian forward", { _ = try jacobian(of: mlp, at: x, mode: .forward) }),
            ("jacobian reverse", { _ = try jacobian(of: mlp, at: x, mode: .reverse) }),
            ("hessian", { _ = try hessian(of: regression, at: y) }),
        ]
        for (name, body) in workloads {
            let n = name == "hessian" ? Swift.max(1, repeats / 20) : repeats
            for _ in 0..<3 { try body() }
            let times = try (0..<n).map { _ in try seconds(body) * 1e3 }
            emit(["workload": name, "median_ms": median(times), "calls": n])
            let profiler = Profiler()
            try profiler.record { for _ in 0..<Swift.min(n, 20) { try body() } }
            print(profiler.summary())
        }
    case "thermal":
        let adapter = choice(2, "adapter", ["swiftad", "tensor", "compiled", "native", "plain"]), steps = positive(3, "steps")
        let schedule = args.count > 4 ? try CheckpointSchedule.parse(args[4]) : .binomial(snapshots: 32)
        let repeats = positive(5, "repeats", default: 5)
        var times: [Double] = []
        var loss = 0.0, norm = 0.0, report: UnrollReport?
        // The compiled adapter traces and compiles once (timed apart, like a JIT's compilation).
        let thermal = ThermalModel()
        var compiled: CompiledStep<ThermalModel.State, Tensor, NoOutput>?
        // "native": the same, with the programs' arithmetic compiled to machine code (NativeCode).
        let compileSeconds = adapter != "compiled" && adapter != "native" ? 0 : try seconds {
            compiled = try CompiledStep(thermal.step, loss: thermal.loss(target: 23), state: thermal.initialState, input: thermal.forcing(0),
                                        parameters: thermal.nominalParameters, native: adapter == "native" ? .required : .off)
        }
        let compiledStep = compiled
        for _ in 0..<repeats {
            times.append(try seconds {
                switch adapter {
                case "swiftad":
                    let m = ThermalSwiftAD()
                    let r = try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule,
                                           options: UnrollOptions(verifyReplay: false))
                    (loss, norm, report) = (r.loss, euclideanNorm(r.parameterGradient.base), r.report)
                case "tensor":
                    let m = ThermalModel()
                    let r = try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule,
                                           options: UnrollOptions(verifyReplay: false))
                    (loss, norm, report) = (r.loss, euclideanNorm(r.parameterGradient.doubles), r.report)
                case "compiled", "native":
                    let m = thermal
                    let r = try unroll(compiledStep!, from: m.initialState, parameters: m.nominalParameters, steps: steps, loss: m.loss(target: 23),
                                       schedule: schedule, options: UnrollOptions(verifyReplay: false), inputs: m.forcingInputs())
                    (loss, norm, report) = (r.loss, euclideanNorm(r.parameterGradient.doubles), r.report)
                case "plain":
                    let m = ThermalSwiftAD()
                    let r = m.plainGradient(parameters: m.nominalParameters, steps: steps)
                    (loss, norm) = (r.loss, euclideanNorm(r.gradient))
                default:
                    preconditionFailure("adapters are checked by choice(_:_:_:)")
                }
            })
        }
        var fields: [String: Any] = ["model": "thermal", "adapter": adapter, "steps": steps, "ms": median(times) * 1000,
                                     "peak_rss_kib": peakRSSKiB(), "loss": loss, "gradient_norm": norm, "repeats": repeats]
        if let record = compiled?.programStatistics.record {
            fields["compile_ms"] = compileSeconds * 1000
            fields["fused_program"] = ["operations": record.operations, "aliases": record.aliases, "gathers": record.gathers, "folded_gathers": record.foldedGathers,
                                       "fallbacks": record.fallbacks, "frame_bytes": record.frameBytes, "native_instructions": record.nativeInstructions]
        }
        if let report {
            fields["schedule"] = report.schedule
            fields["forward_steps"] = report.forwardSteps
            fields["peak_snapshot_bytes"] = report.peakSnapshotBytes
            fields["input_reads"] = report.inputReads
        }
        emit(fields)
    case "heat":
        let engine = choice(2, "engine", ["native", "interpreted", "tensor"]), steps = positive(3, "steps")
        let schedule = args.count > 4 ? try CheckpointSchedule.parse(args[4]) : .storeAll
        let repeats = positive(5, "repeats", default: 3)
        let heat = HeatEquation(cells: positive(6, "cells", default: 1_000_000))
        var compileSeconds = 0.0, loss = 0.0, gradient: [Double] = [], times: [Double] = []
        var report: UnrollReport?, compilePeak = 0
        if engine == "tensor" {
            let step = TensorStep<Tensor, Void, Tensor, NoOutput> { s, _, p in (try HeatEquation.step(s, p), NoOutput()) }
            for _ in 0..<repeats {
                times.append(try seconds {
                    let r = try unroll(step, from: heat.initialState, parameters: heat.nominalParameters, steps: steps,
                                       loss: .final { s in try (s * s).mean() }, schedule: schedule, options: UnrollOptions(verifyReplay: false))
                    (loss, gradient, report) = (r.loss, r.parameterGradient.doubles, r.report)
                })
            }
        } else {
            var step: HeatEquation.Step?
            compileSeconds = try seconds { step = try heat.compiledStep(native: engine == "native" ? .required : .off) }
            compilePeak = peakRSSKiB()
            resetPeakRSS()
            for _ in 0..<repeats {
                times.append(try seconds {
                    let r = try heat.gradient(steps: steps, schedule: schedule, step: step, options: UnrollOptions(verifyReplay: false))
                    (loss, gradient, report) = (r.loss, r.parameterGradient.doubles, r.report)
                })
            }
        }
        emit(["model": "heat", "engine": engine, "steps": steps, "cells": heat.cells, "schedule": schedule.description,
              "ms": median(times) * 1000, "compile_ms": compileSeconds * 1000, "peak_rss_kib": Swift.max(compilePeak, highWaterRSSKiB()), "loss": loss,
              "peak_rss_after_compile_kib": compilePeak, "peak_rss_unroll_kib": highWaterRSSKiB(), "gradient": gradient, "repeats": repeats, "peak_snapshot_bytes": report?.peakSnapshotBytes ?? 0])
    case "rosenbrock":
        // Rosenbrock n = 10⁶ f64 (the package-benchmark workload): gradient and HVP (forward over
        // reverse), eager and through `compile` (native code and the interpreter): per-call medians.
        //   TimeBenchmarks rosenbrock [calls] [elements] [variant name prefix, e.g. gradient_native]
        let calls = positive(2, "calls", default: 50), n = positive(3, "elements", default: 1_000_000)
        let only = args.count > 4 ? args[4] : ""
        let x = try Tensor.uniform([n], key: RandomKey(seed: 2026).fold(in: 10), low: -1, high: 1)
        let v = try Tensor.uniform([n], key: RandomKey(seed: 2026).fold(in: 11), low: -1, high: 1)
        func grad(_ a: [Tensor]) throws -> [Tensor] { [try gradient(at: a[0], of: Rosenbrock.value)] }
        func hessianVector(_ a: [Tensor]) throws -> [Tensor] { [try hvp(at: a[0], direction: a[1], of: Rosenbrock.value)] }
        var results: [String: Any] = ["model": "rosenbrock", "elements": n, "calls": calls]
        let compiled = [compile(native: .required, grad), compile(native: .off, grad),
                        compile(native: .required, hessianVector), compile(native: .off, hessianVector)]
        let variants: [(String, ([Tensor]) throws -> [Tensor])] = [
            ("gradient_eager", grad), ("gradient_native", { try compiled[0]($0) }), ("gradient_interpreted", { try compiled[1]($0) }),
            ("hvp_eager", hessianVector), ("hvp_native", { try compiled[2]($0) }), ("hvp_interpreted", { try compiled[3]($0) }),
        ]
        var reference: [String: [Double]] = [:]
        for (name, f) in variants where name.hasPrefix(only) {
            let first = try seconds { _ = try f([x, v]) }
            for _ in 0..<2 { _ = try f([x, v]) }
            let times = try (0..<calls).map { _ in try seconds { _ = try f([x, v]) } * 1e3 }
            results["\(name)_ms"] = median(times)
            results["\(name)_first_call_ms"] = first * 1e3
            let out = try f([x, v])[0].doubles, kind = String(name.prefix { $0 != "_" })
            if let r = reference[kind] {
                results["\(name)_max_abs_difference"] = zip(out, r).map { abs($0 - $1) }.max() ?? 0
            } else { reference[kind] = out }
        }
        emit(results)
    case "compile":
        // A small function of two tensors: the compile time of its first call, then the median of
        // batches of warm calls (signature lookup, frame, binding, run, outputs) against the eager function.
        let n = positive(2, "elements"), calls = positive(3, "calls", default: 20000)
        let x = try Tensor.uniform([n], key: RandomKey(seed: 1)), w = try Tensor.uniform([n], key: RandomKey(seed: 2))
        func f(_ a: [Tensor]) throws -> [Tensor] { [try ((a[0] * a[1]).tanh() + a[0]).sum()] }
        var results: [String: Any] = ["model": "compile", "elements": n, "calls": calls]
        for native in [NativeCode.off, .automatic] {
            let compiled = compile(native: native, f)
            let first = try seconds { _ = try compiled([x, w]) }
            var warm: [Double] = [], eager: [Double] = []
            for _ in 0..<5 {
                warm.append(try seconds { for _ in 0..<calls { _ = try compiled([x, w]) } } / Double(calls))
                eager.append(try seconds { for _ in 0..<calls { _ = try f([x, w]) } } / Double(calls))
            }
            let name = native == .off ? "interpreted" : "native"
            results["\(name)_first_call_ms"] = first * 1000
            results["\(name)_compile_ms"] = try compiled.trace(for: [x, w]).compileSeconds * 1000
            results["\(name)_warm_us"] = median(warm) * 1e6
            results["eager_us"] = median(eager) * 1e6
        }
        emit(results)
    case "oscillator":
        let adapter = choice(2, "adapter", ["swiftad", "swiftad-eager", "plain", "swiftad-gains", "swiftad-gains-eager", "swiftad-body",
                                            "swiftad-body-step", "swiftad-body-eager", "plain-gains"]), steps = positive(3, "steps")
        let schedule = args.count > 4 ? try CheckpointSchedule.parse(args[4]) : .storeAll
        let repeats = positive(5, "repeats", default: 5)
        let m = ControlledOscillator()
        var times: [Double] = [], loss = 0.0, norm = 0.0
        for _ in 0..<repeats {
            times.append(try seconds {
                switch adapter {
                case "swiftad", "swiftad-eager":
                    let r = try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule,
                                           recording: adapter == "swiftad" ? .deferred : .eager, options: UnrollOptions(verifyReplay: false))
                    (loss, norm) = (r.loss, euclideanNorm(r.parameterGradient.base.map(Double.init)))
                case "plain":
                    let r = m.plainGradient(parameters: m.nominalParameters, steps: steps)
                    (loss, norm) = (r.loss, euclideanNorm(r.gradient.map(Double.init)))
                case "swiftad-gains", "swiftad-gains-eager":
                    let r = try m.gradient(gains: .init(), steps: steps, schedule: schedule, recording: adapter == "swiftad-gains" ? .deferred : .eager,
                                           options: UnrollOptions(verifyReplay: false))
                    (loss, norm) = (r.loss, Double(r.parameterGradient.w0))
                case "swiftad-body", "swiftad-body-step", "swiftad-body-eager":
                    // The @SwiftADStepBody step: its own engine under storeAll (`loop`; deferred or eager), or step by step.
                    let r = try m.bodyGradient(gains: .init(), steps: steps, schedule: schedule, recording: adapter == "swiftad-body-eager" ? .eager : .deferred,
                                               options: UnrollOptions(verifyReplay: false, engine: adapter == "swiftad-body-step" ? .stepFunction : nil))
                    (loss, norm) = (r.loss, Double(r.parameterGradient.w0))
                case "plain-gains":
                    let r = m.plainGradient(gains: .init(), steps: steps)
                    (loss, norm) = (r.loss, Double(r.gradient.w0))
                default:
                    preconditionFailure("adapters are checked by choice(_:_:_:)")
                }
            })
        }
        emit(["model": "oscillator", "adapter": adapter, "steps": steps, "schedule": adapter == "plain" ? "loop" : schedule.description,
              "ms": median(times) * 1000, "us_per_step": median(times) * 1e6 / Double(steps), "peak_rss_kib": peakRSSKiB(),
              "loss": loss, "gradient_norm": norm, "repeats": repeats])
    case "chain":
        let steps = positive(2, "steps"), budget = positive(3, "snapshot budget MiB") << 20
        let verify = !args.contains("--no-verify")
        let chain = SpringChain()
        let stateBytes = 2 * chain.masses * 8
        let snapshots = budget / stateBytes
        let schedule = CheckpointSchedule.binomial(snapshots: snapshots)
        let predicted = Revolve.forwardSteps(steps: steps, snapshots: snapshots)
        var last = 0
        var result: UnrollResult<SpringChain.Step>?
        let time = try seconds {
            result = try chain.gradient(parameters: chain.nominalParameters, steps: steps, schedule: schedule,
                                        options: UnrollOptions(verifyReplay: verify, progress: { done, total in
                if done * 20 / total != last {
                    last = done * 20 / total
                    FileHandle.standardError.write(Data("chain: \(last * 5)% (\(done)/\(total))\n".utf8))
                }
            }))
        }
        let r = result!
        emit(["model": "chain", "steps": steps, "snapshots": snapshots, "budget_mib": budget >> 20, "seconds": time,
              "forward_steps": r.report.forwardSteps, "predicted_forward_steps": predicted, "recorded_steps": r.report.recordedSteps,
              "peak_snapshots": r.report.peakSnapshots, "peak_snapshot_bytes": r.report.peakSnapshotBytes,
              "replay_checks": r.report.replayChecks, "peak_rss_kib": peakRSSKiB(), "loss": r.loss])
    case "cost":
        let steps = positive(2, "steps"), snapshots = positive(3, "snapshots")
        emit(["steps": steps, "snapshots": snapshots, "forward_steps": Revolve.forwardSteps(steps: steps, snapshots: snapshots)])
    case "eventlog":
        // A typical step's records: an input of two float64s and a state hash; appended until the time
        // per configuration is spent (at least 200 appends).
        let directory = args[2], budget = args.count > 3 ? Double(args[3])! : 3
        let input = Event.input(step: 0, try Tensor([0.5, 0.25], shape: [2]))
        let hash = Event.stateHash(step: 1, StateHash(0x1234_5678_9ABC_DEF0))
        for backend in ["memory", "file", "sqlite"] {
            for policy in [FsyncPolicy.everyRecord, .every(64), .never] where backend != "memory" || policy == .never {
                let path = "\(directory)/bench-\(backend)-\(policy)"
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: path + "-wal")
                try? FileManager.default.removeItem(atPath: path + "-shm")
                let log: any EventLog = backend == "memory" ? MemoryEventLog()
                    : try EventLogBackend(rawValue: backend)!.open(path: path, fsync: policy)
                var appends = 0
                let start = DispatchTime.now().uptimeNanoseconds
                var elapsed = 0.0
                while elapsed < budget || appends < 200 {
                    for _ in 0..<8 { try log.append(appends % 2 == 0 ? input : hash); appends += 1 }
                    elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
                try log.close()
                emit(["backend": backend, "fsync": policy.description, "appends": appends, "seconds": elapsed,
                      "appends_per_second": Double(appends) / elapsed, "record_bytes": input.encoded().count])
            }
        }
    case "profile-mlp":
        // Where an MLP training step (784-512-512-10, batch 256, float32, Adam) spends its time.
        var configuration = MLPTraining.Configuration()
        (configuration.examples, configuration.features, configuration.hidden, configuration.classes) = (2048, 784, 512, 10)
        (configuration.batchSize, configuration.dropout) = (256, 0)
        var training = try MLPTraining(configuration)
        for _ in 0..<5 { try training.trainStep() }
        let profiler = Profiler()
        try profiler.record { for _ in 0..<20 { try training.trainStep() } }
        print(profiler.summary())
        if args.count > 2 { try profiler.writeChromeTrace(to: args[2]) }
    case "scalar-chain":
        // x ← x·a + b, 20,000 times, forward and backward (the foundation benchmark), repeated.
        let repeats = positive(2, "repeats", default: 20)
        let a = Tensor(0.999_9), b = Tensor(0.001)
        var times: [Double] = []
        for _ in 0..<repeats {
            times.append(try seconds {
                _ = try gradient(at: a, b) { a, b in
                    var x = Tensor(1.0)
                    for _ in 0..<20_000 { x = try x * a + b }
                    return x
                }
            })
        }
        emit(["benchmark": "scalar chain", "ms": median(times) * 1e3, "us_per_op": median(times) * 1e6 / 40_000])
    case "profile-mlp-sgd":
        // The side-by-side MLP training step (784-512-512-10, batch 256, float32, plain SGD in place):
        // per-operator profile of forward + backward + update, then the step time.
        let key = RandomKey(seed: 2026)
        func layer(_ i: Int, _ fanIn: Int, _ fanOut: Int) throws -> Tensor {
            let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
            return try Tensor.uniform([fanIn, fanOut], key: key.fold(in: UInt64(i)), low: -bound, high: bound, dtype: .float32)
        }
        var model: [String: Tensor] = ["w1": try layer(1, 784, 512), "b1": try .zeros([512], dtype: .float32),
                                       "w2": try layer(2, 512, 512), "b2": try .zeros([512], dtype: .float32),
                                       "w3": try layer(3, 512, 10), "b3": try .zeros([10], dtype: .float32)]
        let x = try Tensor.uniform([256, 784], key: key.fold(in: 100), dtype: .float32)
        let labels = try (Tensor.uniform([256], key: key.fold(in: 101)) * 10).cast(to: .int64)
        let lr = try Tensor(-0.01, dtype: .float32)
        func trainStep() throws {
            let (_, grads) = try valueWithGradient(at: model) { m in
                let h1 = try (x.matmul(m["w1"]!) + m["b1"]!).relu()
                let h2 = try (h1.matmul(m["w2"]!) + m["b2"]!).relu()
                return try (h2.matmul(m["w3"]!) + m["b3"]!).crossEntropy(labels: labels).mean()
            }
            for name in model.keys.sorted() { try model[name]!.multiplyAdd_(grads[name]!, lr) }
        }
        for _ in 0..<5 { try trainStep() }
        let profiler = Profiler()
        try profiler.record { for _ in 0..<20 { try trainStep() } }
        print(profiler.summary())
        var times: [Double] = []
        for _ in 0..<50 { times.append(try seconds { try trainStep() }) }
        emit(["benchmark": "MLP train step (SGD)", "ms_p50": median(times) * 1e3])
    case "gemm-shapes":
        // The MLP step's eight products, one by one: milliseconds and GFLOP/s through dispatch.
        func gemm(_ name: String, _ aShape: [Int], _ bShape: [Int], ta: Bool, tb: Bool) throws {
            let a = try Tensor.uniform(aShape, key: RandomKey(seed: 1), dtype: .float32)
            let b = try Tensor.uniform(bShape, key: RandomKey(seed: 2), dtype: .float32)
            for _ in 0..<5 { _ = try a.matmul(b, transposeSelf: ta, transposeOther: tb) }
            var times: [Double] = []
            for _ in 0..<40 { times.append(try seconds { _ = try a.matmul(b, transposeSelf: ta, transposeOther: tb) }) }
            let m = ta ? aShape[1] : aShape[0], k = ta ? aShape[0] : aShape[1], n = tb ? bShape[0] : bShape[1]
            let t = median(times)
            emit(["product": name, "m": m, "n": n, "k": k, "ms": t * 1e3, "gflops": 2.0 * Double(m * n * k) / t / 1e9])
        }
        try gemm("x·W1", [256, 784], [784, 512], ta: false, tb: false)
        try gemm("h1·W2", [256, 512], [512, 512], ta: false, tb: false)
        try gemm("h2·W3", [256, 512], [512, 10], ta: false, tb: false)
        try gemm("g3·W3ᵀ", [256, 10], [512, 10], ta: false, tb: true)
        try gemm("h2ᵀ·g3", [256, 512], [256, 10], ta: true, tb: false)
        try gemm("g2·W2ᵀ", [256, 512], [512, 512], ta: false, tb: true)
        try gemm("h1ᵀ·g2", [256, 512], [256, 512], ta: true, tb: false)
        try gemm("xᵀ·g1", [256, 784], [256, 512], ta: true, tb: false)
        // The same eight back to back, as a training step runs them (without the other operators).
        let shapes: [([Int], [Int], Bool, Bool)] = [([256, 784], [784, 512], false, false), ([256, 512], [512, 512], false, false),
                                                    ([256, 512], [512, 10], false, false), ([256, 10], [512, 10], false, true),
                                                    ([256, 512], [256, 10], true, false), ([256, 512], [512, 512], false, true),
                                                    ([256, 512], [256, 512], true, false), ([256, 784], [256, 512], true, false)]
        let operands = try shapes.enumerated().map { i, s in
            (try Tensor.uniform(s.0, key: RandomKey(seed: UInt64(10 + i)), dtype: .float32), try Tensor.uniform(s.1, key: RandomKey(seed: UInt64(20 + i)), dtype: .float32), s.2, s.3)
        }
        for policy in [ExecutionPolicy.strict, .fast] {
            var sequence: [Double] = []
            try ExecutionPolicy.with(policy) {
                for _ in 0..<40 {
                    sequence.append(try seconds { for (a, b, ta, tb) in operands { _ = try a.matmul(b, transposeSelf: ta, transposeOther: tb) } })
                }
            }
            emit(["product": "all eight in sequence", "policy": policy.description, "ms": median(sequence) * 1e3])
        }
    case "micro":
        // Per-element cost of a few elementwise kernels on a [256, 512] float32 tensor.
        let x = try Tensor.uniform([256, 512], key: RandomKey(seed: 1), low: -1, high: 1, dtype: .float32)
        let g = try Tensor.uniform([256, 512], key: RandomKey(seed: 2), dtype: .float32)
        let c = try x.greater(x.scalarLike(0)), zero = try g.scalarLike(0), pos = try x.abs()
        for (name, f) in [("mul", { _ = try x * g }), ("greater", { _ = try x.greater(zero) }), ("select", { _ = try Tensor.select(c, g, zero) }),
                          ("sqrt", { _ = try pos.sqrt() }), ("exp", { _ = try x.exp() })] as [(String, () throws -> Void)] {
            for threads in [1, 2] {
                try Parallelism.withThreadCount(threads) {
                    for _ in 0..<20 { try f() }
                    let t = try seconds { for _ in 0..<200 { try f() } } / 200
                    emit(["kernel": name, "threads": threads, "microseconds": t * 1e6, "ns_per_element": t * 1e9 / Double(x.elementCount)])
                }
            }
        }
    case "policy":
        // The MLP of the side-by-side benchmarks (784-512-512-10, batch 256, float32), here with Adam
        // and without dropout, and the tensor thermal unroll over one day (2,880 steps, binomial:32).
        let rounds = positive(2, "rounds", default: 7)
        var configuration = MLPTraining.Configuration()
        (configuration.examples, configuration.features, configuration.hidden, configuration.classes) = (2048, 784, 512, 10)
        (configuration.batchSize, configuration.dropout) = (256, 0)
        var training = try MLPTraining(configuration)
        let thermal = ThermalModel()
        let policies: [ExecutionPolicy] = [.strict, .bestEffort, .fast, ExecutionPolicy(determinism: .strict, float64Debug: true)]
        var mlp = [String: [Double]](), unrollTimes = [String: [Double]]()
        for _ in 0..<rounds {
            for policy in policies {
                try ExecutionPolicy.with(policy) {
                    for _ in 0..<2 { try training.trainStep() }   // warm the pool for this policy
                    mlp[policy.description, default: []].append(try seconds { for _ in 0..<10 { try training.trainStep() } } / 10)
                    unrollTimes[policy.description, default: []].append(try seconds {
                        _ = try thermal.gradient(parameters: thermal.nominalParameters, steps: 2880, schedule: .binomial(snapshots: 32),
                                                 options: UnrollOptions(verifyReplay: false))
                    })
                }
            }
        }
        let strictMLP = median(mlp["strict"]!), strictUnroll = median(unrollTimes["strict"]!)
        for policy in policies {
            let name = policy.description
            emit(["policy": name, "threads": Parallelism.threadCount, "rounds": rounds,
                  "mlp_step_ms": median(mlp[name]!) * 1e3, "mlp_vs_strict": median(mlp[name]!) / strictMLP,
                  "thermal_unroll_ms": median(unrollTimes[name]!) * 1e3, "unroll_vs_strict": median(unrollTimes[name]!) / strictUnroll])
        }
    default:
        FileHandle.standardError.write(Data("unknown benchmark \(args[1])\n".utf8))
        exit(2)
    }
}

do {
    try runBenchmark()
} catch {
    FileHandle.standardError.write(Data("TimeBenchmarks: \(error)\n".utf8))
    exit(1)
}
