import Adjoint
import AdjointDistributed
import ArgumentParser
import Foundation
import AdjointIO

extension SizeMode: ExpressibleByArgument {}
extension CacheTrainingMethod: ExpressibleByArgument {}
extension AdmissionTraining.Method: ExpressibleByArgument {}

/// Where the requests come from: a trace file, or the built-in synthetic workload.
struct WorkloadOptions: ParsableArguments {
    @Option(name: .long, help: "A trace: libCacheSim oracleGeneral (.bin, .zst), CSV (.csv[.gz]) or text ids (one per line, .gz allowed). Default: the built-in synthetic workload.")
    var trace: String?

    @Option(name: .long, help: "Trace format: oracleGeneral, csv or text (default: from the file name).")
    var format: String?

    @Option(name: .long, help: "CSV: the id column (name with --csv-header, else a 0-based index).")
    var csvId = "0"
    @Option(name: .long, help: "CSV: the time column.")
    var csvTime: String?
    @Option(name: .long, help: "CSV: the size column.")
    var csvSize: String?
    @Flag(name: .long, help: "CSV: the first line is a header.")
    var csvHeader = false

    @Option(name: .long, help: "Read at most this many requests.")
    var limit: Int?

    @Option(name: .long, help: "Synthetic workload: requests (without --trace).")
    var requests = 200_000

    @Option(name: .long, help: "Cache sizes count objects (unit) or bytes.")
    var sizes: SizeMode = .unit

    func validate() throws {
        if let format, TraceFormat(rawValue: format) == nil { throw ValidationError("--format must be oracleGeneral, csv or text, got '\(format)'") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        guard requests >= 1 else { throw ValidationError("--requests must be at least 1") }
    }

    /// The workload, read once into a temporary copy with next accesses (``SpilledTrace``): each
    /// simulation then streams it in constant memory.
    func load() throws -> SpilledTrace {
        if let trace {
            func column(_ text: String?) -> CSVTraceReader.ColumnRef? { text.map { Int($0).map { .index($0) } ?? .name($0) } }
            let name = (trace as NSString).lastPathComponent
            switch format.flatMap(TraceFormat.init(rawValue:)) ?? TraceFormat.guess(path: trace) {
            case .oracleGeneral:
                var r = try OracleGeneralReader(path: trace)
                return try SpilledTrace(&r, name: name, limit: limit ?? .max)
            case .csv:
                var r = try CSVTraceReader(path: trace, columns: .init(id: column(csvId)!, time: column(csvTime), size: column(csvSize)), hasHeader: csvHeader)
                return try SpilledTrace(&r, name: name, limit: limit ?? .max)
            case .text:
                var r = try TextTraceReader(path: trace)
                return try SpilledTrace(&r, name: name, limit: limit ?? .max)
            }
        }
        var w = try SyntheticWorkload.standard(requests: self.requests)
        return try SpilledTrace(&w, name: "synthetic (drifting Zipf + scans + loop)")
    }
}

/// Passes a source's requests through, advancing a progress bar every 65,536.
struct ProgressSource<Base: RequestSource>: RequestSource {
    var base: Base
    let total: Int
    let bar: ProgressBar?
    var done = 0
    var name: String { base.name }

    mutating func next() throws -> CacheRequest? {
        guard let r = try base.next() else { return nil }
        done += 1
        if done & 0xFFFF == 0 || done == total { bar?.update(done, of: total) }
        return r
    }
}

/// `adjoint cache`: simulate, compare and train eviction policies.
public struct CacheCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "cache",
        abstract: "Simulate cache eviction policies, compare them with a learned policy, and train it.",
        subcommands: [Simulate.self, Compare.self, Train.self]
    )
    public init() {}

    /// ``CacheSize/parse(_:footprint:field:)``, with `option` naming the option in errors.
    static func capacity(_ text: String, footprint: Int64, option: String = "--cache-size") throws -> Int64 {
        try CacheSize.parse(text, footprint: footprint, field: option)
    }

    public struct Simulate: ParsableCommand {
        public static let configuration = CommandConfiguration(abstract: "Run one policy over a workload and print its miss ratios.")
        @OptionGroup var workload: WorkloadOptions
        @Option(name: .long, help: "FIFO, LRU, LFU, ARC, 2Q, S3-FIFO, SIEVE, LeCaR, Cacheus, W-TinyLFU, GDSF, LIRS, LHD, LRB, Belady, or Learned (with --model).")
        var policy = "LRU"
        @Option(name: .long, help: "Cache size: a count (objects or bytes) or a percentage of the footprint.")
        var cacheSize = "5%"
        @Option(name: .long, help: "A trained model (from `adjoint cache train`), for --policy Learned.")
        var model: String?
        @Option(name: .long, help: "Deploy --policy Learned behind the online guardrail, this classical policy as its shadow (e.g. S3-FIFO).")
        var guardrail: String?
        @Option(name: .long, help: "Guardrail: requests per window.")
        var window = 20_000
        @Option(name: .long, help: "Guardrail: the miniatures see one key in this many, at that fraction of the cache size.")
        var sampling = 16
        @Flag(name: .long, help: "Guardrail: update the learned scorer after each window (bounded imitation steps).")
        var onlineLearning = false
        @Option(name: .long, help: "Admission gate in front of the policy: TinyLFU, SeenBefore, or none. --policy Learned uses its model's learned gate when it has one (none: leave it out).")
        var admission: String?
        public init() {}

        public func validate() throws {
            guard PolicyKind(name: policy) != nil || policy.lowercased() == "learned" else { throw ValidationError("unknown policy '\(policy)'") }
            if policy.lowercased() == "learned", model == nil { throw ValidationError("--policy Learned needs --model FILE") }
            if let guardrail {
                guard policy.lowercased() == "learned" else { throw ValidationError("--guardrail guards --policy Learned only") }
                guard let kind = PolicyKind(name: guardrail), kind != .belady else {
                    throw ValidationError("--guardrail must name an online classical policy (FIFO, LRU, LFU, ARC, 2Q, S3-FIFO, SIEVE, LeCaR, Cacheus, W-TinyLFU, GDSF, LIRS, LHD, LRB), got '\(guardrail)'")
                }
            }
            guard (2 ... 1 << 24).contains(window) else { throw ValidationError("--window must be in 2 ... 16777216, got \(window)") }
            guard (1 ... 65536).contains(sampling) else { throw ValidationError("--sampling must be in 1 ... 65536, got \(sampling)") }
            if let admission {
                guard admission.lowercased() == "none" || AdmissionKind(name: admission) != nil else {
                    throw ValidationError("--admission must be TinyLFU, SeenBefore or none, got '\(admission)'")
                }
                if policy.lowercased() == "learned", admission.lowercased() != "none" {
                    throw ValidationError("--policy Learned is gated by its model's own admission gate; --admission accepts only none there")
                }
                if guardrail != nil, admission.lowercased() != "none" { throw ValidationError("--admission with --guardrail accepts only none") }
            }
        }

        public func run() throws {
            let trace = try workload.load()
            let capacity = try CacheCommand.capacity(cacheSize, footprint: trace.footprint(workload.sizes))
            let result: SimulationResult
            var validation = ""
            var source = trace.makeSource()
            let start = DispatchTime.now().uptimeNanoseconds
            let gate = admission.flatMap(AdmissionKind.init(name:))
            if let kind = PolicyKind(name: policy), let gate {
                let objects = AdmissionKind.objects(capacity: capacity, mode: workload.sizes, meanSize: trace.meanRequestSize)
                func gated<P: CachePolicy>(_ base: P) throws -> (SimulationResult, Int) {
                    var policy = GatedPolicy(base, gate: gate.make(objects: objects, distinctObjects: trace.distinctObjects))
                    return (try CacheSimulation.run(&policy, source: &source, mode: workload.sizes), policy.refused)
                }
                let (gatedResult, refused) = try gated(kind.make(capacity: capacity))
                result = gatedResult
                validation = "\nadmission gate \(gate.rawValue): \(refused) misses kept out"
            } else if let kind = PolicyKind(name: policy) {
                var policy = kind.make(capacity: capacity)
                result = try CacheSimulation.run(&policy, source: &source, mode: workload.sizes)
                if let lrb = policy as? LRBPolicy {
                    validation = "\nLRB: \(lrb.trainings) models trained, \(lrb.earlyForgets) histories forgotten early, \(lrb.skippedSamples) labels skipped"
                }
            } else if let guardrail, let shadow = PolicyKind(name: guardrail) {
                let run = try CacheGuardrail.run(&source, model: try CacheModel.read(model!), capacity: capacity, mode: workload.sizes,
                                                 settings: CacheGuardrailSettings(window: window, shadow: shadow, sampling: sampling, onlineLearning: onlineLearning))
                result = run.result
                validation = (run.deployed.map { "\nthe model deploys \($0.rawValue) at this size (validation preferred it at the nearest size it was trained at); the guardrail guards it" } ?? "")
                    + "\nguardrail (shadow \(shadow.rawValue), windows of \(window), 1 key in \(sampling)): \(run.windowsOnLearned) windows on the model's policy, "
                    + "\(run.windowsOnShadow) on the shadow" + run.events.map { "\n  " + $0.description }.joined()
            } else {
                let model = try CacheModel.read(model!)
                if let kind = model.fallback(capacity: capacity) {
                    var fallback = kind.make(capacity: capacity)
                    result = try CacheSimulation.run(&fallback, source: &source, mode: workload.sizes)
                    validation = "\nthe model deploys \(kind.rawValue) at this size: at the nearest size it was trained at, \(kind.rawValue) was better than the learned policy on its validation slice"
                } else if let gate = model.admission, admission?.lowercased() != "none" {
                    var learned = GatedPolicy(model.policy(capacity: capacity), gate: gate.gate(capacity: capacity, mode: workload.sizes))
                    result = try CacheSimulation.run(&learned, source: &source, mode: workload.sizes)
                    validation = "\nvalidator: \(learned.base.validation)\nlearned admission gate: \(learned.refused) misses kept out"
                } else {
                    var learned = model.policy(capacity: capacity)
                    result = try CacheSimulation.run(&learned, source: &source, mode: workload.sizes)
                    validation = "\nvalidator: \(learned.validation)"
                }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            print("\(trace.name): \(result.requests) requests, cache \(capacity) \(workload.sizes == .unit ? "objects" : "bytes")")
            print(String(format: "%@: miss ratio %.4f, byte miss ratio %.4f", result.policy, result.missRatio, result.byteMissRatio) + validation)
            print(String(format: "%d requests read and simulated in %.3f s: %.0f requests/s", result.requests, seconds,
                         Double(result.requests) / Swift.max(seconds, 1e-9)))
        }
    }

    public struct Compare: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Every policy over several cache sizes: a table and an SVG plot of miss ratio against cache size.",
            discussion: "Without --model, a learned policy is first trained (imitation of Belady) on the start of the workload at every cache size of the list. With --count-from, the misses before that request are not counted (the caches still see those requests): --training-requests N --count-from N evaluates on requests the model never saw.")
        @OptionGroup var workload: WorkloadOptions
        @Option(name: .long, help: "Comma-separated cache sizes: counts or percentages of the footprint.")
        var cacheSizes = "1%,2%,5%,10%,20%"
        @Option(name: .long, help: "A trained model for the Learned policy (default: train one now).")
        var model: String?
        @Flag(name: .long, help: "Leave the learned policy out.")
        var noLearned = false
        @Option(name: .long, help: "Without --model: train on at most this many requests from the start of the trace (held in memory).")
        var trainingRequests = 1_000_000
        @Flag(name: .long, help: "Without --model: train at the middle size only (default: learn from, and select rounds by, every size of --cache-sizes).")
        var trainAtMiddleSize = false
        @Option(name: .long, help: "Count misses from this request index on (the requests before it still pass through every cache).")
        var countFrom = 0
        public func validate() throws {
            guard trainingRequests >= 1 else { throw ValidationError("--training-requests must be at least 1, got \(trainingRequests)") }
            guard countFrom >= 0 else { throw ValidationError("--count-from must be at least 0, got \(countFrom)") }
        }
        @Option(name: .long, help: "Write the plot here.")
        var svg = "cache-compare.svg"
        @Flag(name: .long, help: "Never draw a progress bar.")
        var quiet = false
        public init() {}

        public func run() throws {
            let trace = try workload.load()
            let footprint = trace.footprint(workload.sizes)
            let capacities = try cacheSizes.split(separator: ",").map { try CacheCommand.capacity(String($0), footprint: footprint, option: "--cache-sizes") }
            guard !capacities.isEmpty else { throw ValidationError("--cache-sizes '\(cacheSizes)': expected at least one size, e.g. 1%,5%,10%") }
            guard countFrom < trace.count else {
                throw ValidationError("--count-from \(countFrom): the trace holds \(trace.count) requests; nothing would be counted")
            }
            print("\(trace.name): \(trace.count) requests, footprint \(footprint) \(workload.sizes == .unit ? "objects" : "bytes")"
                  + (countFrom > 0 ? "; misses counted from request \(countFrom) on" : ""))
            fflush(nil)
            var learned: CacheModel?
            if !noLearned {
                if let model { learned = try CacheModel.read(model) } else {
                    var options = CacheTrainingOptions(capacity: capacities[capacities.count / 2])
                    options.mode = workload.sizes
                    options.rounds = 3
                    if !trainAtMiddleSize { options.extraCapacities = capacities }
                    let requests = try trace.requests(prefix: trainingRequests)
                    learned = try CacheTraining.train(requests, options: options, traceName: trace.name) { round, total, message in
                        if !quiet { printError("training \(round)/\(total): \(message)") }
                    }
                }
            }
            // Every policy at every size side by side, in one pass over the trace.
            var policies: [any CachePolicy] = []
            for capacity in capacities {
                for kind in PolicyKind.allCases { policies.append(kind.make(capacity: capacity)) }
                let objects = AdmissionKind.objects(capacity: capacity, mode: workload.sizes, meanSize: trace.meanRequestSize)
                policies.append(GatedPolicy(LRUPolicy(capacity: capacity), gate: FrequencyAdmission.tinyLFU(objects: objects)))
                if let learned { policies.append(learned.deployed(capacity: capacity, mode: workload.sizes)) }
            }
            let bar = quiet ? nil : ProgressBar(label: "compare \(policies.count) simulations", minimumTotal: 1, unit: "requests")
            var source = ProgressSource(base: trace.makeSource(), total: trace.count, bar: bar)
            let results = try CacheSimulation.run(&policies, source: &source, mode: workload.sizes, countFrom: countFrom)
            bar?.finish()
            let names = results.map(\.policy).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
            let rows = names.map { p in [p] + capacities.map { c in String(format: "%.4f", results.first { $0.policy == p && $0.capacity == c }!.missRatio) } }
            print(TextTable.render(header: ["miss ratio"] + capacities.map { "\($0)" }, rows: rows))
            try AtomicFile.write(Array(MissRatioPlot.svg(results, title: "Miss ratio: \(trace.name)").utf8), to: svg)
            print("plot: \(svg)")
        }
    }

    public struct Train: ParsableCommand {
        public static let configuration = CommandConfiguration(
            abstract: "Train the learned eviction policy; resumes from its last checkpoint after an interruption.")
        @OptionGroup var workload: WorkloadOptions
        @Option(name: .long, help: "imitation, relaxed, straightThrough or scoreFunction.")
        var method: CacheTrainingMethod = .imitation
        @Option(name: .long, help: "Cache size to train at: a count or a percentage of the footprint.")
        var cacheSize = "5%"
        @Option(name: .long, help: "More cache sizes to learn from and select rounds by (comma-separated counts or percentages), for one model at every size.")
        var alsoAt: String?
        @Option(name: .long, help: "Hidden units of the scorer (0: linear).")
        var hidden = 0
        @Option(name: .long, help: "Objects scored per eviction (half carried over from the last eviction, half sampled), 2 ... 4096.")
        var candidates = CacheTrainingOptions.defaultCandidates
        @Option(name: .long, help: "Training rounds.")
        var rounds = 4
        @Option(name: .long, help: "Seed of every random choice in training.")
        var seed: UInt64 = 7
        @Option(name: .long, help: "The model file to write (safetensors; metadata also in FILE.json).")
        var model = "cache-model.safetensors"
        @Option(name: .long, help: "Checkpoint directory (default: MODEL.checkpoints).")
        var checkpointDirectory: String?
        @Flag(name: .long, help: "Train the eviction scorer only: no admission gate, and no bypass of missed objects by the scorer.")
        var noAdmission = false
        @Option(name: .long, help: "How the admission gate learns: labels (reuse within an LRU cache's reach) or relaxed (soft admission in the relaxed simulator).")
        var admissionMethod: AdmissionTraining.Method = .labels
        @Flag(name: .long, help: "Never draw a progress bar.")
        var quiet = false
        @Flag(name: .long, help: "Data-parallel over the ranks of an MPI job (mpirun; imitation only): each rank simulates its shard of the trace.")
        var distributed = false
        public init() {}

        public func validate() throws {
            guard hidden >= 0, rounds >= 1 else { throw ValidationError("--hidden must be ≥ 0 and --rounds ≥ 1") }
            guard !distributed || method == .imitation else { throw ValidationError("--distributed trains with --method imitation, not \(method.rawValue)") }
            guard (2 ... CacheModel.maximumCandidates).contains(candidates) else {
                throw ValidationError("--candidates must be in 2 ... \(CacheModel.maximumCandidates), not \(candidates)")
            }
            try requireExistingParent(model, option: "--model")
            try requireExistingParent(checkpointDirectory ?? model + ".checkpoints", option: "--checkpoint-directory")
        }

        public func run() throws {
            let trace = try workload.load()
            let capacity = try CacheCommand.capacity(cacheSize, footprint: trace.footprint(workload.sizes))
            let extra = try alsoAt.map { list in
                try list.split(separator: ",", omittingEmptySubsequences: false).map {
                    try CacheCommand.capacity(String($0), footprint: trace.footprint(workload.sizes), option: "--also-at")
                }
            } ?? []
            let requests = try trace.requests(prefix: trace.count)   // training samples windows: in memory
            let name = trace.name
            var options = CacheTrainingOptions(capacity: capacity)
            options.method = method
            options.mode = workload.sizes
            options.hidden = hidden
            options.candidates = candidates
            options.rounds = rounds
            options.seed = seed
            options.admission = !noAdmission
            options.admissionMethod = admissionMethod
            options.extraCapacities = extra
            // Distributed: every rank trains on its shard; rank 0 prints, writes and evaluates.
            let communicator = distributed ? try Communicator.world(timeout: 3600) : nil
            if let communicator { options.parallelism = CacheTrainingParallelism(communicator: communicator) }
            let writes = communicator?.rank ?? 0 == 0
            let store = try CheckpointStore(directory: checkpointDirectory ?? model + ".checkpoints")
            let bar = quiet || !writes ? nil : ProgressBar(label: "train \(method.rawValue)", minimumTotal: 1, unit: "rounds")
            if let communicator, writes { print("data-parallel over \(communicator.size) ranks: each simulates \(requests.count * 4 / 5 / communicator.size) or so of the training requests") }
            let trained = try CacheTraining.train(requests, options: options, traceName: name, store: store) { round, total, message in
                bar?.update(round, of: total)
                if writes { print(message) }
            }
            bar?.finish()
            guard writes else { return }
            try trained.write(to: model)
            var policy = trained.policy(capacity: capacity)
            let learned = CacheSimulation.run(&policy, requests: requests, mode: workload.sizes)
            if trained.admission != nil {
                var gated = trained.deployed(capacity: capacity, mode: workload.sizes)
                let result = CacheSimulation.run(&gated, requests: requests, mode: workload.sizes)
                print(String(format: "with its learned admission gate: miss ratio %.4f on the whole trace (eviction alone %.4f)", result.missRatio, learned.missRatio))
            }
            let lru = CacheSimulation.run(.lru, capacity: capacity, requests: requests, mode: workload.sizes)
            let belady = CacheSimulation.run(.belady, capacity: capacity, requests: requests, mode: workload.sizes)
            print(String(format: "model %@ (round %d of %d, validation miss ratio %.4f against LRU's %.4f): miss ratio %.4f (LRU %.4f, Belady %.4f) "
                         + "on the whole trace at cache %lld; validator: %@", model, trained.metadata.bestRound ?? 0, rounds,
                         trained.metadata.validationMissRatio ?? .nan, trained.metadata.lruValidationMissRatio ?? .nan,
                         learned.missRatio, lru.missRatio, belady.missRatio, capacity, policy.validation.description))
        }
    }
}
