import Adjoint
import ArgumentParser
import Foundation
import AdjointIO

extension ServingCostModel.Model: ExpressibleByArgument {}
extension ServingTrainingMethod: ExpressibleByArgument {}

/// `adjoint serve`: request scheduling and batching for LLM serving, simulated on real traces.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Simulate LLM serving (continuous batching, chunked prefill, KV blocks, preemption) on a request trace.",
        subcommands: [Simulate.self, Compare.self, Train.self]
    )

    /// The trace, the model, the cost table, the load and the server's settings.
    struct Options: ParsableArguments {
        @Option(name: .long, help: "A request trace: Azure LLM inference CSV or Mooncake JSONL.")
        var trace: String

        @Option(name: .long, help: "The model shape: 1b or 8b.")
        var model: ServingCostModel.Model = .llama8b

        @Option(name: .long, help: "The measured cost table (default: llm-cost-h200.csv beside the trace).")
        var costTable: String?

        @Option(name: .long, help: "Latency budgets, e.g. ttft=2,tpot=0.1 (seconds).")
        var slo = "ttft=2,tpot=0.1"

        @Option(name: .long, help: "Tokens per iteration (prefill chunks and decodes).")
        var tokenBudget = 8192

        @Option(name: .long, help: "Sequences per iteration.")
        var maxBatch = 256

        @Option(name: .long, help: "KV-cache blocks of 16 tokens (default: what fits on the GPU beside the weights).")
        var kvBlocks: Int?

        @Option(name: .long, help: "Prefix-cache capacity in 512-token blocks (Mooncake hash_ids; 0: off).")
        var prefixCache = 0

        @Option(name: .long, help: "Read at most this many requests.")
        var limit: Int?

        @Option(name: .long, help: "Spread requests over this many tenants (by a hash of their position; the traces name none).")
        var tenants = 1

        @Option(name: .long, help: "Guard: a request waiting this long (seconds) is admitted first.")
        var maxWait = 5.0

        @Option(name: .long, help: "Guard: each waiting tenant's floor, as a share of its fair part of recent admissions (0: off).")
        var tenantFloor = 0.5

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            guard (1 ... 65536).contains(tenants) else { throw ValidationError("--tenants must be in 1 ... 65536, got \(tenants)") }
            guard maxWait.isFinite, maxWait > 0, maxWait <= 1e7 else { throw ValidationError("--max-wait must be a number of seconds in (0, 10⁷], got \(maxWait)") }
            guard tenantFloor.isFinite, (0 ... 1).contains(tenantFloor) else { throw ValidationError("--tenant-floor must be in 0 ... 1, got \(tenantFloor)") }
            _ = try parsedSLO()
        }

        func parsedSLO() throws -> ServingSLO {
            do { return try ServingSLO.parse(slo) } catch { throw ValidationError("\(error)") }
        }

        var table: String { costTable ?? ((trace as NSString).deletingLastPathComponent as NSString).appendingPathComponent("llm-cost-h200.csv") }

        func simulator() throws -> ServingSimulator {
            let cost = try ServingCostModel.fitted(table: table, model: model)
            return try ServingSimulator(cost: cost, configuration: ServingConfiguration(
                tokenBudget: tokenBudget, maxBatch: maxBatch, kvBlocks: kvBlocks, prefixCacheBlocks: prefixCache, slo: try parsedSLO(),
                guardSettings: ServingGuardSettings(maxWait: maxWait, tenantFloor: tenantFloor)))
        }

        /// The trace at `load`; with `from` > 0, only the requests from that fraction of it on
        /// (the held-out part of a model trained on the rest).
        func requests(load: Double, from: Double = 0) throws -> [ServingRequest] {
            let all = ServingRequest.assigningTenants(try ServingTraceReader.readAll(path: trace, load: load, limit: limit ?? .max), count: tenants)
            let cut = Int((Double(all.count) * from).rounded())
            guard cut < all.count else { throw ValidationError("--eval-from \(from) leaves no request of \(all.count)") }
            return Array(all[cut...])
        }

        var name: String { (trace as NSString).lastPathComponent }
    }

    static func policy(_ text: String, learned: String?) throws -> SchedulingPolicy {
        if text.lowercased() == "learned" {
            guard let learned else { throw ValidationError("--policy learned needs --learned MODEL (a file `adjoint serve train` wrote)") }
            return .learned(try ServingPolicyModel.read(learned))
        }
        switch text.lowercased() {
        case "fcfs": return .fcfs
        case "spf": return .shortestPromptFirst
        case "edf": return .earliestDeadlineFirst
        case "oracle", "srf", "oracle-srf": return .clairvoyant
        default:
            if text.lowercased().hasPrefix("sarathi") {
                let digits = text.drop { !$0.isNumber }.prefix { $0.isNumber }
                if digits.isEmpty { return .tokenBudget(512) }
                if let budget = Int(digits), (1 ... 1 << 20).contains(budget) { return .tokenBudget(budget) }
            }
            throw ValidationError("--policy must be fcfs, spf, sarathi[:BUDGET], edf, oracle or learned, got '\(text)'")
        }
    }

    static func loads(_ text: String, option: String) throws -> [Double] {
        let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count <= 64, values.allSatisfy({ $0 != nil && $0!.isFinite && $0! > 0 && $0! <= 1e6 }) else {
            throw ValidationError(option == "--loads" ? "--loads must be 1 to 64 comma-separated factors in (0, 10⁶], got '\(text)'"
                                                      : "\(option) must be a factor in (0, 10⁶], got '\(text)'")
        }
        return values.map { $0! }
    }

    static func row(_ load: Double, _ r: ServingReport, label: String? = nil) -> [String] {
        func ms(_ s: Double) -> String { String(format: "%.0f", s * 1000) }
        return [String(format: "%.2f", load), label ?? r.policy, ms(r.ttft.mean), ms(r.ttft.p99), String(format: "%.1f", r.tpot.mean * 1000),
                ms(r.endToEnd.mean), ms(r.endToEnd.p50), ms(r.endToEnd.p99), String(format: "%.1f%%", r.sloAttainment * 100),
                String(format: "%.2f", r.goodput), "\(r.preemptions)"]
    }

    static let header = ["load", "policy", "TTFT mean ms", "TTFT p99", "TPOT ms", "E2E mean ms", "E2E p50", "E2E p99", "SLO met", "goodput/s", "preempted"]

    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one policy at one load and print the latency report.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "fcfs, spf, sarathi[:BUDGET], edf, oracle or learned.")
        var policy = "fcfs"
        @Option(name: .long, help: "The model file of --policy learned (written by `adjoint serve train`).")
        var learned: String?
        @Option(name: .long, help: "Arrival-rate factor: inter-arrival times divided by it.")
        var load = 1.0
        @Option(name: .long, help: "Simulate the requests from this fraction of the trace on (0.5: the half a model trained on the first half has not seen).")
        var evalFrom = 0.0
        @Option(name: .long, help: "Deploy --policy learned behind the online guardrail, this classical policy as its shadow (e.g. sarathi:512).")
        var guardrail: String?
        @Option(name: .long, help: "Guardrail: requests per window.")
        var window = 400
        @Option(name: .long, help: "Guardrail: fall back when the learned policy is worse than the shadow by more than this fraction.")
        var margin = 0.1
        @Flag(name: .long, help: "Guardrail: update the learned weights after each window (bounded imitation steps).")
        var onlineLearning = false

        func validate() throws {
            _ = try ServeCommand.loads(String(load), option: "--load")
            guard (2 ... 1 << 20).contains(window) else { throw ValidationError("--window must be in 2 ... 1048576, got \(window)") }
            guard margin.isFinite, (0 ... 100).contains(margin) else { throw ValidationError("--margin must be in 0 ... 100, got \(margin)") }
            if guardrail != nil, policy.lowercased() != "learned" { throw ValidationError("--guardrail guards --policy learned only") }
            guard evalFrom.isFinite, evalFrom >= 0, evalFrom < 1 else { throw ValidationError("--eval-from must be in [0, 1), got \(evalFrom)") }
        }

        func run() throws {
            do {
                let chosen = try ServeCommand.policy(policy, learned: learned)
                let simulator = try options.simulator()
                let trace = try options.requests(load: load, from: evalFrom)
                let start = DispatchTime.now().uptimeNanoseconds
                var guarded: GuardedServingRun?
                if let guardrail, case let .learned(model) = chosen {
                    guard guardrail.lowercased() != "learned" else { throw ValidationError("--guardrail must name a classical policy (fcfs, spf, sarathi[:BUDGET], edf or oracle)") }
                    let shadow = try ServeCommand.policy(guardrail, learned: nil)
                    guarded = try ServingGuardrail.run(trace, simulator: simulator, model: model, settings: ServingGuardrailSettings(
                        window: window, margin: margin, shadow: shadow, onlineLearning: onlineLearning))
                }
                let report = try guarded?.report ?? simulator.run(trace, policy: chosen)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let cost = simulator.cost
                print("\(trace.count) requests of \(options.name), \(options.model.rawValue) model on one H200 "
                      + "(cost table: \(cost.rowsUsed.prefill) prefill and \(cost.rowsUsed.decode) decode rows of \(cost.model.tableName)), "
                      + "\(report.kvCapacity) KV blocks, SLO \(try options.parsedSLO())\n")
                print(TextTable.render(header: ServeCommand.header, rows: [ServeCommand.row(load, report)]))
                if case let .learned(model) = chosen {
                    print("\nlearned policy: \(model.knobs), weights \(model.scorer.weights); guard: \(report.validation)")
                }
                if let guarded {
                    print("guardrail (shadow \(guardrail!), windows of \(window)): \(guarded.windowsOnLearned) windows on the learned policy, "
                          + "\(guarded.windowsOnShadow) on the shadow, \(guarded.events.filter { $0.action != .update }.count) switches")
                    for event in guarded.events { print("  " + event.description) }
                }
                print(String(format: "\n%d iterations, peak %d KV blocks, %.1f s simulated in %.3f s (%.0f requests/s), digest %016llx",
                             report.iterations, report.peakKVBlocks, report.makespan, seconds, Double(trace.count) / Swift.max(seconds, 1e-9), report.digest))
            }
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every classical policy and the clairvoyant bound (and a learned model) at several loads: a table and an SVG of latency against load.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "Comma-separated arrival-rate factors.")
        var loads = "0.5,1,1.5,2,3"
        @Option(name: .long, help: "A learned model to compare (adds its row and the oracle's at the model's knobs).")
        var learned: String?
        @Option(name: .long, help: "Simulate the requests from this fraction of the trace on (0.5: the half a model trained on the first half has not seen).")
        var evalFrom = 0.0
        @Option(name: .long, help: "Write the plot here.")
        var svg = "serve-compare.svg"

        func validate() throws {
            _ = try ServeCommand.loads(loads, option: "--loads")
            guard evalFrom.isFinite, evalFrom >= 0, evalFrom < 1 else { throw ValidationError("--eval-from must be in [0, 1), got \(evalFrom)") }
        }

        func run() throws {
            do {
                let factors = try ServeCommand.loads(loads, option: "--loads")
                let simulator = try options.simulator()
                let model = try learned.map(ServingPolicyModel.read)
                var runs: [(SchedulingPolicy, ServingSimulator, String?)] = SchedulingPolicy.classical.map { ($0, simulator, nil) }
                if let model {
                    var c = simulator.configuration
                    (c.tokenBudget, c.maxBatch) = (model.knobs.tokenBudget, model.knobs.maxBatch)
                    runs.append((.clairvoyant, try ServingSimulator(cost: simulator.cost, configuration: c), "Oracle-SRF(\(model.knobs.tokenBudget))"))
                    runs.append((.learned(model), simulator, nil))
                }
                var rows: [[String]] = [], series: [String: [(Double, ServingReport)]] = [:], guards: [String] = []
                let total = factors.count * runs.count
                let bar = ProgressBar(label: "simulating", minimumTotal: 1, unit: "simulations")
                var done = 0
                for load in factors {
                    let trace = try options.requests(load: load, from: evalFrom)
                    for (policy, server, label) in runs {
                        let report = try server.run(trace, policy: policy)
                        rows.append(ServeCommand.row(load, report, label: label))
                        series[label ?? report.policy, default: []].append((load, report))
                        if case .learned = policy { guards.append(String(format: "load %.2f: %@", load, report.validation.description)) }
                        done += 1
                        bar.update(done, of: total)
                    }
                }
                bar.finish()
                print(TextTable.render(header: ServeCommand.header, rows: rows))
                if let model {
                    print("\nlearned: \(learned!) (\(model.metadata.method), trained on \(model.metadata.trace) at load \(model.metadata.load), "
                          + "round \(model.metadata.bestRound) of \(model.metadata.rounds)); \(model.knobs); guard decisions:")
                    for line in guards { print("  " + line) }
                }
                try AtomicFile.write(Array(ServingPlot.svg(series, title: "\(options.name), \(options.model.rawValue)").utf8), to: svg)
                print("\nwrote \(svg)")
            }
        }
    }

    struct Train: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train the learned scheduler on the first part of a trace; resumes from its last checkpoint after an interruption.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "imitation, relaxed or scoreFunction (how the scorer learns; the knobs always learn by SPSA).")
        var method: ServingTrainingMethod = .imitation
        @Option(name: .long, help: "Arrival-rate factor to train at.")
        var load = 2.0
        @Option(name: .long, help: "Train on this leading fraction of the trace (the rest is left for evaluation with --eval-from).")
        var trainFraction = 0.5
        @Option(name: .long, help: "Training rounds.")
        var rounds = 6
        @Option(name: .long, help: "Seed of every random choice in training.")
        var seed: UInt64 = 7
        @Option(name: .long, help: "The model file to write (safetensors).")
        var output = "serve-model.safetensors"
        @Option(name: .long, help: "Checkpoint directory (default: OUTPUT.checkpoints).")
        var checkpointDirectory: String?
        @Flag(name: .long, help: "Never draw a progress bar.")
        var quiet = false

        func validate() throws {
            _ = try ServeCommand.loads(String(load), option: "--load")
            guard trainFraction.isFinite, trainFraction > 0, trainFraction <= 1 else { throw ValidationError("--train-fraction must be in (0, 1], got \(trainFraction)") }
            guard (1 ... 10_000).contains(rounds) else { throw ValidationError("--rounds must be in 1 ... 10000, got \(rounds)") }
            try requireExistingParent(output, option: "--output")
            try requireExistingParent(checkpointDirectory ?? output + ".checkpoints", option: "--checkpoint-directory")
        }

        func run() throws {
            let simulator = try options.simulator()
            let all = try options.requests(load: load)
            let trace = Array(all[..<Swift.max(1, Int((Double(all.count) * trainFraction).rounded()))])
            var training = ServingTrainingOptions()
            training.method = method
            training.rounds = rounds
            training.seed = seed
            let store = try CheckpointStore(directory: checkpointDirectory ?? output + ".checkpoints")
            let bar = quiet ? nil : ProgressBar(label: "train \(method.rawValue)", minimumTotal: 1, unit: "rounds")
            print("training on \(trace.count) of \(all.count) requests of \(options.name) at load \(load) (the last \(Int(training.validationFraction * 100))% of them held back to pick the best round)")
            let model = try ServingTraining.train(trace, simulator: simulator, options: training, traceName: options.name, load: load,
                                                  store: store) { round, total, message in
                bar?.update(round, of: total)
                print(message)
            }
            bar?.finish()
            try model.write(to: output)
            let fcfs = try simulator.run(trace, policy: .fcfs), mine = try simulator.run(trace, policy: .learned(model))
            print(String(format: "wrote %@ (round %d, %@, weights %@): on the training requests mean latency %.3f s against FCFS %.3f s; guard: %@",
                         output, model.metadata.bestRound, model.knobs.description,
                         model.scorer.weights.map { String(format: "%.3f", $0) }.joined(separator: " "),
                         mine.endToEnd.mean, fcfs.endToEnd.mean, mine.validation.description))
        }
    }
}
