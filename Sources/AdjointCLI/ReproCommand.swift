import Adjoint
import AdjointDistributed
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

            With --ranks (mlp only), each rank count runs as one MPI job under mpirun instead (the \
            first twice): every step's batch is split among the ranks, each example differentiated \
            on its own with its own dropout stream, and the per-example gradients summed across \
            ranks as --summation says; the runs are compared by a digest of the loss, parameters \
            and Adam moments after every step.
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

    @Option(name: .long, help: "Comma-separated MPI rank counts (mlp only; at most \(Self.maximumRanks) each), run under mpirun instead of --threads.")
    var ranks: String?

    @Option(name: .long, help: "With --ranks: reproducible (bitwise the same for any rank count) or plain (MPI's sum).")
    var summation: GradientSummation = .reproducible

    @Option(name: .long, help: "With --ranks: the mpirun to use (default: the first on PATH).")
    var mpirun: String?

    /// Set by the launcher on the MPI job it starts (one rank of a `--ranks` run).
    @Flag(name: .long, help: .hidden)
    var mpiWorker = false

    static let maximumRanks = 64

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
        if let steps, steps < 1 || steps > 1_000_000 { throw ValidationError("--steps must be in 1...1000000, got \(steps)") }
        if let ranks {
            guard workload == .mlp else { throw ValidationError("--ranks runs the mlp workload only, got \(workload.rawValue)") }
            let parts = ranks.split(separator: ",", omittingEmptySubsequences: false)
            guard !parts.isEmpty, rankCounts.count == parts.count, rankCounts.allSatisfy({ (1...Self.maximumRanks).contains($0) }) else {
                throw ValidationError("--ranks must be a comma-separated list of counts in 1...\(Self.maximumRanks), got '\(ranks)'")
            }
        }
    }

    var rankCounts: [Int] { (ranks ?? "").split(separator: ",", omittingEmptySubsequences: false).compactMap { Int($0.trimmingCharacters(in: .whitespaces)) } }

    public func run() throws {
        if mpiWorker {
            try DistributedMLP.run(steps: steps ?? 30, summation: summation, policy: ExecutionPolicy(parsing: policy)!)
            return
        }
        if ranks != nil {
            let outcome = try Self.compareRanks(rankCounts, steps: steps ?? 30, summation: summation, policy: policy, launcher: MPILauncher(path: mpirun))
            print(outcome.text)
            if !outcome.identical { throw ExitCode(1) }
            return
        }
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

    /// Runs the data-parallel MLP once per rank count (the first twice), each as an MPI job, and
    /// compares the per-step digests rank 0 printed.
    static func compareRanks(_ counts: [Int], steps: Int, summation: GradientSummation, policy: String, launcher: MPILauncher) throws -> (identical: Bool, text: String) {
        let runs = [counts[0]] + counts
        var traces: [[Substring]] = []
        for (index, count) in runs.enumerated() {
            FileHandle.standardError.write(Data("run \(index + 1)/\(runs.count): \(count) rank\(count == 1 ? "" : "s")…\n".utf8))
            // A safety net only (a stuck collective ends the job after its own timeout): ten seconds a step.
            let output = try launcher.run(ranks: count, arguments: ["repro", "mlp", "--mpi-worker", "--steps", "\(steps)", "--policy", policy,
                                                                     "--summation", summation.rawValue],
                                          deadline: 600 + 10 * Double(steps))
            let lines = output.split(separator: "\n").filter { $0.hasPrefix("step ") }
            guard lines.count == steps else { throw CommandFailure("mpirun -np \(count) printed \(lines.count) of \(steps) steps:\n\(output)") }
            traces.append(lines)
        }
        var rows: [[String]] = []
        var first: (run: Int, step: Int)?
        for (index, count) in runs.enumerated() {
            let step = index == 0 ? nil : traces[index].indices.first { traces[index][$0] != traces[0][$0] }.map { $0 + 1 }
            if let step, first == nil { first = (index, step) }
            rows.append(["\(index + 1)", "\(count)", index == 0 ? "reference" : step.map { "differs at step \($0)" } ?? "identical"])
        }
        var text = "mlp data-parallel under \(policy), \(summation.rawValue) summation, \(steps) steps\n"
        text += TextTable.render(header: ["run", "ranks", "result"], rows: rows) + "\n"
        text += "final digest of run 1: \(traces[0].last.map { String($0.split(separator: " ").last ?? "") } ?? "")\n"
        if let (run, step) = first {
            text += "DIFFERENT: run \(run + 1) (\(runs[run]) ranks) first differs from run 1 at step \(step)"
        } else {
            text += "bitwise identical: \(runs.count) runs, rank counts \(counts.map(String.init).joined(separator: ", "))"
        }
        return (first == nil, text)
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

extension GradientSummation: ExpressibleByArgument {}

/// One rank of `adjoint repro mlp --ranks`: the `train` MLP, data-parallel, one thread per rank;
/// rank 0 prints `step N <loss bits> <state digest>` after every step.
enum DistributedMLP {
    static func run(steps: Int, summation: GradientSummation, policy: ExecutionPolicy) throws {
        try Parallelism.withThreadCount(1) {
            try ExecutionPolicy.with(policy) {
                var training = try MLPTraining()
                let parallel = try DistributedMLPStep(summation: summation, training: &training)
                for _ in 0..<steps {
                    try parallel.step(&training)
                    if parallel.communicator.rank == 0 {
                        FileHandle.standardOutput.write(Data("step \(training.step) \(String(training.lastLoss.bitPattern, radix: 16)) \(training.digest)\n".utf8))
                    }
                }
            }
        }
    }
}
