import Adjoint
import AdjointDistributed
import AdjointExamples
import ArgumentParser
import Foundation

extension EventLogBackend: ExpressibleByArgument {}
extension FsyncPolicy: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}

/// `adjoint log`: record a live system into an event log, replay it, differentiate it afterwards.
public struct LogCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Record the thermal system live into an event log, inspect and replay the log, differentiate the recorded run.",
        subcommands: [Record.self, Inspect.self, Replay.self, Gradient.self]
    )

    public init() {}

    /// The live thermal system: the example's forcing plus weather noise drawn from a Philox
    /// stream whose position is logged with every step.
    static var model: ThermalModel { ThermalModel() }
    static let noiseKey = RandomKey(seed: 2026, stream: 1)

    static func input(_ k: Int) throws -> (Tensor, Event) {
        let noise = try Tensor.normal([2], key: noiseKey, counter: UInt64(k), std: 0.05)
        let event = Event.random(step: k, name: "weather", key: noiseKey, counter: UInt64(k))
        return (try model.forcing(k) + noise, event)
    }

    static func open(_ path: String, backend: EventLogBackend?, fsync: FsyncPolicy) throws -> any EventLog {
        try (backend ?? EventLogBackend.detect(path: path) ?? .sqlite).open(path: path, fsync: fsync)
    }

    public struct Record: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Run the thermal system live, logging every step; resumes the run the log already holds.",
            discussion: """
                Each step logs the weather stream's position, the input, the new state's hash and, \
                every --checkpoint-every steps, the state. With --ack, prints "logged step N" once \
                step N is in the log (durable under --fsync every, the default).
                """
        )

        @Option(name: .long, help: "The event log (created when missing).")
        var log: String

        @Option(name: .long, help: "file or sqlite (default: what the log is, sqlite for a new one).")
        var backend: EventLogBackend?

        @Option(name: .long, help: "When appends reach the disk: every, never, or a count.")
        var fsync: FsyncPolicy = .everyRecord

        @Option(name: .long, help: "Steps to reach (30 s each).")
        var steps = 2880

        @Option(name: .long, help: "Log the state every N steps.")
        var checkpointEvery = 240

        @Flag(name: .long, help: "Print \"logged step N\" after every step.")
        var ack = false

        public init() {}

        public func validate() throws {
            guard steps >= 0 else { throw ValidationError("--steps must be at least 0, got \(steps)") }
            guard checkpointEvery >= 1 else { throw ValidationError("--checkpoint-every must be at least 1, got \(checkpointEvery)") }
        }

        public func run() throws {
            let log = try LogCommand.open(self.log, backend: backend, fsync: fsync)
            let run = try EventSourcedRun(LogCommand.model.step, from: LogCommand.model.initialState,
                                          parameters: LogCommand.model.nominalParameters, log: log, checkpointEvery: checkpointEvery)
            if run.time > 0 { print("resumed at step \(run.time)") }
            while run.time < steps {
                let (input, random) = try LogCommand.input(run.time)
                try run.advance(input: input, events: [random])
                if ack { print("logged step \(run.time)"); fflush(nil) }
            }
            try log.close()
            print(String(format: "step %d: slab %.4f °C, room %.4f °C, %d events", run.time,
                         try run.state.slab.mean().item(), try run.state.room.item(), log.count))
        }
    }

    /// Opens `path` for reading only; a file log with damaged ranges is refused unless `validPrefix`,
    /// which shows the records before the first damage (and says so on standard error).
    static func openForReading(_ path: String, validPrefix: Bool) throws -> any EventLog {
        let log = try EventLogBackend.openForReading(path: path, extent: validPrefix ? .validPrefix : .allValidRecords)
        if let file = log as? FileEventLog, !file.recovery.damaged.isEmpty {
            guard validPrefix else {
                try? log.close()
                throw CommandFailure("""
                    \(EventLogError.damaged(path: path, ranges: file.recovery.damaged))
                    Rerun with --valid-prefix to use the \(file.recovery.prefixRecords) records before the first damage.
                    """)
            }
            FileHandle.standardError.write(Data("warning: \(path) is damaged; using the \(file.count) records before the first damage\n".utf8))
        }
        return log
    }

    public struct Inspect: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Count a log's events by kind and report damaged ranges and a torn tail; never modifies the log.",
            discussion: """
                Exit status 1 when valid records follow damaged bytes (a torn tail alone is what a crash \
                leaves, and is reported but not an error). --salvage NEW copies every valid record into \
                a new file log, written atomically; the original stays as it is.
                """
        )

        @Argument(help: "The event log.")
        var log: String

        @Option(name: .long, help: "Copy the valid records of a file log into this new file (never overwritten).")
        var salvage: String?

        public init() {}

        public func run() throws {
            if let salvage {
                guard EventLogBackend.detect(path: log) == .file else {
                    throw ValidationError("--salvage reads file logs; \(log) is not one (SQLite databases recover themselves)")
                }
                let found = try FileEventLog.salvage(log, to: salvage)
                print("\(log): \(found)")
                print("salvaged \(found.records) records into \(salvage)")
                return
            }
            let (text, damaged) = try Self.report(log)
            print(text)
            if damaged { throw ExitCode(1) }
        }

        /// The report, and whether the log has damaged ranges.
        static func report(_ path: String) throws -> (String, Bool) {
            let log = try EventLogBackend.openForReading(path: path)
            defer { try? log.close() }
            var counts: [Event.Kind: Int] = [:]
            var steps = Set<Int>()
            var start = 0
            while start < log.count {
                for e in try log.events(start..<(start + 4096)) { counts[e.kind, default: 0] += 1; steps.insert(e.step) }
                start += 4096
            }
            let backend = log is FileEventLog ? EventLogBackend.file : .sqlite
            var lines = ["\(path): \(backend.rawValue) log, \(log.count) events over \(steps.count) steps"]
            let file = log as? FileEventLog
            if let file { lines.append("recovery: \(file.recovery)") }
            lines.append(TextTable.render(header: ["kind", "events"], rows: Event.Kind.allCases.map { [$0.description, "\(counts[$0] ?? 0)"] }))
            return (lines.joined(separator: "\n"), !(file?.recovery.damaged.isEmpty ?? true))
        }
    }

    public struct Replay: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Rebuild the recorded thermal run from its log, checking every live state hash.")

        @Argument(help: "The event log.")
        var log: String

        @Flag(name: .long, help: "Use the records before the first damaged range of a damaged file log.")
        var validPrefix = false

        public init() {}

        public func run() throws {
            let log = try LogCommand.openForReading(self.log, validPrefix: validPrefix)
            defer { try? log.close() }
            let recorded = try RecordedTrajectory(log: log)
            let model = LogCommand.model
            let state = try recorded.replay(model.step, parameters: model.nominalParameters, like: model.initialState, from: 0)
            print("replayed \(recorded.steps) steps from s[0]: every state matches the live run's hash; the log has checkpoints at \(recorded.checkpointSteps.count) steps")
            print(String(format: "s[%d]: slab %.6f °C, room %.6f °C, hash %@", recorded.steps, try state.slab.mean().item(),
                         try state.room.item(), model.step.hash(state).description))
        }
    }

    public struct Gradient: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Differentiate the recorded thermal run after the fact: the final slab temperature's squared distance from a target.",
            discussion: """
                The last lines give the loss's bits and a digest of the gradient's, to compare runs \
                exactly. With --distributed, run under mpirun (mpirun -np 4 adjoint log gradient \
                --distributed run.log): the log's segments are shared out among the ranks, recomputed \
                forward in parallel and reversed in turn with the state cotangent passed between ranks; \
                the result is bitwise the one-process result. Every rank reads the log; rank 0 prints.
                """)

        @Argument(help: "The event log.")
        var log: String

        @Option(name: .long, help: "Target slab temperature, °C.")
        var target = 23.0

        @Option(name: .long, help: "Checkpoint schedule within each logged segment (default: binomial:16).", transform: CheckpointSchedule.parse)
        var schedule: CheckpointSchedule = .binomial(snapshots: 16)

        @Flag(name: .long, help: "Use the records before the first damaged range of a damaged file log.")
        var validPrefix = false

        @Flag(name: .long, help: "Share the segments out among the ranks of an MPI job (run under mpirun).")
        var distributed = false

        @Option(name: .long, help: "With --distributed: seconds a rank may wait for another (positive).")
        var timeout = 3600.0

        @Option(name: .long, help: "With --distributed: segments a rank prepares ahead while the later ranks reverse (its memory is the schedule's for this many; 1 ... 65536).")
        var preparedSegments = 4

        public init() {}

        public func validate() throws {
            guard timeout.isFinite, timeout > 0, timeout <= 864_000 else {
                throw ValidationError("--timeout must be positive and at most 864000 seconds, got \(timeout)")
            }
            guard (1 ... Communicator.maximumPreparedSegments).contains(preparedSegments) else {
                throw ValidationError("--prepared-segments must be in 1 ... \(Communicator.maximumPreparedSegments), got \(preparedSegments)")
            }
        }

        public func run() throws {
            let log = try LogCommand.openForReading(self.log, validPrefix: validPrefix)
            defer { try? log.close() }
            let recorded = try RecordedTrajectory(log: log)
            let model = LogCommand.model
            let result: UnrollResult<ThermalModel.Step>
            if distributed {
                let communicator = try Communicator.world(timeout: timeout)
                result = try communicator.unroll(model.step, recorded: recorded, parameters: model.nominalParameters, template: model.initialState,
                                                 loss: model.loss(target: target), schedule: schedule, preparedSegments: preparedSegments)
                guard communicator.rank == 0 else { return }
            } else {
                result = try unroll(model.step, recorded: recorded, parameters: model.nominalParameters, template: model.initialState,
                                    loss: model.loss(target: target), schedule: schedule)
            }
            print(String(format: "loss %.9e over %d logged steps", result.loss, recorded.steps))
            let g = result.parameterGradient.doubles
            print(TextTable.render(header: ["parameter", "dL/d log-multiplier"],
                                   rows: zip(ThermalModel.names, g).map { [$0, String(format: "%+.6e", $1)] }))
            print(result.report.description)
            print("bits: loss \(String(result.loss.bitPattern, radix: 16)), gradient \(TensorDigest.of([("gradient", result.parameterGradient)]))")
        }
    }
}
