import Adjoint
@testable import AdjointCLI
import AdjointExamples
import AdjointTestSupport
import ArgumentParser
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Testing

/// Compares `text` with `Snapshots/<name>.txt`; set ADJOINT_RECORD_SNAPSHOTS=1 to rewrite it.
func assertSnapshot(_ text: String, named name: String, filePath: String = #filePath) throws {
    let url = URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Snapshots/\(name).txt")
    if ProcessInfo.processInfo.environment["ADJOINT_RECORD_SNAPSHOTS"] == "1" {
        try text.write(to: url, atomically: true, encoding: .utf8)
        return
    }
    let expected = try String(contentsOf: url, encoding: .utf8)
    #expect(text == expected, "snapshot \(name) differs; rerun with ADJOINT_RECORD_SNAPSHOTS=1 after checking the change")
}

@Suite("adjoint command line")
struct CLITests {
    @Test("help of every command matches its snapshot", arguments: ["adjoint", "ops", "gradcheck", "simulate", "train", "repro", "log", "log-record", "cache", "cache-compare", "cache-train", "serve", "serve-simulate", "serve-compare", "serve-train", "graph", "distributed", "distributed-check", "distributed-bench"])
    func help(_ command: String) throws {
        let types: [String: ParsableCommand.Type] = ["ops": OpsCommand.self, "gradcheck": GradcheckCommand.self, "simulate": SimulateCommand.self,
                                                     "train": TrainCommand.self, "repro": ReproCommand.self, "log": LogCommand.self,
                                                     "log-record": LogCommand.Record.self,
                                                     "cache": CacheCommand.self, "cache-compare": CacheCommand.Compare.self, "cache-train": CacheCommand.Train.self,
                                                     "serve": ServeCommand.self, "serve-simulate": ServeCommand.Simulate.self, "serve-compare": ServeCommand.Compare.self,
                                                     "serve-train": ServeCommand.Train.self,
                                                     "graph": GraphCommand.self,
                                                     "distributed": DistributedCommand.self, "distributed-check": DistributedCommand.Check.self,
                                                     "distributed-bench": DistributedCommand.Bench.self]
        let type = types[command] ?? AdjointCommand.self
        try assertSnapshot(AdjointCommand.helpMessage(for: type, columns: 100), named: "help-\(command)")
    }

    @Test("`adjoint serve simulate` and `compare` run every policy on a trace; bad options are errors naming the option")
    func serve() throws {
        let dir = temporaryDirectory("serve-cli")
        let trace = dir + "/trace.csv", table = dir + "/llm-cost-h200.csv", svg = dir + "/serve.svg"
        var csv = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        for i in 0..<40 { csv += String(format: "2023-11-16 18:17:%02d.%07d,%d,%d\n", 3 + i / 10, (i % 10) * 1_000_000, i % 4 == 0 ? 3000 : 300, 5 + i % 7) }
        try csv.write(toFile: trace, atomically: true, encoding: .utf8)
        try """
            phase,model,batch,tokens,context,latency_ms
            prefill,llama-8b-shape,1,64,0,10
            prefill,llama-8b-shape,1,4096,0,106
            decode,llama-8b-shape,1,1,512,7.5
            decode,llama-8b-shape,16,1,8192,10
            decode,llama-8b-shape,64,1,2048,10.5
            """.write(toFile: table, atomically: true, encoding: .utf8)
        let simulate = try runProcess([try adjointExecutable(), "serve", "simulate", "--trace", trace, "--policy", "sarathi:256", "--load", "2"])
        #expect(simulate.status == 0, "\(simulate.output)")
        #expect(simulate.output.contains("40 requests of trace.csv") && simulate.output.contains("Sarathi(256)") && simulate.output.contains("digest"))
        let again = try runProcess([try adjointExecutable(), "serve", "simulate", "--trace", trace, "--policy", "sarathi:256", "--load", "2"])
        #expect(again.output.components(separatedBy: "digest").last == simulate.output.components(separatedBy: "digest").last)
        let compare = try runProcess([try adjointExecutable(), "serve", "compare", "--trace", trace, "--loads", "1,4", "--svg", svg])
        #expect(compare.status == 0 && compare.output.contains("Oracle-SRF") && compare.output.contains("FCFS"), "\(compare.output)")
        let plot = try String(contentsOfFile: svg, encoding: .utf8)
        #expect(plot.hasPrefix("<svg") && plot.contains("polyline") && plot.contains("EDF"))
        // Train on the first half, compare on the second, deploy behind the guardrail.
        let model = dir + "/serve-model.safetensors"
        let train = try runProcess([try adjointExecutable(), "serve", "train", "--trace", trace, "--rounds", "2", "--output", model, "--quiet"])
        #expect(train.status == 0 && train.output.contains("round 2: imitation") && train.output.contains("wrote"), "\(train.output)")
        let resumed = try runProcess([try adjointExecutable(), "serve", "train", "--trace", trace, "--rounds", "3", "--output", model, "--quiet"])
        #expect(resumed.status == 0 && resumed.output.contains("resumed after round 2") && !resumed.output.contains("round 2: imitation"), "\(resumed.output)")
        let versus = try runProcess([try adjointExecutable(), "serve", "compare", "--trace", trace, "--loads", "2", "--learned", model,
                                     "--eval-from", "0.5", "--svg", svg])
        #expect(versus.status == 0 && versus.output.contains("Learned") && versus.output.contains("guard decisions") && versus.output.contains("Oracle-SRF("),
                "\(versus.output)")
        let deployed = try runProcess([try adjointExecutable(), "serve", "simulate", "--trace", trace, "--policy", "learned", "--learned", model,
                                       "--guardrail", "sarathi:512", "--window", "10"])
        #expect(deployed.status == 0 && deployed.output.contains("guardrail (shadow sarathi:512, windows of 10): "), "\(deployed.output)")
        for (arguments, word) in [(["--policy", "lifo"], "--policy"), (["--load", "nan"], "--load"), (["--slo", "ttft=0"], "--slo"),
                                  (["--limit", "0"], "--limit"), (["--token-budget", "0"], "token budget"), (["--policy", "learned"], "--learned"),
                                  (["--tenants", "0"], "--tenants"), (["--max-wait", "-1"], "--max-wait"), (["--eval-from", "1"], "--eval-from"),
                                  (["--guardrail", "fcfs"], "--guardrail"), (["--policy", "learned", "--learned", table], "truncated"),
                                  (["--policy", "learned", "--learned", model, "--guardrail", "learned"], "classical")] {
            let bad = try runProcess([try adjointExecutable(), "serve", "simulate", "--trace", trace] + arguments)
            #expect(bad.status != 0 && bad.output.contains(word), "\(arguments): \(bad.output)")
        }
        let missing = try runProcess([try adjointExecutable(), "serve", "simulate", "--trace", dir + "/none.csv"])
        #expect(missing.status != 0 && missing.output.contains("none.csv"))
    }

    @Test("`adjoint ops` lists every operator with its derivative status")
    func ops() throws {
        let text = OpsCommand.render()
        try assertSnapshot(text, named: "ops")
        for op in OpCode.allCases { #expect(text.contains(op.rawValue)) }
        #expect(OpsCommand.render(family: .nn).split(separator: "\n").count == 4 + 2 + 1)
        #expect(OpsCommand.render().contains("VJP+JVP"))   // rows, header and rule, summary
        #expect(throws: (any Error).self) { try OpsCommand.parse(["--family", "nope"]) }
    }

    @Test("`adjoint gradcheck` prints a per-op table and fails on a wrong rule")
    func gradcheck() throws {
        let report = GradcheckCommand.report(OpSpec.table)
        #expect(report.passed)
        let header = report.text.split(separator: "\n").first { $0.hasPrefix("operator") }
        #expect(header?.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
                == ["operator", "cases", "rev", "fwd", "fwd=rev", "tolerance", "result"])
        #expect(report.text.hasSuffix("all passed"))
        #expect(Set(OpSpec.table.map(\.op)).allSatisfy { report.text.contains($0.rawValue) })
        // One row per operator, even for cases that are not adjacent in the table (binary.mul's x·x).
        for op in Set(OpSpec.table.map(\.op)) {
            #expect(report.text.split(separator: "\n").filter { $0.hasPrefix(op.rawValue + " ") }.count == 1, "\(op.rawValue)")
        }
        // A case whose "rule" is wrong: x·stop(x) is checked as if it were x², so it must fail.
        let wrong = OpSpec(.mul, "deliberately wrong", [InputSpec(.fixed([3]), .uniform(1...2))]) { xs in
            try xs[0] * withoutDerivative(at: xs[0])
        }
        let failing = GradcheckCommand.report([wrong])
        #expect(!failing.passed && failing.text.contains("FAIL binary.mul"))
        #expect(throws: ValidationError.self) { let c = try GradcheckCommand.parse(["--op", "definitely-not-an-op"]); try c.run() }
    }

    @Test("`adjoint gradcheck --mode --order` selects the checks", arguments: [
        (["--mode", "fwd"], ["fwd"]), (["--mode", "rev"], ["rev"]), (["--mode", "both", "--order", "1"], ["rev", "fwd", "fwd=rev"]),
        (["--order", "2", "--mode", "fwd"], ["hvp fwd/rev"]), (["--order", "2", "--mode", "rev"], ["hvp rev/rev"]),
        (["--order", "2"], ["hvp fwd/rev", "hvp rev/rev"]),
    ])
    func gradcheckModes(_ arguments: [String], _ columns: [String]) throws {
        let command = try GradcheckCommand.parse(arguments + ["--op", "elementwise.tanh"])
        let report = GradcheckCommand.report(OpSpec.table.filter { $0.op == .tanh }, mode: command.mode, order: command.order)
        #expect(report.passed)
        let header = try #require(report.text.split(separator: "\n").first { $0.hasPrefix("operator") })
        for column in columns { #expect(header.contains(column)) }
        let all = ["rev", "fwd", "fwd=rev", "hvp fwd/rev", "hvp rev/rev"]
        for column in all where !columns.contains(column) {
            #expect(!header.split(separator: "  ").map { $0.trimmingCharacters(in: .whitespaces) }.contains(column))
        }
    }

    @Test("`adjoint gradcheck` rejects a bad mode or order")
    func gradcheckBadOptions() {
        #expect(throws: (any Error).self) { try GradcheckCommand.parse(["--mode", "sideways"]) }
        #expect(throws: (any Error).self) { try GradcheckCommand.parse(["--order", "3"]) }
        #expect(throws: (any Error).self) { try GradcheckCommand.parse(["--order", "two"]) }
    }

    @Test("`adjoint simulate` prints the loss, gradient norm, per-parameter gradients and the report")
    func simulate() throws {
        let text = try SimulateCommand.report(.ball, steps: 200, schedule: .binomial(snapshots: 4))
        let ball = BouncingBallReference.result(steps: 200)
        #expect(text.contains(String(format: "loss           %.9e", ball.loss)))
        let norm = ball.parameterGradient.doubles.reduce(0) { $0 + $1 * $1 }.squareRoot()
        #expect(text.contains(String(format: "gradient norm  %.9e", norm)))
        #expect(text.contains("∂L/∂restitution"))
        #expect(text.contains("forward steps       \(Revolve.forwardSteps(steps: 200, snapshots: 4))"))
        #expect(text.contains("schedule            binomial:4"))
        for model in SimulateCommand.Model.allCases {
            let report = try SimulateCommand.report(model, steps: 30, schedule: .uniform(every: 5))
            #expect(report.hasPrefix("\(model.rawValue): 30 steps, schedule uniform:5"))
        }
    }

    @Test("`adjoint simulate --compiled` prints exactly what the tensor step does, on the packed engine", arguments: [SimulateCommand.Model.thermal, .chain])
    func simulateCompiled(_ model: SimulateCommand.Model) throws {
        /// The report's lines after the title, the engine's apart.
        func body(_ text: String) -> (lines: [Substring], engine: [Substring]) {
            let lines = text.split(separator: "\n").dropFirst()
            return (lines.filter { !$0.hasPrefix("engine ") }, lines.filter { $0.hasPrefix("engine ") })
        }
        let tensor = body(try SimulateCommand.report(model, steps: 40, schedule: .binomial(snapshots: 4)))
        let compiledText = try SimulateCommand.report(model, steps: 40, schedule: .binomial(snapshots: 4), compiled: true)
        #expect(compiledText.hasPrefix("\(model.rawValue): 40 steps, schedule binomial:4, compiled, "))
        let compiled = body(compiledText)
        #expect(tensor.lines == compiled.lines)
        #expect(tensor.engine == ["engine              stepFunction"] && compiled.engine == ["engine              packed"])
        let nativeText = try SimulateCommand.report(model, steps: 40, schedule: .binomial(snapshots: 4), compiled: true, native: true)
        #expect(nativeText.hasPrefix("\(model.rawValue): 40 steps, schedule binomial:4, compiled, native code, "))
        #expect(tensor.lines == body(nativeText).lines && body(nativeText).engine == compiled.engine)
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["ball", "--compiled"]) }
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["thermal", "--native"]) }
    }

    @Test("`adjoint simulate` rejects a bad model, schedule or step count")
    func simulateBadOptions() {
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["pendulum"]) }
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["ball", "--schedule", "binomial:0"]) }
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["ball", "--schedule", "lru"]) }
        #expect(throws: (any Error).self) { try SimulateCommand.parse(["ball", "--steps", "0"]) }
        #expect(throws: Never.self) { try SimulateCommand.parse(["chain", "--steps", "10", "--schedule", "multiTier:2+2"]) }
        // Empty and degenerate texts (found by fuzzing: "" trapped) and overflowing counts are errors.
        for text in ["", ":", "::", ":5", "binomial:", "multiTier:", "multiTier:+", "multiTier:1+2+3", "uniform:-1"] {
            #expect(throws: UnrollError.self, "'\(text)'") { try CheckpointSchedule.parse(text) }
        }
        for schedule in ["binomial:9223372036854775807", "multiTier:9223372036854775807+1", "multiTier:4611686018427387904+4611686018427387904",
                         "uniform:9223372036854775807", "online:9223372036854775807", "truncated:9223372036854775807", "binomial:99999999999999999999"] {
            #expect(throws: (any Error).self, "\(schedule)") { try SimulateCommand.parse(["thermal", "--steps", "10", "--schedule", schedule]) }
            #expect { try CheckpointSchedule.parse(schedule) } throws: { "\($0)".contains("at most \(CheckpointSchedule.maximumCount)") || "\($0)".contains("integer") }
        }
        #expect { try SimulateCommand.parse(["thermal", "--steps", "9223372036854775807"]) } throws: { error in
            SimulateCommand.message(for: error).contains("\(CheckpointSchedule.maximumSteps)")
        }
        #expect(throws: UnrollError.invalidSteps(Int.max)) { try CheckpointSchedule.binomial(snapshots: 32).cost(steps: .max) }
    }
}

/// The ball's result computed directly, to compare with what the command prints.
enum BouncingBallReference {
    static func result(steps: Int) -> UnrollResult<BouncingBall.Step> {
        let ball = BouncingBall()
        return try! ball.gradient(parameters: ball.nominalParameters, steps: steps, schedule: .storeAll)
    }
}

@Suite("adjoint repro and train")
struct ReproCLITests {
    @Test("`adjoint repro mlp` finds the strict policy bitwise identical across runs and thread counts")
    func repro() throws {
        let outcome = try ReproCommand.compare(.mlp, steps: 3, threadCounts: [1, 3], policy: .strict)
        #expect(outcome.identical && outcome.text.hasSuffix("bitwise identical: 3 runs, thread counts 1, 3"))
        #expect(outcome.manifest.policy == .strict)
        for bad in [["mlp", "--threads", "0"], ["mlp", "--threads", "1,x"], ["mlp", "--policy", "loose"], ["mlp", "--steps", "0"], ["nope"],
                    ["mlp", "--steps", "99999999999999999999"], ["mlp", "--ranks", "0"], ["mlp", "--ranks", "-1"], ["mlp", "--ranks", "65"],
                    ["mlp", "--ranks", "1,,2"], ["mlp", "--ranks", ""], ["mlp", "--ranks", "99999999999999999999"], ["mlp", "--ranks", "2x"],
                    ["thermal", "--ranks", "2"], ["mlp", "--ranks", "2", "--summation", "exact"]] {
            #expect(throws: (any Error).self, "\(bad)") { try ReproCommand.parse(bad) }
        }
        for bad in [["--timeout", "0"], ["--timeout", "-1"], ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "1e9"], ["--timeout", "x"]] {
            #expect(throws: (any Error).self, "\(bad)") { try DistributedCommand.Check.parse(bad) }
        }
        for bad in ["0", "-1", "65537", "99999999999999999999", "x", ""] {
            #expect(throws: (any Error).self, "\(bad)") { try LogCommand.Gradient.parse(["run.log", "--distributed", "--prepared-segments", bad]) }
        }
        #expect(try LogCommand.Gradient.parse(["run.log", "--prepared-segments", "65536"]).preparedSegments == 65536)
        for bad in [["--megabytes", "0"], ["--megabytes", "257"], ["--megabytes", "nan"], ["--repeats", "0"], ["--repeats", "10001"],
                    ["--batch", "0"], ["--batch", "99999999999999999999"], ["--bucket-kib", "0"], ["--workload", "gemm"], ["--timeout", "-5"]] {
            #expect(throws: (any Error).self, "\(bad)") { try DistributedCommand.Bench.parse(bad) }
        }
        for bad in [["--distributed", "--summation", "exact"], ["--steps", "100000001"], ["--hidden", "65537"]] {
            #expect(throws: (any Error).self, "\(bad)") { try TrainCommand.parse(bad) }
        }
    }

    @Test("`adjoint repro --ranks` with an mpirun that is not there is an error naming it")
    func reproMissingMPIRun() throws {
        let result = try runProcess([try adjointExecutable(), "repro", "mlp", "--ranks", "2", "--mpirun", "/nonexistent/mpirun"])
        #expect(result.status == 1 && result.output.contains("--mpirun '/nonexistent/mpirun': not an executable file"), "\(result.output)")
    }

    @Test("`adjoint train` validates its options")
    func trainOptions() throws {
        for bad in [["--steps", "-1"], ["--steps", "0"], ["--save-every", "0"], ["--keep", "0"], ["--threads", "0"], ["--policy", "fastest"]] {
            #expect(throws: (any Error).self) { try TrainCommand.parse(bad) }
        }
    }

    @Test("`adjoint train` resumed at or past --steps says there is nothing to train instead of printing a NaN loss")
    func trainNothingToDo() throws {
        let dir = (temporaryDirectory("train-nothing") as NSString).appendingPathComponent("run")
        let first = try runProcess([try adjointExecutable(), "train", "--steps", "4", "--save-every", "2", "--checkpoint-directory", dir, "--quiet"])
        #expect(first.status == 0 && first.output.contains("step 4 loss "), "\(first.output)")
        let again = try runProcess([try adjointExecutable(), "train", "--steps", "2", "--checkpoint-directory", dir, "--quiet"])
        #expect(again.status == 0 && again.output.contains("step 4: nothing to train") && !again.output.lowercased().contains("nan"), "\(again.output)")
    }
}

@Suite("adjoint log")
struct LogCLITests {
    @Test("record, inspect, replay and differentiate a live thermal run", arguments: ["file", "sqlite"])
    func roundTrip(_ backend: String) throws {
        let path = (temporaryDirectory("cli-log") as NSString).appendingPathComponent("thermal.\(backend)")
        let record = try LogCommand.Record.parse(["--log", path, "--backend", backend, "--steps", "150", "--checkpoint-every", "40"])
        try record.run()
        let more = try LogCommand.Record.parse(["--log", path, "--steps", "200"])   // resumes, backend detected
        try more.run()
        let (report, damaged) = try LogCommand.Inspect.report(path)
        #expect(!damaged)
        #expect(report.contains("\(backend) log") && report.contains("input       200") && report.contains("stateHash   201"), "\(report)")
        let replay = try LogCommand.Replay.parse([path])
        try replay.run()
        // The recorded run's gradient equals a direct unroll over the same (noisy) inputs, bitwise.
        let log = try EventLogBackend(rawValue: backend)!.open(path: path)
        let recorded = try RecordedTrajectory(log: log)
        let model = ThermalModel()
        let fromLog = try unroll(model.step, recorded: recorded, parameters: model.nominalParameters, template: model.initialState,
                                 loss: model.loss(target: 23), schedule: .binomial(snapshots: 4))
        let direct = try unroll(model.step, from: model.initialState, parameters: model.nominalParameters, steps: 200,
                                loss: model.loss(target: 23), schedule: .storeAll) { try LogCommand.input($0).0 }
        #expect(fromLog.loss == direct.loss && bitwiseEqual(fromLog.parameterGradient, direct.parameterGradient))
        #expect(recorded.checkpointSteps == [0, 40, 80, 120])
        #expect(throws: (any Error).self) { try LogCommand.Record.parse(["--log", path, "--fsync", "zero"]) }
        #expect(throws: (any Error).self) { try LogCommand.Inspect.report(path + ".missing") }
    }

    @Test("inspect, replay and gradient never modify a damaged log; replay refuses it unless --valid-prefix; --salvage copies it")
    func damagedLog() throws {
        let directory = temporaryDirectory("cli-log-damaged")
        let path = (directory as NSString).appendingPathComponent("thermal.log")
        let record = try LogCommand.Record.parse(["--log", path, "--backend", "file", "--steps", "300", "--checkpoint-every", "40"])
        try record.run()
        var bytes = try AtomicFile.read(path)
        bytes[bytes.count / 2] ^= 0x10             // one flipped bit in the middle
        try AtomicFile.write(bytes, to: path)
        let (report, damaged) = try LogCommand.Inspect.report(path)
        #expect(damaged && report.contains("damaged: bytes "), "\(report)")
        #expect { let c = try LogCommand.Inspect.parse([path]); try c.run() } throws: { ($0 as? ExitCode)?.rawValue == 1 }
        #expect { let c = try LogCommand.Replay.parse([path]); try c.run() } throws: { "\($0)".contains("--valid-prefix") }
        #expect { let c = try LogCommand.Gradient.parse([path]); try c.run() } throws: { "\($0)".contains("damaged") }
        let prefix = try LogCommand.Replay.parse([path, "--valid-prefix"])
        try prefix.run()
        let gradient = try LogCommand.Gradient.parse([path, "--valid-prefix"])
        try gradient.run()
        #expect { let c = try LogCommand.Record.parse(["--log", path, "--steps", "400"]); try c.run() } throws: { "\($0)".contains("damaged") }
        #expect(try AtomicFile.read(path) == bytes, "a command modified the log")
        let salvaged = (directory as NSString).appendingPathComponent("salvaged.log")
        let salvage = try LogCommand.Inspect.parse([path, "--salvage", salvaged])
        try salvage.run()
        #expect(try AtomicFile.read(path) == bytes)
        let (copy, copyDamaged) = try LogCommand.Inspect.report(salvaged)
        #expect(!copyDamaged && copy.contains("clean"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == ["salvaged.log", "thermal.log"])
    }

    @Test("read commands on a missing log create nothing", arguments: ["inspect", "replay", "gradient"])
    func missingLog(_ command: String) throws {
        let directory = temporaryDirectory("cli-log-missing")
        let path = (directory as NSString).appendingPathComponent("NOSUCH")
        #expect(throws: (any Error).self) {
            var c = try LogCommand.parseAsRoot([command, path])
            try c.run()
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
    }
}

@Suite("adjoint cache")
struct CacheCLITests {
    @Test("compare prints every policy at every size and writes an SVG with one line per policy")
    func compare() throws {
        let svg = (temporaryDirectory("cache-cli") as NSString).appendingPathComponent("plot.svg")
        let command = try CacheCommand.Compare.parse(["--requests", "8000", "--cache-sizes", "2%,10%", "--svg", svg, "--quiet"])
        try command.run()
        let text = try String(contentsOfFile: svg, encoding: .utf8)
        let parser = XMLParser(data: Data(text.utf8))
        #expect(parser.parse(), "the SVG is not well-formed XML")
        let lines = text.components(separatedBy: "<polyline").count - 1
        // Every classical policy, LRU behind TinyLFU admission, and the learned model as deployed.
        #expect(lines == PolicyKind.allCases.count + 2)
        for kind in PolicyKind.allCases { #expect(text.contains(">\(kind.rawValue)<")) }
        #expect(text.contains(">Learned<") && text.contains(">LRU+TinyLFU<"))
        // --count-from: counted requests only; beyond the trace, a clear error.
        let counted = try runProcess([try adjointExecutable(), "cache", "compare", "--requests", "6000", "--cache-sizes", "5%", "--no-learned",
                                      "--count-from", "3000", "--svg", svg])
        #expect(counted.status == 0 && counted.output.contains("misses counted from request 3000 on"), "\(counted.output)")
        for bad in ["6000", "-1", "99999999999999999999999"] {
            let run = try runProcess([try adjointExecutable(), "cache", "compare", "--requests", "6000", "--no-learned", "--count-from", bad, "--svg", svg])
            #expect(run.status != 0 && run.output.contains("count-from"), "\(bad): \(run.output)")
        }
        let lrb = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "LRB", "--cache-size", "3%"])
        #expect(lrb.status == 0 && lrb.output.contains("LRB: 0 models trained, 0 histories forgotten early, 0 labels skipped"), "\(lrb.output)")
    }

    @Test("train writes a model that simulate loads, and a second run resumes from the checkpoints")
    func trainAndSimulate() throws {
        let dir = temporaryDirectory("cache-train-cli")
        let model = (dir as NSString).appendingPathComponent("model.safetensors")
        let args = ["--requests", "6000", "--cache-size", "3%", "--rounds", "2", "--model", model, "--quiet"]
        let train = try CacheCommand.Train.parse(args)
        try train.run()
        #expect(FileManager.default.fileExists(atPath: model) && FileManager.default.fileExists(atPath: model + ".json"))
        let first = try CacheModel.read(model)
        let again = try CacheCommand.Train.parse(args)   // resumes: every round is checkpointed already
        try again.run()
        #expect(zip(try CacheModel.read(model).scorer.tensors, first.scorer.tensors).allSatisfy(bitwiseEqual))
        let simulate = try CacheCommand.Simulate.parse(["--requests", "6000", "--policy", "Learned", "--model", model, "--cache-size", "3%"])
        try simulate.run()
        let guarded = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "Learned", "--model", model,
                                      "--cache-size", "3%", "--guardrail", "S3-FIFO", "--window", "1000", "--sampling", "2", "--online-learning"])
        #expect(guarded.status == 0 && guarded.output.contains("guardrail (shadow S3-FIFO, windows of 1000, 1 key in 2): ")
                && guarded.output.contains("online update"), "\(guarded.output)")
        for bad in [["--policy", "MRU"], ["--policy", "Learned"], ["--format", "parquet"], ["--limit", "0"],
                    ["--policy", "Learned", "--model", model, "--guardrail", "Belady"], ["--guardrail", "S3-FIFO"],
                    ["--policy", "Learned", "--model", model, "--guardrail", "LRU", "--window", "1"],
                    ["--policy", "Learned", "--model", model, "--guardrail", "LRU", "--sampling", "0"],
                    ["--admission", "bloom"], ["--admission", ""], ["--policy", "Learned", "--model", model, "--admission", "TinyLFU"],
                    ["--policy", "Learned", "--model", model, "--guardrail", "LRU", "--admission", "SeenBefore"]] {
            #expect(throws: (any Error).self) { try CacheCommand.Simulate.parse(bad) }
        }
        #expect(throws: (any Error).self) { try CacheCommand.Train.parse(["--admission-method", "oracle"]) }
        for bad in ["", "1%,", "0%", "nan%", "5%,-3"] {
            #expect { try CacheCommand.Train.parse(["--requests", "6000", "--also-at", bad, "--model", model + ".x"]).run() } throws: { "\($0)".contains("--also-at") }
        }
        let admitted = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "S3-FIFO", "--admission", "tinylfu",
                                       "--cache-size", "3%"])
        #expect(admitted.status == 0 && admitted.output.contains("S3-FIFO+TinyLFU: miss ratio") && admitted.output.contains("misses kept out"), "\(admitted.output)")
        let ungated = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "Learned", "--model", model,
                                      "--admission", "none", "--cache-size", "3%"])
        #expect(ungated.status == 0 && ungated.output.contains("\nLearned: miss ratio"), "\(ungated.output)")
        // A model that found LRU better at its larger training size deploys LRU near that size.
        var sized = try CacheModel.read(model)
        (sized.metadata.trainingSizes, sized.metadata.lruSizes) = ([20, 400], [400])
        let sizedPath = model + ".sized.safetensors"
        try sized.write(to: sizedPath)
        for (size, lru) in [("300", true), ("30", false)] {
            let run = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "Learned", "--model", sizedPath,
                                      "--cache-size", size])
            #expect(run.status == 0 && run.output.contains("the model deploys LRU at this size") == lru && run.output.contains("validator:") == !lru,
                    "\(size): \(run.output)")
        }
        // One that found LIRS better at its smaller size deploys LIRS there, and the learned policy at the other.
        (sized.metadata.lruSizes, sized.metadata.fallbacks) = (nil, [CacheModel.Fallback(size: 20, policy: "LIRS")])
        try sized.write(to: sizedPath)
        let lirs = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "LIRS", "--cache-size", "25"])
        for (size, fallback) in [("25", true), ("300", false)] {
            let run = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "Learned", "--model", sizedPath,
                                      "--cache-size", size])
            #expect(run.status == 0 && run.output.contains("the model deploys LIRS at this size") == fallback && run.output.contains("validator:") == !fallback,
                    "\(size): \(run.output)")
            if fallback, let missRatio = lirs.output.split(separator: "\n").first(where: { $0.hasPrefix("LIRS: miss ratio") })?.split(separator: ",").first {
                #expect(run.output.contains(String(missRatio.dropFirst(4))), "\(run.output) vs \(lirs.output)")
            }
        }
        // Behind the guardrail the model's deployed policy is the one guarded, and it says so.
        let guardedRun = try runProcess([try adjointExecutable(), "cache", "simulate", "--requests", "6000", "--policy", "Learned", "--model", sizedPath,
                                      "--cache-size", "25", "--guardrail", "S3-FIFO", "--window", "1000"])
        #expect(guardedRun.status == 0 && guardedRun.output.contains("the model deploys LIRS at this size") && guardedRun.output.contains("windows on the model's policy"),
                "\(guardedRun.output)")
        for bad in ["1", "0", "-4", "4097", "99999999999999999999"] {
            #expect { try CacheCommand.Train.parse(["--candidates", bad]) } throws: { "\($0)".contains("candidates") }
        }
        #expect(try CacheCommand.Train.parse(["--candidates", "4096"]).candidates == 4096)
        #expect(throws: (any Error).self) { try CacheCommand.capacity("-3%", footprint: 100) }
        #expect(try CacheCommand.capacity("5%", footprint: 1000) == 50 && CacheCommand.capacity("70", footprint: 1000) == 70)
    }

    @Test("hostile cache sizes are errors naming the option and the limit", arguments: [
        "1e30%", "inf%", "-inf%", "nan%", "0%", "100.5%", "%", "-3", "0", "99999999999999999999", "1e3", "",
    ])
    func hostileCacheSize(_ text: String) throws {
        #expect { try CacheCommand.capacity(text, footprint: .max) } throws: { "\($0)".contains("--cache-size '\(text)'") }
        #expect(try CacheCommand.capacity("100%", footprint: .max) == .max && CacheCommand.capacity("100%", footprint: 0) == 1)
    }

    @Test("training that sees no eviction, an empty trace and an empty size list are errors, not traps", arguments: [
        ["--limit", "1"], ["--cache-size", "100%"], ["--sizes", "bytes", "--csv-size", "1", "--cache-size", "10"],
    ])
    func noEvictions(_ extra: [String]) throws {
        let dir = temporaryDirectory("cache-no-evictions")
        let trace = (dir as NSString).appendingPathComponent("large.csv")
        // In bytes, every object is larger than a 10-byte cache: none is admitted, none evicted.
        // (Zero-byte objects are charged one byte, so they are evicted like any other.)
        try AtomicFile.write(Array("1,50\n2,50\n3,50\n1,50\n2,50\n".utf8), to: trace)
        let model = (dir as NSString).appendingPathComponent("m.safetensors")
        let train = try CacheCommand.Train.parse(["--trace", trace, "--model", model, "--quiet"] + extra)
        #expect { try train.run() } throws: { "\($0)".contains("training sees no eviction") }
        let compareExtra = extra.map { $0 == "--cache-size" ? "--cache-sizes" : $0 }
        let compare = try CacheCommand.Compare.parse(["--trace", trace, "--quiet", "--svg", (dir as NSString).appendingPathComponent("p.svg")] + compareExtra)
        #expect { try compare.run() } throws: { "\($0)".contains("training sees no eviction") }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["large.csv"])
        let empty = (dir as NSString).appendingPathComponent("empty.csv")
        try AtomicFile.write([], to: empty)
        let simulate = try CacheCommand.Simulate.parse(["--trace", empty])
        #expect { try simulate.run() } throws: { "\($0)".contains("holds no requests") }
        for bad in ["0", "-5", "99999999999999999999"] {
            #expect(throws: (any Error).self) { try CacheCommand.Compare.parse(["--training-requests", bad]) }
        }
        let noSizes = try CacheCommand.Compare.parse(["--trace", trace, "--cache-sizes", ",", "--no-learned", "--quiet"])
        #expect { try noSizes.run() } throws: { "\($0)".contains("at least one size") }
    }

    @Test("cache train refuses a model path whose directory does not exist, and creates nothing")
    func missingModelDirectory() throws {
        let dir = temporaryDirectory("cache-model-dir")
        let model = (dir as NSString).appendingPathComponent("missing/m.safetensors")
        #expect { try CacheCommand.Train.parse(["--requests", "2000", "--model", model, "--quiet"]) } throws: {
            CacheCommand.Train.message(for: $0).contains("does not exist")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
    }

    @Test("a missing or damaged trace is reported with the file name")
    func badTrace() throws {
        let missing = try CacheCommand.Simulate.parse(["--trace", "/nonexistent/x.bin"])
        #expect { try missing.run() } throws: { "\($0)".contains("/nonexistent/x.bin") }
        let path = (temporaryDirectory("cache-bad") as NSString).appendingPathComponent("t.bin")
        try AtomicFile.write([UInt8](repeating: 1, count: 30), to: path)
        let truncated = try CacheCommand.Simulate.parse(["--trace", path])
        #expect { try truncated.run() } throws: { "\($0)".contains("truncated at record 1") }
    }
}

@Suite("adjoint graph")
struct GraphCLITests {
    @Test("export a thermal step, verify it, print it")
    func exportVerifyPrint() throws {
        let path = (temporaryDirectory("graph-cli") as NSString).appendingPathComponent("thermal.agraph")
        let export = try GraphCommand.Export.parse([path])
        try export.run()
        let report = try GraphCommand.Verify.report(path)
        #expect(report.contains("OK") && report.contains("bitwise identical on a second run"), "\(report)")
        #expect(report.contains("bitwise identical to the interpreter") && report.contains("0 through temporary tensors"), "\(report)")
        var bytes = try AtomicFile.read(path)
        bytes[bytes.count - 1] ^= 0x80
        try AtomicFile.write(bytes, to: path)
        #expect { _ = try GraphCommand.Verify.report(path) } throws: { "\($0)".contains("checksum mismatch") }
    }
}
