import Adjoint
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

    public init() {}

    public func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1, got \(steps)") }
        guard saveEvery >= 1 else { throw ValidationError("--save-every must be at least 1, got \(saveEvery)") }
        guard keep >= 1 else { throw ValidationError("--keep must be at least 1, got \(keep)") }
        guard hidden >= 1 else { throw ValidationError("--hidden must be at least 1, got \(hidden)") }
    }

    public func run() throws {
        execution.apply()
        var configuration = MLPTraining.Configuration()
        configuration.hidden = hidden
        var training = try MLPTraining(configuration)
        let run = RunManifest.current(seeds: training.seeds)
        if let manifest { try run.write(to: manifest) }
        var store: CheckpointStore?
        if let checkpointDirectory {
            let opened = try CheckpointStore(directory: checkpointDirectory, keep: keep)
            store = opened
            try opened.createDirectory()
            try run.write(to: (checkpointDirectory as NSString).appendingPathComponent("run.json"))
            if let loaded = try opened.latest() {
                for (path, error) in loaded.rejected { printError("warning: skipped \(path): \(error)") }
                try training.restore(from: loaded.checkpoint)
                let changed = run.differences(from: loaded.checkpoint.manifest.run)
                print("resumed from step \(training.step) (\(loaded.path))" + (changed.isEmpty ? "" : "; changed since it was saved: \(changed.joined(separator: ", "))"))
            }
        }
        let bar = quiet ? nil : ProgressBar(label: "train mlp", minimumTotal: 1, unit: "steps")
        let target = steps, stepsAtStart = training.step
        while training.step < target {
            try training.trainStep()
            bar?.update(training.step, of: target)
            if let store, training.step % saveEvery == 0 || training.step == target {
                let path = try store.save(training.checkpoint(run: run))
                print("saved step \(training.step): \(path)")
                fflush(nil)
            }
        }
        bar?.finish()
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
