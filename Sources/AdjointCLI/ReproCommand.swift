import Adjoint
import AdjointExamples
import ArgumentParser
import Foundation

/// `adjoint repro`: runs a built-in workload several times and compares every step bit for bit.
public struct ReproCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "repro",
        abstract: "Run a built-in workload twice and under several thread counts; report whether all runs are bitwise identical.",
        discussion: """
            Workloads: mlp (the `train` MLP: Adam, dropout, shuffled batches; records the loss, \
            parameters and Adam moments after every step) and thermal (fits the thermal model's design \
            parameters with Adam over 240 steps of 30 s, each gradient from a binomial-checkpointed unroll; records the loss, \
            the gradient and the parameters every iteration). The first thread count runs twice. \
            Prints "bitwise identical" or the first differing run, step, tensor and element, and \
            exits with status 1 in that case. Writes the run manifest with --manifest.
            """
    )

    public enum Workload: String, ExpressibleByArgument, CaseIterable { case mlp, thermal }

    @Argument(help: "The workload: mlp or thermal.")
    var workload: Workload

    @Option(name: .long, help: "Steps (mlp; default 30) or fit iterations (thermal; default 3).")
    var steps: Int?

    @Option(name: .long, help: "Comma-separated thread counts; the first runs twice.")
    var threads = "1,2,3,8"

    @Option(name: .long, help: "Numeric policy: strict, bestEffort or fast, optionally +float64Debug.")
    var policy = "strict"

    @Option(name: .long, help: "Write the run manifest (JSON) to this file.")
    var manifest: String?

    public init() {}

    var threadCounts: [Int] { threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    public func validate() throws {
        let counts = threads.split(separator: ",")
        guard !counts.isEmpty, counts.count == threadCounts.count, threadCounts.allSatisfy({ $0 >= 1 }) else {
            throw ValidationError("--threads must be a comma-separated list of counts ≥ 1, got '\(threads)'")
        }
        guard ExecutionPolicy(parsing: policy) != nil else {
            throw ValidationError("--policy must be strict, bestEffort or fast, optionally followed by +float64Debug; got '\(policy)'")
        }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1, got \(steps)") }
    }

    public func run() throws {
        let outcome = try Self.compare(workload, steps: steps, threadCounts: threadCounts, policy: ExecutionPolicy(parsing: policy)!)
        if let manifest { try outcome.manifest.write(to: manifest) }
        print(outcome.text)
        if !outcome.identical { throw ExitCode(1) }
    }

    /// The result of a comparison: what `repro` prints.
    public struct Outcome {
        public var identical: Bool
        public var text: String
        public var manifest: RunManifest
    }

    /// Runs `workload` once per thread count (the first twice) under `policy` and compares the traces.
    public static func compare(_ workload: Workload, steps: Int? = nil, threadCounts: [Int], policy: ExecutionPolicy) throws -> Outcome {
        let runs = [threadCounts[0]] + threadCounts
        var traces: [RunTrace] = []
        var manifest: RunManifest?
        for count in runs {
            try Parallelism.withThreadCount(count) {
                try ExecutionPolicy.with(policy) {
                    if manifest == nil { manifest = RunManifest.current(seeds: ["workload": 7]) }
                    traces.append(try trace(workload, steps: steps))
                }
            }
        }
        var rows: [[String]] = []
        var firstDifference: (run: Int, difference: RunTrace.Difference)?
        for (index, count) in runs.enumerated() {
            let difference = index == 0 ? nil : traces[index].firstDifference(from: traces[0])
            if let difference, firstDifference == nil { firstDifference = (index, difference) }
            rows.append(["\(index + 1)", "\(count)", index == 0 ? "reference" : difference.map { "differs at \($0)" } ?? "identical"])
        }
        var text = "\(workload.rawValue) under \(policy), \(traces[0].entries.count) tensors recorded per run\n"
        text += TextTable.render(header: ["run", "threads", "result"], rows: rows) + "\n"
        if let (run, difference) = firstDifference {
            text += "DIFFERENT: run \(run + 1) (threads \(runs[run])) first differs from run 1 at \(difference)"
        } else {
            text += "bitwise identical: \(runs.count) runs, thread counts \(threadCounts.map(String.init).joined(separator: ", "))"
        }
        return Outcome(identical: firstDifference == nil, text: text, manifest: manifest!)
    }

    static func trace(_ workload: Workload, steps: Int?) throws -> RunTrace {
        var trace = RunTrace()
        switch workload {
        case .mlp:
            var training = try MLPTraining()
            for _ in 0..<(steps ?? 30) {
                let loss = try training.trainStep()
                trace.record(step: training.step, [("loss", Tensor(loss))] + training.stateTensors)
            }
        case .thermal:
            let model = ThermalModel()
            _ = try model.fit(steps: 240, iterations: steps ?? 3) { iteration, result, parameters in
                trace.record(step: iteration, [("loss", Tensor(result.loss)), ("gradient", result.parameterGradient), ("parameters", parameters)])
            }
        }
        return trace
    }
}
