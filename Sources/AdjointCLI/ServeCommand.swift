import Adjoint
import ArgumentParser
import Foundation
import AdjointIO

extension ServingCostModel.Model: ExpressibleByArgument {}

/// `adjoint serve`: request scheduling and batching for LLM serving, simulated on real traces.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Simulate LLM serving (continuous batching, chunked prefill, KV blocks, preemption) on a request trace.",
        subcommands: [Simulate.self, Compare.self]
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

        func validate() throws {
            if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
            _ = try parsedSLO()
        }

        func parsedSLO() throws -> ServingSLO {
            do { return try ServingSLO.parse(slo) } catch { throw ValidationError("\(error)") }
        }

        var table: String { costTable ?? ((trace as NSString).deletingLastPathComponent as NSString).appendingPathComponent("llm-cost-h200.csv") }

        func simulator() throws -> ServingSimulator {
            let cost = try ServingCostModel.fitted(table: table, model: model)
            return try ServingSimulator(cost: cost, configuration: ServingConfiguration(
                tokenBudget: tokenBudget, maxBatch: maxBatch, kvBlocks: kvBlocks, prefixCacheBlocks: prefixCache, slo: try parsedSLO()))
        }

        func requests(load: Double) throws -> [ServingRequest] {
            try ServingTraceReader.readAll(path: trace, load: load, limit: limit ?? .max)
        }
    }

    static func policy(_ text: String) throws -> SchedulingPolicy {
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
            throw ValidationError("--policy must be fcfs, spf, sarathi[:BUDGET], edf or oracle, got '\(text)'")
        }
    }

    static func loads(_ text: String) throws -> [Double] {
        let values = text.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.count <= 64, values.allSatisfy({ $0 != nil && $0!.isFinite && $0! > 0 && $0! <= 1e6 }) else {
            throw ValidationError("--loads must be 1 to 64 comma-separated factors in (0, 10⁶], got '\(text)'")
        }
        return values.map { $0! }
    }

    static func row(_ load: Double, _ r: ServingReport) -> [String] {
        func ms(_ s: Double) -> String { String(format: "%.0f", s * 1000) }
        return [String(format: "%.2f", load), r.policy, ms(r.ttft.mean), ms(r.ttft.p99), String(format: "%.1f", r.tpot.mean * 1000),
                ms(r.endToEnd.mean), ms(r.endToEnd.p50), ms(r.endToEnd.p99), String(format: "%.1f%%", r.sloAttainment * 100),
                String(format: "%.2f", r.goodput), "\(r.preemptions)"]
    }

    static let header = ["load", "policy", "TTFT mean ms", "TTFT p99", "TPOT ms", "E2E mean ms", "E2E p50", "E2E p99", "SLO met", "goodput/s", "preempted"]

    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one policy at one load and print the latency report.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "fcfs, spf, sarathi[:BUDGET], edf or oracle.")
        var policy = "fcfs"
        @Option(name: .long, help: "Arrival-rate factor: inter-arrival times divided by it.")
        var load = 1.0

        func run() throws {
            do {
                let chosen = try ServeCommand.policy(policy)
                _ = try ServeCommand.loads(String(load))
                let simulator = try options.simulator()
                let trace = try options.requests(load: load)
                let start = DispatchTime.now().uptimeNanoseconds
                let report = try simulator.run(trace, policy: chosen)
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                let cost = simulator.cost
                print("\(trace.count) requests of \((options.trace as NSString).lastPathComponent), \(options.model.rawValue) model on one H200 "
                      + "(cost table: \(cost.rowsUsed.prefill) prefill and \(cost.rowsUsed.decode) decode rows of \(cost.model.tableName)), "
                      + "\(report.kvCapacity) KV blocks, SLO \(try options.parsedSLO())\n")
                print(TextTable.render(header: ServeCommand.header, rows: [ServeCommand.row(load, report)]))
                print(String(format: "\n%d iterations, peak %d KV blocks, %.1f s simulated in %.3f s (%.0f requests/s), digest %016llx",
                             report.iterations, report.peakKVBlocks, report.makespan, seconds, Double(trace.count) / Swift.max(seconds, 1e-9), report.digest))
            }
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every classical policy and the clairvoyant bound at several loads: a table and an SVG of latency against load.")
        @OptionGroup var options: Options
        @Option(name: .long, help: "Comma-separated arrival-rate factors.")
        var loads = "0.5,1,1.5,2,3"
        @Option(name: .long, help: "Write the plot here.")
        var svg = "serve-compare.svg"

        func run() throws {
            do {
                let factors = try ServeCommand.loads(loads)
                let simulator = try options.simulator()
                var rows: [[String]] = [], series: [String: [(Double, ServingReport)]] = [:]
                let total = factors.count * SchedulingPolicy.classical.count
                let bar = ProgressBar(label: "simulating", minimumTotal: 1, unit: "simulations")
                var done = 0
                for load in factors {
                    let trace = try options.requests(load: load)
                    for policy in SchedulingPolicy.classical {
                        let report = try simulator.run(trace, policy: policy)
                        rows.append(ServeCommand.row(load, report))
                        series[report.policy, default: []].append((load, report))
                        done += 1
                        bar.update(done, of: total)
                    }
                }
                bar.finish()
                print(TextTable.render(header: ServeCommand.header, rows: rows))
                try AtomicFile.write(Array(ServingPlot.svg(series, title: "\((options.trace as NSString).lastPathComponent), \(options.model.rawValue)").utf8), to: svg)
                print("\nwrote \(svg)")
            }
        }
    }
}
