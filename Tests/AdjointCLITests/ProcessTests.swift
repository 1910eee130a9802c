import Adjoint
import AdjointExamples
import AdjointTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The `adjoint` executable built beside the test bundle (the test target depends on it).
func adjointExecutable() throws -> String {
    let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    let candidates = [exe.appendingPathComponent("adjoint").path, exe.deletingLastPathComponent().appendingPathComponent("adjoint").path]
    return try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "adjoint executable not found near \(exe.path)")
}

/// A running `adjoint` child whose standard output is read line by line.
final class Child {
    let process = Process()
    private let pipe = Pipe()
    private var buffer = Data()
    private(set) var lines: [String] = []

    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: try adjointExecutable())
        process.arguments = arguments
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Reads until a line satisfies `predicate` (true) or the output ends (false).
    func waitForLine(_ predicate: (String) -> Bool) -> Bool {
        while true {
            let data = pipe.fileHandleForReading.availableData
            if data.isEmpty { return false }
            buffer.append(data)
            while let newline = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                lines.append(line)
                if predicate(line) { return true }
            }
        }
    }

    /// SIGKILL, then collects every line it had written.
    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        _ = waitForLine { _ in false }
    }

    /// Steps whose save the child reported as done.
    var acknowledgedSaves: [Int] {
        lines.compactMap { line in line.hasPrefix("saved step ") ? Int(line.dropFirst("saved step ".count).prefix { $0 != ":" }) : nil }
    }
}

extension Tag {
    /// Tests that start and SIGKILL real `adjoint` processes: slow, so `.ci/run` runs them in a step of
    /// their own (`--filter ProcessKill`), once, in the debug build.
    @Tag static var processKill: Self
}

@Suite("Real processes: kills and resumes", .serialized, .tags(.processKill))
struct ProcessKillTests {
    @Test("SIGKILL at random moments, some inside saves, never loses an acknowledged checkpoint")
    func killDuringSave() throws {
        let dir = temporaryDirectory("kill")
        var acknowledged = 0, previous = 0, killedMidSave = 0
        var delays = RandomStream(key: RandomKey(seed: 2026))
        let rounds = 24
        for round in 0..<rounds {
            let child = try Child(["train", "--steps", "1000000", "--save-every", "1", "--hidden", "1024", "--keep", "2",
                                   "--checkpoint-directory", dir, "--quiet"])
            #expect(child.waitForLine { $0.hasPrefix("saved step ") })
            if round % 2 == 0 {
                // Aimed: wait until the next save's temporary file appears, then kill within 2 ms.
                let deadline = DispatchTime.now().uptimeNanoseconds + 30_000_000_000
                while try !FileManager.default.contentsOfDirectory(atPath: dir).contains(where: { $0.contains(".tmp-") }),
                      DispatchTime.now().uptimeNanoseconds < deadline { usleep(100) }
                usleep(useconds_t(try delays.uniform([]).item() * 2000))
            } else {
                // Anywhere: time one step-and-save cycle, then kill at a random moment of the next.
                let start = DispatchTime.now().uptimeNanoseconds
                #expect(child.waitForLine { $0.hasPrefix("saved step ") })
                let cycle = Double(DispatchTime.now().uptimeNanoseconds - start) / 1000
                usleep(useconds_t(try delays.uniform([]).item() * cycle))
            }
            child.kill()
            acknowledged = Swift.max(acknowledged, child.acknowledgedSaves.max() ?? 0)
            if try FileManager.default.contentsOfDirectory(atPath: dir).contains(where: { $0.contains(".tmp-") }) { killedMidSave += 1 }
            let store = try CheckpointStore(directory: dir)
            let latest = try #require(try store.latest(), "no checkpoint survived")
            #expect(latest.rejected.isEmpty, "a damaged checkpoint: \(latest.rejected.map { "\($0.error)" })")
            #expect(latest.checkpoint.manifest.step >= acknowledged, "acknowledged save \(acknowledged) lost")
            #expect(latest.checkpoint.manifest.step >= previous)
            previous = latest.checkpoint.manifest.step
        }
        print("kill test: \(rounds) kills, \(killedMidSave) inside a save (temporary file present), last step \(previous)")
        #expect(killedMidSave >= rounds / 4, "too few kills landed inside a save; the test did not exercise what it claims")
    }

    @Test("train 120 steps straight ≡ 60 steps, SIGKILL, resume on another thread count, 60 more (bitwise)")
    func killAndResume() throws {
        let straight = try runProcess([try adjointExecutable(), "train", "--steps", "120", "--quiet", "--threads", "2"])
        #expect(straight.status == 0)
        let dir = temporaryDirectory("resume")
        let child = try Child(["train", "--steps", "120", "--save-every", "60", "--checkpoint-directory", dir, "--quiet", "--threads", "2"])
        #expect(child.waitForLine { $0.hasPrefix("saved step 60:") })
        child.kill()
        let resumed = try runProcess([try adjointExecutable(), "train", "--steps", "120", "--save-every", "60",
                                      "--checkpoint-directory", dir, "--quiet", "--threads", "1"])
        #expect(resumed.status == 0)
        #expect(resumed.output.contains("resumed from step 60") || resumed.output.contains("resumed from step 120"), "\(resumed.output)")
        // The run manifest of the last run is beside the checkpoints and records its thread count.
        let manifest = try JSONDecoder().decode(RunManifest.self, from: Data(AtomicFile.read((dir as NSString).appendingPathComponent("run.json"))))
        #expect(manifest.kernelThreads == 1 && manifest.policy == .strict && manifest.command.contains("--threads"))
        let digest = { (text: String) in text.split(separator: "\n").last { $0.hasPrefix("step 120 ") } }
        #expect(digest(straight.output) != nil && digest(straight.output) == digest(resumed.output), "\(straight.output)\n---\n\(resumed.output)")
    }
}

@Suite("Real processes: event-log writers killed at random", .serialized, .tags(.processKill))
struct EventLogProcessKillTests {
    /// Kills `adjoint log record --ack` at random moments; every step it acknowledged must be in the
    /// log afterwards, the log must reopen (recovering a torn tail if any) and replay, and the next
    /// writer resumes where the log ends.
    func killRepeatedly(backend: EventLogBackend, rounds: Int, seed: UInt64) throws -> (acknowledged: Int, torn: Int) {
        let path = (temporaryDirectory("kill-log") as NSString).appendingPathComponent("run.\(backend.rawValue)")
        var acknowledged = 0, torn = 0
        var delays = RandomStream(key: RandomKey(seed: seed))
        for round in 0..<rounds {
            let child = try Child(["log", "record", "--log", path, "--backend", backend.rawValue, "--fsync", "every",
                                   "--steps", "100000000", "--checkpoint-every", "50", "--ack"])
            #expect(child.waitForLine { $0.hasPrefix("logged step ") }, "round \(round): the writer did not start")
            usleep(useconds_t(try delays.uniform([]).item() * 20_000))
            child.kill()
            let acks = child.lines.compactMap { $0.hasPrefix("logged step ") ? Int($0.dropFirst("logged step ".count)) : nil }
            acknowledged = Swift.max(acknowledged, acks.max() ?? 0)
            let log = try backend.open(path: path)
            if let file = log as? FileEventLog, !file.recovery.isClean { torn += 1 }
            let recorded = try RecordedTrajectory(log: log)
            #expect(recorded.steps >= acknowledged, "round \(round): step \(acknowledged) was acknowledged, the log has \(recorded.steps)")
            try log.close()
        }
        // The whole run, across every process, replays from s[0] against the live hashes.
        let log = try backend.open(path: path)
        let recorded = try RecordedTrajectory(log: log)
        let model = ThermalModel()
        _ = try recorded.replay(model.step, parameters: model.nominalParameters, like: model.initialState, from: 0)
        try log.close()
        return (acknowledged, torn)
    }

    @Test("100 SIGKILLs of a file-log writer under fsync-every-record lose no acknowledged step")
    func fileLog() throws {
        let (acknowledged, torn) = try killRepeatedly(backend: .file, rounds: 100, seed: 5)
        print("file log kill test: 100 kills, \(acknowledged) steps acknowledged, \(torn) torn tails recovered")
    }

    @Test("20 SIGKILLs of an SQLite-log writer lose no acknowledged step")
    func sqliteLog() throws {
        let (acknowledged, _) = try killRepeatedly(backend: .sqlite, rounds: 20, seed: 6)
        print("sqlite log kill test: 20 kills, \(acknowledged) steps acknowledged")
    }
}
