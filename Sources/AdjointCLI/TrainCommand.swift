import Adjoint
import AdjointDistributed
import AdjointExamples
import ArgumentParser
import Foundation

/// Options that set the kernels' thread count and numeric policy, shared by the commands that run
/// workloads.
struct ExecutionOptions: ParsableArguments {
    @Option(name: .long, help: "Kernel worker threads (default: the number of cores).")
    var threads: Int?

    @Option(name: .long, help: "Numeric policy: strict, bestEffort or fast, optionally +float64Debug.")
    var policy: String = "strict"

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1, got \(threads)") }
        guard ExecutionPolicy(parsing: policy) != nil else {
            throw ValidationError("--policy must be strict, bestEffort or fast, optionally followed by +float64Debug; got '\(policy)'")
        }
    }

    /// Applies the thread count and policy process-wide.
    func apply() {
        if let threads { Parallelism.threadCount = threads }
        ExecutionPolicy.processDefault = ExecutionPolicy(parsing: policy)!
    }
}

/// `adjoint train`: trains the built-in MLP with checkpoints, resuming from the newest one.
public struct TrainCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the built-in MLP (Adam, dropout, shuffled batches) with resumable checkpoints.",
        discussion: """
            With --checkpoint-directory, the newest valid checkpoint there is resumed (damaged newer \
            ones are reported), a checkpoint is saved every --save-every steps and at the end, and \
            the run manifest is written to run.json (and to --manifest). A run resumed after a kill ends bitwise equal to \
            one that was never interrupted; the last line's digest shows it.

            With --distributed, run under mpirun (mpirun -np 4 adjoint train --distributed …): each \
            step's batch is split among the ranks, every example differentiated with its own dropout \
            stream, and the gradients summed across ranks as --summation says (reproducible: bitwise \
            the same for any rank count; plain: DataParallel, bucketed all-reduces overlapped with the \
            backward pass). Every rank applies the same update; rank 0 prints and writes the \
            checkpoints after the ranks have compared their state digests; every rank resumes from \
            the directory (which must be shared on a cluster). After a rank is killed, run the same \
            command again: it resumes from the last checkpoint and ends with the digest of an \
            uninterrupted run.
            """
    )

    @Option(name: .long, help: "Total optimizer steps to reach.")
    var steps = 200

    @Option(name: .long, help: "Directory for checkpoints (resumed from when it holds one).")
    var checkpointDirectory: String?

    @Option(name: .long, help: "Save a checkpoint every N steps.")
    var saveEvery = 50

    @Option(name: .long, help: "Checkpoints to keep.")
    var keep = 2

    @Option(name: .long, help: "Hidden units per layer.")
    var hidden = 128

    @OptionGroup var execution: ExecutionOptions

    @Option(name: .long, help: "Also write the run manifest (JSON) to this file.")
    var manifest: String?

    @Flag(name: .long, help: "Never draw a progress bar.")
    var quiet = false

    @Flag(name: .long, help: "Data-parallel over the ranks of an MPI job (run under mpirun).")
    var distributed = false

    @Option(name: .long, help: "With --distributed: reproducible (bitwise the same for any rank count) or plain (overlapped bucketed all-reduce).")
    var summation: GradientSummation = .reproducible

    public init() {}

    public func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard saveEvery >= 1 else { throw ValidationError("--save-every must be at least 1, got \(saveEvery)") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1, got \(keep)") }
        guard hidden >= 1 else { throw ValidationError("--hidden must be at least 1, got \(hidden)") }
        guard steps <= 100_000_000, hidden <= 65_536 else { throw ValidationError("--steps must be at most 100000000 and --hidden at most 65536") }
    }

    public func run() throws {
        execution.apply()
        var configuration = MLPTraining.Configuration()
        configuration.hidden = hidden
        var training = try MLPTraining(configuration)
        let parallel = distributed ? try DistributedMLPStep(summation: summation, training: &training) : nil
        // Only rank 0 prints and writes; the others compute the same state.
        let writes = parallel?.communicator.rank ?? 0 == 0
        func say(_ text: String) { if writes { print(text); fflush(nil) } }
        let run = RunManifest.current(seeds: training.seeds)
        if let manifest, writes { try run.write(to: manifest) }
        var store: CheckpointStore?
        if let checkpointDirectory {
            let opened = try CheckpointStore(directory: checkpointDirectory, keep: keep)
            store = opened
            if writes {
                try opened.createDirectory()
                try run.write(to: (checkpointDirectory as NSString).appendingPathComponent("run.json"))
            }
            try parallel?.communicator.barrier()  // the directory exists before the others look
            if let loaded = try opened.latest() {
                for (path, error) in loaded.rejected where writes { printError("warning: skipped \(path): \(error)") }
                try training.restore(from: loaded.checkpoint)
                let changed = run.differences(from: loaded.checkpoint.manifest.run)
                say("resumed from step \(training.step) (\(loaded.path))" + (changed.isEmpty ? "" : "; changed since it was saved: \(changed.joined(separator: ", "))"))
            }
            try parallel?.requireSameState(training, when: "resuming")
        }
        if let parallel { say("data-parallel over \(parallel.communicator.size) ranks, \(summation.rawValue) summation; pids \(try parallel.processIDs().map(String.init).joined(separator: ", "))") }
        let bar = quiet || !writes ? nil : ProgressBar(label: "train mlp", minimumTotal: 1, unit: "steps")
        let target = steps, stepsAtStart = training.step
        while training.step < target {
            if let parallel { try parallel.step(&training) } else { try training.trainStep() }
            bar?.update(training.step, of: target)
            if let store, training.step % saveEvery == 0 || training.step == target {
                let ranks = try parallel?.requireSameState(training, when: "saving step \(training.step)")
                if writes {
                    let path = try store.save(training.checkpoint(run: run, metadata: ranks ?? [:]))
                    say("saved step \(training.step): \(path)")
                }
            }
        }
        bar?.finish()
        guard writes else { return }
        if training.step == stepsAtStart {   // resumed at or past the target: no step ran here, no loss to print
            print("step \(training.step): nothing to train (the checkpoint is at step \(training.step), --steps \(target)); digest \(training.digest)")
        } else {
            print(String(format: "step %d loss %.6f digest %@", training.step, training.lastLoss, training.digest))
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// One data-parallel step of the `train` MLP across the ranks of an MPI job (`adjoint train
/// --distributed`, and each rank of `adjoint repro mlp --ranks`).
final class DistributedMLPStep {
    let communicator: Communicator
    let summation: GradientSummation
    private let parallel: DataParallel<MLPTraining.Model>?

    /// Joins the job and starts every rank from rank 0's parameters.
    init(summation: GradientSummation, training: inout MLPTraining) throws {
        communicator = try Communicator.world(timeout: 300)
        self.summation = summation
        training.replaceModel(with: try communicator.broadcast(parameters: training.model))
        parallel = summation == .plain ? try DataParallel(communicator: communicator, parameters: training.model) : nil
    }

    /// The next batch, split among the ranks; the gradient summed as `summation` says; one Adam step.
    func step(_ training: inout MLPTraining) throws {
        let batch = try training.nextBatch()
        let step = training.step, current = training
        let (loss, gradient): (Double, MLPTraining.Model)
        if let parallel {
            // Each rank's loss is its share of the batch's mean, times the rank count: the ranks' mean is the batch's.
            let shard = Array(communicator.shard(batch)), weight = Double(communicator.size) / Double(batch.count)
            (loss, gradient) = try parallel.synchronize(training.model) { model in
                var total = try Tensor.zeros([], dtype: .float32)
                for example in shard { total = try total + current.exampleLoss(model, example: example, step: step) }
                return try total * Tensor(Float(weight))
            }
        } else {
            (loss, gradient) = try communicator.meanGradient(of: training.model, batch: batch, summation: summation) { model, example in
                try current.exampleLoss(model, example: example, step: step)
            }
        }
        try training.apply(gradient: gradient, loss: loss)
    }

    /// Fails on every rank unless all ranks hold the same step and state digest (parameters, Adam
    /// moments; dropout streams are keyed by step and example, the data position is the step's);
    /// returns what a checkpoint records of the ranks.
    @discardableResult
    func requireSameState(_ training: MLPTraining, when: String) throws -> [String: String] {
        let digest = Int64(UInt32(training.digest.dropFirst("crc32c:".count), radix: 16) ?? 0)
        let rows = try communicator.allGather(Tensor([Int64(training.step), digest])).scalars(as: Int64.self)
        let steps = stride(from: 0, to: rows.count, by: 2).map { rows[$0] }, digests = stride(from: 1, to: rows.count, by: 2).map { rows[$0] }
        guard Set(steps).count == 1, Set(digests).count == 1 else {
            throw CommandFailure("the ranks' training states differ when \(when): steps \(steps), digests " + digests.map { String($0, radix: 16) }.joined(separator: ", "))
        }
        return ["ranks": "\(communicator.size)", "summation": summation.rawValue,
                "rankStateDigests": digests.map { "crc32c:" + String(format: "%08x", $0) }.joined(separator: ",")]
    }

    /// Every rank's process id, in rank order.
    func processIDs() throws -> [Int64] {
        try communicator.allGather(Tensor([Int64(getpid())])).scalars(as: Int64.self)
    }
}
