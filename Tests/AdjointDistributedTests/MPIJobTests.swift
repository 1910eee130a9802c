import AdjointTestSupport
import Foundation
import Testing

/// `mpirun`, when Open MPI is installed (scripts/bootstrap installs it; without it these tests are
/// reported as skipped).
let mpirunPath: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// An executable built beside the test bundle (the test target depends on it).
func builtExecutable(_ name: String) throws -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let candidates = [exe.appendingPathComponent(name).path, exe.deletingLastPathComponent().appendingPathComponent(name).path]
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "\(name) not found near \(exe.path)")
}

/// The environment entries MPI jobs run with: under AddressSanitizer, no leak report at exit —
/// Open MPI keeps allocations of the components it has unloaded by then, which LeakSanitizer sees
/// as leaks of unknown modules it cannot suppress. Memory errors are still reported.
let mpiJobEnvironment = ["ASAN_OPTIONS=detect_leaks=0"]

/// `mpirun -np ranks executable arguments…` to completion: exit status, output, seconds.
func mpirun(_ ranks: Int, _ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String, seconds: Double) {
    let started = Date()
    var options = ["-np", "\(ranks)", "--oversubscribe"]
    if getuid() == 0 { options.append("--allow-run-as-root") }
    let (status, output) = try runProcess(mpiJobEnvironment + [mpirunPath!] + options + [try builtExecutable(executable)] + arguments)
    return (status, output, Date().timeIntervalSince(started))
}

/// Real MPI jobs of 1–4 ranks on this machine (oversubscribed): collectives, failures that must be
/// errors on every rank and not hangs, and rank-count-independent training.
@Suite(.serialized, .enabled(if: mpirunPath != nil, "mpirun (Open MPI) is not installed"))
struct MPIJobTests {
    @Test("adjoint distributed check passes on 1, 2, 3 and 4 ranks", arguments: [1, 2, 3, 4])
    func check(ranks: Int) throws {
        let (status, output, _) = try mpirun(ranks, "adjoint", ["distributed", "check", "--timeout", "60"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("all 28 checks passed on \(ranks) ranks"), "\(output)")
    }

    @Test("ranks disagreeing on a collective all get the same typed error and carry on",
          arguments: [("different-collectives", "barrier: the ranks disagree on collective: rank 0 allReduce, rank 1 barrier, rank 2 barrier"),
                      ("different-roots", "broadcast: the ranks disagree on root: rank 0 0, rank 1 1, rank 2 2"),
                      ("different-dtypes", "allReduce: the ranks disagree on dtype: rank 0 f32, rank 1 f64, rank 2 f32")])
    func mismatches(scenario: String, message: String) throws {
        let (status, output, _) = try mpirun(3, "adjoint-mpi-scenarios", [scenario])
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n")
        for rank in 0..<3 {
            let mine = lines.filter { $0.hasPrefix("rank \(rank): ") }.map { $0.dropFirst("rank \(rank): ".count) }
            #expect(mine.count == 2 && mine[1] == "barrier after the error: ok", "\(output)")
            // Rank 0 called allReduce in the first scenario; the message names the caller's collective.
            let expected = scenario == "different-collectives" && rank == 0 ? message.replacingOccurrences(of: "barrier:", with: "allReduce:") : message
            #expect(mine.first.map(String.init) == expected, "rank \(rank): \(output)")
        }
    }

    @Test("invalid arguments are typed errors on every rank, before anyone waits; the communicator works on")
    func invalidArguments() throws {
        let (status, output, _) = try mpirun(2, "adjoint-mpi-scenarios", ["invalid-arguments"])
        #expect(status == 0, "\(output)")
        let expected = [
            "root: broadcast's root is 2; must be a rank in 0..<2",
            "negative root: broadcast's root is -1; must be a rank in 0..<2",
            "indivisible: reduceScatter's leading axis is 3; must be divisible by the 2 ranks",
            "scalar: reduceScatter's leading axis is none (a scalar); must be divisible by the 2 ranks",
            "f16: allReduce does not take f16 tensors",
            "bool: allGather does not take bool tensors",
            "int sum: reproducibleSum does not take i64 tensors",
            "bucket: bucketBytes is 10; must be in 1024...1073741824",
            "int parameters: DataParallel does not take i64 tensors",
            "timeout: timeout is -1.0; must be positive and finite (seconds)",
            "empty batch: batch is empty; needs at least one example",
            "barrier after the errors: ok",
        ]
        for rank in 0..<2 {
            for line in expected { #expect(output.contains("rank \(rank): \(line)"), "rank \(rank) \(line): \(output)") }
        }
    }

    @Test("one rank's invalid contributions fail the reproducible sum on every rank")
    func invalidContributions() throws {
        let (status, output, _) = try mpirun(3, "adjoint-mpi-scenarios", ["invalid-contributions"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("rank 1: reproducible sum: contribution 0 is f32[5], expected f32[4]"), "\(output)")
        #expect(output.contains("rank 0: reproducible sum: rank 1's contributions are invalid"), "\(output)")
        #expect(output.contains("rank 2: reproducible sum: rank 1's contributions are invalid"), "\(output)")
        #expect(output.components(separatedBy: "barrier after the error: ok").count == 4, "\(output)")
    }

    @Test("DataParallel averages every rank's micro-batch gradients, buckets started during backward; mismatched models are an error")
    func dataParallel() throws {
        let (status, output, _) = try mpirun(3, "adjoint-mpi-scenarios", ["data-parallel"])
        #expect(status == 0, "\(output)")
        for rank in 0..<3 {
            #expect(output.contains("rank \(rank): gradient ok"), "\(output)")
            #expect(output.contains("rank \(rank): buckets 2, started during backward 2"), "\(output)")
        }
        let mismatch = try mpirun(3, "adjoint-mpi-scenarios", ["data-parallel-mismatch"])
        #expect(mismatch.status == 0, "\(mismatch.output)")
        #expect(mismatch.output.components(separatedBy: "DataParallel: the ranks disagree on parameter shapes and dtypes: rank 0 ").count == 4, "\(mismatch.output)")
        #expect(mismatch.output.components(separatedBy: "barrier after the error: ok").count == 4, "\(mismatch.output)")
    }

    @Test("log gradient --distributed is bitwise the one-process gradient on 2, 3 and 4 ranks, binomial and storeAll")
    func distributedLogGradient() throws {
        let log = temporaryDirectory("distributed-log") + "/run.log"
        let recorded = try runProcess(mpiJobEnvironment + [try builtExecutable("adjoint"), "log", "record", "--log", log, "--steps", "300", "--checkpoint-every", "40"])
        #expect(recorded.status == 0, "\(recorded.output)")
        for schedule in ["binomial:4", "storeAll"] {
            let single = try runProcess(mpiJobEnvironment + [try builtExecutable("adjoint"), "log", "gradient", log, "--schedule", schedule])
            let bits = try #require(single.output.split(separator: "\n").first { $0.hasPrefix("bits: ") }, "\(single.output)")
            for ranks in [2, 3, 4] {
                let parallel = try mpirun(ranks, "adjoint", ["log", "gradient", "--distributed", log, "--schedule", schedule])
                #expect(parallel.status == 0, "\(parallel.output)")
                #expect(parallel.output.contains(String(bits)), "\(ranks) ranks, \(schedule): \(parallel.output)")
                #expect(parallel.output.contains("(8 segments; \(8 / ranks) on rank 0 of \(ranks), at most \(8 / ranks) prepared at once)"), "\(parallel.output)")
            }
            // One segment prepared at a time: the same bits, and one held.
            let bounded = try mpirun(2, "adjoint", ["log", "gradient", "--distributed", log, "--schedule", schedule, "--prepared-segments", "1"])
            #expect(bounded.status == 0 && bounded.output.contains(String(bits)), "\(schedule): \(bounded.output)")
            #expect(bounded.output.contains("(8 segments; 4 on rank 0 of 2, at most 1 prepared at once)"), "\(bounded.output)")
        }
    }

    @Test("cache train --distributed: each rank imitates on its shard; the model is written once and beats LRU")
    func distributedCacheTraining() throws {
        let model = temporaryDirectory("distributed-cache") + "/model.safetensors"
        let (status, output, _) = try mpirun(2, "adjoint", ["cache", "train", "--distributed", "--requests", "20000", "--cache-size", "200",
                                                            "--rounds", "2", "--model", model, "--quiet"])
        #expect(status == 0, "\(output)")
        #expect(output.contains("data-parallel over 2 ranks"), "\(output)")
        #expect(output.components(separatedBy: "model \(model) (round").count == 2, "one rank reports: \(output)")
        #expect(FileManager.default.fileExists(atPath: model))
        let line = try #require(output.split(separator: "\n").first { $0.hasPrefix("model ") })
        let numbers = line.components(separatedBy: "): miss ratio ").last!.components(separatedBy: " (LRU ")
        let learned = try #require(Double(numbers[0])), lru = try #require(Double(numbers[1].prefix(6)))
        #expect(learned < lru, "\(line)")
        let refused = try runProcess(mpiJobEnvironment + [try builtExecutable("adjoint"), "cache", "train", "--distributed", "--method", "relaxed", "--model", model + "2"])
        #expect(refused.status != 0 && refused.output.contains("--distributed trains with --method imitation"), "\(refused.output)")
    }

    @Test("a collective the other ranks never join is a timeout, then the job is aborted, not hung")
    func timeout() throws {
        let (status, output, seconds) = try mpirun(3, "adjoint-mpi-scenarios", ["timeout"])
        #expect(output.contains("rank 0: allReduce (collective #1) did not complete within 2.0 s"), "\(output)")
        #expect(output.contains("rank 0: then: the communicator is unusable: allReduce (collective #1) timed out after 2.0 s"), "\(output)")
        #expect(status != 0)
        #expect(seconds < 25, "the other ranks sleep 30 s: MPI_Abort must end them")
    }

    @Test("repro mlp --ranks: reproducible summation is bitwise the same on 1, 2, 3 and 4 ranks; plain is not")
    func reproAcrossRankCounts() throws {
        let reproducible = try runProcess(mpiJobEnvironment + [try builtExecutable("adjoint"), "repro", "mlp", "--ranks", "1,2,3,4", "--steps", "2"])
        #expect(reproducible.status == 0, "\(reproducible.output)")
        #expect(reproducible.output.contains("bitwise identical: 5 runs, rank counts 1, 2, 3, 4"), "\(reproducible.output)")
        let plain = try runProcess(mpiJobEnvironment + [try builtExecutable("adjoint"), "repro", "mlp", "--ranks", "1,2", "--steps", "2", "--summation", "plain"])
        #expect(plain.output.contains("run 2/3: 1 rank…"), "progress on stderr: \(plain.output)")
        // One rank twice is identical; two ranks add the per-rank sums in another order.
        #expect(plain.output.contains("2    1      identical"), "\(plain.output)")
        #expect(plain.status == 1 && plain.output.contains("DIFFERENT: run 3 (2 ranks) first differs from run 1 at step 1"), "\(plain.output)")
    }

    @Test("train --distributed: a rank SIGKILLed mid-run, the job rerun resumes and ends with the uninterrupted digest, on any rank count")
    func killAndResume() throws {
        let options = ["train", "--distributed", "--steps", "16", "--save-every", "4", "--quiet", "--threads", "1"]
        let reference = try mpirun(1, "adjoint", options + ["--checkpoint-directory", temporaryDirectory("ddp-reference") + "/run"])
        #expect(reference.status == 0, "\(reference.output)")
        let digest = try #require(reference.output.split(separator: "\n").last { $0.hasPrefix("step 16 loss ") }?.split(separator: " ").last)

        // Two ranks; rank 1 is killed after the checkpoint of step 8.
        let directory = temporaryDirectory("ddp-killed") + "/run"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirunPath!)
        process.arguments = ["-np", "2", "--oversubscribe"] + (getuid() == 0 ? ["--allow-run-as-root"] : []) + [try builtExecutable("adjoint")]
            + options + ["--checkpoint-directory", directory]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(mpiJobEnvironment.map { entry in
            let parts = entry.split(separator: "=", maxSplits: 1)
            return (String(parts[0]), String(parts[1]))
        }) { _, new in new }
        try process.run()
        var seen = "", pids: [Int32] = []
        while !seen.contains("saved step 8:") {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { break }
            seen += String(decoding: data, as: UTF8.self)
            if pids.isEmpty, let line = seen.split(separator: "\n").first(where: { $0.contains("; pids ") }) {
                pids = line.components(separatedBy: "; pids ").last!.components(separatedBy: ", ").compactMap { Int32($0) }
            }
        }
        try #require(pids.count == 2 && seen.contains("saved step 8:"), "\(seen)")
        kill(pids[1], SIGKILL)
        _ = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus != 0, "mpirun reports the killed rank")

        // The same command on three ranks: resumes from the newest checkpoint, ends where the reference did.
        let resumed = try mpirun(3, "adjoint", options + ["--checkpoint-directory", directory])
        #expect(resumed.status == 0, "\(resumed.output)")
        #expect(resumed.output.contains("resumed from step "), "\(resumed.output)")
        #expect(resumed.output.contains("step 16 loss ") && resumed.output.hasSuffix("digest \(digest)\n"), "\(resumed.output)")
    }
}
