import AdjointStateful
import AdjointTensor
import Foundation

/// Latency budgets: time to first token and time per output token, in seconds.
public struct ServingSLO: Sendable, Equatable, CustomStringConvertible {
    public var ttft: Double
    public var tpot: Double
    public init(ttft: Double, tpot: Double) { (self.ttft, self.tpot) = (ttft, tpot) }
    public var description: String { "ttft=\(ttft)s,tpot=\(tpot)s" }

    /// `ttft=2,tpot=0.1` (seconds; either may be left out, keeping `base`'s).
    public static func parse(_ text: String, base: ServingSLO = ServingSLO(ttft: 2, tpot: 0.1)) throws -> ServingSLO {
        var slo = base
        for part in text.split(separator: ",") {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard kv.count == 2, let value = Double(kv[1].hasSuffix("s") ? String(kv[1].dropLast()) : kv[1]), value.isFinite, value > 0, value <= 86_400 else {
                throw ServingTraceError.invalidOptions(detail: "--slo: '\(part)' is not ttft=SECONDS or tpot=SECONDS with a positive time up to 86400 s")
            }
            switch kv[0] {
            case "ttft": slo.ttft = value
            case "tpot": slo.tpot = value
            default: throw ServingTraceError.invalidOptions(detail: "--slo: unknown budget '\(kv[0])' (ttft, tpot)")
            }
        }
        return slo
    }
}

/// Which waiting request runs next (lower key first, ties by arrival order), and how many tokens an
/// iteration may batch.
public enum SchedulingPolicy: Sendable, Equatable, CustomStringConvertible {
    /// First come, first served (vLLM's default).
    case fcfs
    /// The shortest prompt first.
    case shortestPromptFirst
    /// First come, first served with a small per-iteration token budget, so long prefills are cut
    /// into chunks that never stall the running decodes (Sarathi-Serve).
    case tokenBudget(Int)
    /// The earliest time-to-first-token deadline (`arrival + SLO.ttft`) first.
    case earliestDeadlineFirst
    /// Shortest remaining work first, knowing each request's true output length (prompt tokens still
    /// to prefill plus output tokens to come: what it will take of the iterations' token budget):
    /// the bound a policy that must predict the output length is measured against.
    case clairvoyant
    /// A trained ``ServingPolicyModel``: its scorer orders the queue, its knobs set the token budget
    /// and the batch size, and every admission passes the ``ServingValidator``.
    case learned(ServingPolicyModel)

    public var description: String {
        switch self {
        case .fcfs: return "FCFS"
        case .shortestPromptFirst: return "SPF"
        case let .tokenBudget(b): return "Sarathi(\(b))"
        case .earliestDeadlineFirst: return "EDF"
        case .clairvoyant: return "Oracle-SRF"
        case .learned: return "Learned"
        }
    }

    /// The classical policies and the clairvoyant bound.
    public static let classical: [SchedulingPolicy] = [.fcfs, .shortestPromptFirst, .tokenBudget(512), .earliestDeadlineFirst, .clairvoyant]
}

/// The symbolic guard's settings (the learned policy always runs behind it).
public struct ServingGuardSettings: Sendable, Equatable {
    /// A request that has waited this long (seconds since arrival) is admitted before any other,
    /// the longest-waiting first: the learned ranking can delay a request, never starve it.
    public var maxWait: Double = 5
    /// Each tenant with waiting requests gets at least this share of its fair part (1 / tenants
    /// waiting) of the last ``fairnessWindow`` admissions; below it, its longest-waiting request
    /// goes first. 0 turns the floor off.
    public var tenantFloor: Double = 0.5
    /// Admissions the tenant shares are counted over.
    public var fairnessWindow = 256

    public init(maxWait: Double = 5, tenantFloor: Double = 0.5, fairnessWindow: Int = 256) {
        (self.maxWait, self.tenantFloor, self.fairnessWindow) = (maxWait, tenantFloor, fairnessWindow)
    }
}

/// Settings of the serving simulator.
public struct ServingConfiguration: Sendable, Equatable {
    /// Tokens one iteration may process (prefill chunks and decodes), unless the policy sets its own.
    public var tokenBudget = 8192
    /// Sequences one iteration may hold.
    public var maxBatch = 256
    /// KV-cache blocks (of `ServingCostModel.blockTokens` tokens); `nil`: what fits on the GPU.
    public var kvBlocks: Int?
    /// Reuse the KV of prompt blocks seen before (Mooncake `hash_ids`, 512 tokens each), keeping
    /// up to this many such blocks (0: no prefix cache). They take KV memory.
    public var prefixCacheBlocks = 0
    /// The latency budgets for SLO attainment and goodput.
    public var slo = ServingSLO(ttft: 2, tpot: 0.1)
    /// The guard on the learned policy's admissions.
    public var guardSettings = ServingGuardSettings()

    public init(tokenBudget: Int = 8192, maxBatch: Int = 256, kvBlocks: Int? = nil, prefixCacheBlocks: Int = 0,
                slo: ServingSLO = ServingSLO(ttft: 2, tpot: 0.1), guardSettings: ServingGuardSettings = ServingGuardSettings()) {
        (self.tokenBudget, self.maxBatch, self.kvBlocks, self.prefixCacheBlocks, self.slo) = (tokenBudget, maxBatch, kvBlocks, prefixCacheBlocks, slo)
        self.guardSettings = guardSettings
    }
}

/// A simulation that cannot run: a setting out of range, or a request that can never fit.
public enum ServingSimulationError: Error, Equatable, CustomStringConvertible {
    case invalidConfiguration(String)
    /// Request `id` needs `blocks` KV blocks for its prompt and output; the cache holds `capacity`.
    case requestTooLarge(id: Int, blocks: Int, capacity: Int)

    public var description: String {
        switch self {
        case let .invalidConfiguration(detail): return "serving simulator: \(detail)"
        case let .requestTooLarge(id, blocks, capacity):
            return "request \(id) needs \(blocks) KV blocks for its prompt and output, more than the \(capacity) the cache holds"
        }
    }
}

/// What happened to one request.
public struct ServedRequest: Sendable, Equatable {
    public var id: Int
    /// Seconds from arrival to the first output token.
    public var ttft: Double
    /// Seconds per output token after the first (0 for a one-token output).
    public var tpot: Double
    /// Seconds from arrival to the last token.
    public var endToEnd: Double
    /// Times the request was preempted and recomputed.
    public var preemptions: Int
    /// Prompt tokens whose KV came from the prefix cache.
    public var cachedPromptTokens: Int
}

/// Mean and percentiles of one latency.
public struct LatencySummary: Sendable, Equatable {
    public var mean: Double, p50: Double, p90: Double, p99: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        func quantile(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            return sorted[Swift.min(sorted.count - 1, Int((q * Double(sorted.count)).rounded(.up)) - 1 < 0 ? 0 : Int((q * Double(sorted.count)).rounded(.up)) - 1)]
        }
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        (p50, p90, p99) = (quantile(0.5), quantile(0.9), quantile(0.99))
    }
}

/// The result of a simulated run.
public struct ServingReport: Sendable, Equatable {
    public var policy: String
    public var requests: [ServedRequest]
    public var ttft: LatencySummary, tpot: LatencySummary, endToEnd: LatencySummary
    /// The fraction of requests meeting both budgets.
    public var sloAttainment: Double
    /// Requests meeting both budgets per second of the run (first arrival to last completion).
    public var goodput: Double
    /// Seconds from the first arrival to the last completion.
    public var makespan: Double
    public var iterations: Int
    public var preemptions: Int
    /// The most KV blocks in use at once, and the capacity.
    public var peakKVBlocks: Int, kvCapacity: Int
    /// What the guard did to the learned policy's admissions (empty for the classical policies).
    public var validation = ValidationMetrics()

    /// A digest of every request's numbers (bit patterns): equal runs give equal digests.
    public var digest: UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ x: UInt64) { hash = (hash ^ x) &* 0x100_0000_01b3 }
        for r in requests {
            mix(UInt64(r.id)); mix(r.ttft.bitPattern); mix(r.tpot.bitPattern); mix(r.endToEnd.bitPattern); mix(UInt64(r.preemptions))
        }
        return hash
    }
}

/// An iteration-level (continuous-batching) simulator of one LLM server: each iteration batches a
/// token of every decoding request and chunks of prompts up to the token budget, takes the cost
/// model's latency, and advances; the KV cache is allocated in blocks, and when a decode finds none
/// free the lowest-priority running request is preempted (its KV dropped and recomputed later).
/// Deterministic: the same trace, policy and configuration give the same report, bit for bit.
public struct ServingSimulator: Sendable {
    public let cost: ServingCostModel
    public let configuration: ServingConfiguration

    public init(cost: ServingCostModel, configuration: ServingConfiguration = ServingConfiguration()) throws {
        let c = configuration
        guard (1 ... 1 << 20).contains(c.tokenBudget) else { throw ServingSimulationError.invalidConfiguration("token budget \(c.tokenBudget) is outside 1 ... 2^20") }
        guard (1 ... 1 << 16).contains(c.maxBatch) else { throw ServingSimulationError.invalidConfiguration("max batch \(c.maxBatch) is outside 1 ... 65536") }
        if let blocks = c.kvBlocks, !(1 ... 1 << 30).contains(blocks) { throw ServingSimulationError.invalidConfiguration("KV blocks \(blocks) outside 1 ... 2^30") }
        guard c.prefixCacheBlocks >= 0, c.prefixCacheBlocks <= 1 << 24 else { throw ServingSimulationError.invalidConfiguration("prefix cache blocks \(c.prefixCacheBlocks) outside 0 ... 2^24") }
        let g = c.guardSettings
        guard g.maxWait.isFinite, g.maxWait > 0, g.maxWait <= 1e7 else { throw ServingSimulationError.invalidConfiguration("guard max wait \(g.maxWait) s is not in (0, 10⁷]") }
        guard g.tenantFloor.isFinite, (0 ... 1).contains(g.tenantFloor) else { throw ServingSimulationError.invalidConfiguration("tenant floor \(g.tenantFloor) is not in 0 ... 1") }
        guard (1 ... 1 << 20).contains(g.fairnessWindow) else { throw ServingSimulationError.invalidConfiguration("fairness window \(g.fairnessWindow) is outside 1 ... 2^20") }
        self.cost = cost
        self.configuration = c
    }

    /// Per-request state, in arrays indexed by request (no allocation per iteration).
    private struct Live {
        var arrival: Double, prompt: Int, output: Int, tenant: Int
        var inKV = 0, generated = 0, blocks = 0
        var firstToken = -1.0, finish = -1.0
        var preemptions = 0, cached = 0
        var key = 0.0
        /// Prompt tokens the prefix cache held on arrival (a feature of the learned policy).
        var probedHits = 0
        /// Waiting for admission; `version` tells a heap entry of this wait from stale ones.
        var waiting = false, version: Int32 = 0
    }

    public func run(_ trace: [ServingRequest], policy: SchedulingPolicy) throws -> ServingReport {
        try run(trace, policy: policy, hooks: ServingHooks())
    }

    /// The simulation with hooks for training (observed or sampled admissions) and the online
    /// guardrail (a controller that may switch the policy as requests complete).
    func run(_ trace: [ServingRequest], policy initialPolicy: SchedulingPolicy, hooks: ServingHooks) throws -> ServingReport {
        var policy = initialPolicy
        let blockTokens = ServingCostModel.blockTokens
        let prefixBlockTokens = 512, prefixBlockCost = prefixBlockTokens / blockTokens
        let prefixCapacity = configuration.prefixCacheBlocks
        let capacity = (configuration.kvBlocks ?? cost.kvBlocks) - prefixCapacity * prefixBlockCost
        guard capacity >= 1 else { throw ServingSimulationError.invalidConfiguration("the prefix cache takes the whole KV cache") }
        var budget = 0, maxBatch = 0
        var weights = [Double](repeating: 0, count: ServingFeatures.count)
        func adopt(_ p: SchedulingPolicy) throws {
            (budget, maxBatch) = (configuration.tokenBudget, configuration.maxBatch)
            switch p {
            case let .tokenBudget(b):
                guard (1 ... 1 << 20).contains(b) else { throw ServingSimulationError.invalidConfiguration("token budget \(b) is outside 1 ... 2^20") }
                budget = b
            case let .learned(model):
                (budget, maxBatch) = (model.knobs.tokenBudget, model.knobs.maxBatch)
                weights = model.scorer.weights
            default: break
            }
        }
        try adopt(policy)
        var live = try trace.map { r -> Live in
            let need = (r.promptTokens + r.outputTokens + blockTokens - 1) / blockTokens
            guard need <= capacity else { throw ServingSimulationError.requestTooLarge(id: r.id, blocks: need, capacity: capacity) }
            return Live(arrival: r.arrival, prompt: r.promptTokens, output: r.outputTokens, tenant: r.tenant)
        }
        let slo = configuration.slo
        let tenants = (trace.map(\.tenant).max() ?? 0) + 1
        guard tenants <= 1 << 16, trace.allSatisfy({ $0.tenant >= 0 }) else {
            throw ServingSimulationError.invalidConfiguration("tenant ids must lie in 0 ..< 65536")
        }
        var features = [Double](repeating: 0, count: ServingFeatures.count)
        func writeFeatures(_ i: Int, now: Double, into out: UnsafeMutablePointer<Double>) {
            let l = live[i]
            ServingFeatures.write(promptToPrefill: Swift.max(0, l.prompt - Swift.max(l.inKV, l.probedHits)), generated: l.generated,
                                  prefixFraction: Double(l.probedHits) / Double(l.prompt), waited: now - l.arrival, into: out)
        }
        func key(_ i: Int) -> Double {
            switch policy {
            case .fcfs, .tokenBudget: return live[i].arrival
            case .shortestPromptFirst: return Double(live[i].prompt)
            case .earliestDeadlineFirst: return live[i].arrival + slo.ttft
            case .clairvoyant:
                // Remaining work on the shared resource, the iteration's token budget, knowing the
                // true output length: prompt tokens still to prefill plus output tokens to come.
                return Double(Swift.max(0, live[i].prompt - live[i].inKV) + live[i].output - live[i].generated)
            case .learned:
                // s(now) = w·x(now); the waiting time's term w₃·(now − arrival) shifts every
                // request alike, so the order is that of the key at time 0 (see ``ServingScorer``).
                return features.withUnsafeMutableBufferPointer { x in
                    writeFeatures(i, now: 0, into: x.baseAddress!)
                    var s = 0.0
                    for k in 0..<ServingFeatures.count { s += weights[k] * x[k] }
                    return s
                }
            }
        }
        func before(_ a: Int, _ b: Int) -> Bool { live[a].key < live[b].key || (live[a].key == live[b].key && a < b) }

        let guarded = if case .learned = policy { true } else { hooks.controller != nil }
        var guardState = GuardState(tenants: tenants, window: configuration.guardSettings.fairnessWindow)
        var validator = GuardedDecisions(ServingValidator(settings: configuration.guardSettings))
        var waiting = BinaryHeap<Queued>()
        var running: [Int] = []          // in priority order
        var scheduled: [(index: Int, tokens: Int)] = []
        var prefixLRU = PrefixCache(capacity: prefixCapacity)
        var next = 0, now = trace.first?.arrival ?? 0, used = 0, peak = 0, iterations = 0, preemptions = 0, done = 0
        var draws: UInt64 = 0
        var candidates: [Int] = [], candidateFeatures: [Double] = [], probabilities: [Double] = []

        func enqueue(_ i: Int) {
            live[i].key = key(i)
            live[i].waiting = true
            live[i].version &+= 1
            waiting.push(Queued(key: live[i].key, index: i, version: live[i].version))
            if guarded { guardState.enqueue(i, arrival: live[i].arrival, tenant: live[i].tenant, version: live[i].version) }
        }
        func isCurrent(_ q: Queued) -> Bool { live[q.index].waiting && live[q.index].version == q.version }
        /// The best waiting request (stale heap entries dropped on the way).
        func top() -> Int? {
            while let q = waiting.first {
                if isCurrent(q) { return q.index }
                waiting.pop()
            }
            return nil
        }
        func need(_ i: Int) -> Int { live[i].prompt + Swift.max(live[i].generated, 1) - 1 }
        func blocks(_ tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
        func preempt(_ i: Int) {
            used -= live[i].blocks
            live[i].blocks = 0
            live[i].inKV = 0
            live[i].preemptions += 1
            preemptions += 1
            enqueue(i)
        }
        func insertRunning(_ i: Int) {
            var position = running.count
            while position > 0, before(i, running[position - 1]) { position -= 1 }
            running.insert(i, at: position)
        }
        /// Up to `hooks.candidates` waiting requests, the best first (the heap's top, then the
        /// heap's array order), with their features at `now`.
        func gatherCandidates(best: Int) {
            candidates.removeAll(keepingCapacity: true)
            candidates.append(best)
            for q in waiting.items where candidates.count < hooks.candidates && isCurrent(q) && q.index != best { candidates.append(q.index) }
            let d = ServingFeatures.count
            candidateFeatures = [Double](repeating: 0, count: candidates.count * d)
            candidateFeatures.withUnsafeMutableBufferPointer { x in
                for (k, i) in candidates.enumerated() { writeFeatures(i, now: now, into: x.baseAddress! + k * d) }
            }
        }
        /// The request the policy proposes to admit next.
        func propose(best: Int) -> Int {
            guard hooks.observe != nil || hooks.sampling != nil else { return best }
            gatherCandidates(best: best)
            var chosen = 0
            if let sampling = hooks.sampling, candidates.count > 1 {
                let d = ServingFeatures.count
                probabilities = candidates.indices.map { k in
                    var s = 0.0
                    for j in 0..<d { s += weights[j] * candidateFeatures[k * d + j] }
                    return -s / sampling.temperature
                }
                let top = probabilities.max()!
                var total = 0.0
                for k in probabilities.indices { probabilities[k] = Foundation.exp(probabilities[k] - top); total += probabilities[k] }
                let bits = sampling.key.bits(block: draws)
                draws += 1
                let u = Double((UInt64(bits.0) << 32 | UInt64(bits.1)) >> 11) * 0x1p-53 * total
                var cumulative = 0.0
                chosen = probabilities.count - 1
                for k in probabilities.indices {
                    cumulative += probabilities[k]
                    if u < cumulative { chosen = k; break }
                }
            }
            hooks.observe?(candidateFeatures, candidates.count, chosen)
            return candidates[chosen]
        }
        func switchPolicy(to newPolicy: SchedulingPolicy) throws {
            policy = newPolicy
            try adopt(newPolicy)
            let current = waiting.items.filter(isCurrent).map(\.index)
            waiting = BinaryHeap()
            for i in current { enqueue(i) }
            for i in running { live[i].key = key(i) }
            running.sort(by: before)
        }
        let windows = hooks.window > 0 ? (live.count + hooks.window - 1) / hooks.window : 0
        var completedInWindow = [Int](repeating: 0, count: windows), latencyInWindow = [Double](repeating: 0, count: windows)
        var nextWindow = 0

        while done < live.count {
            while next < live.count, trace[next].arrival <= now {
                if prefixCapacity > 0 { live[next].probedHits = Swift.min(prefixLRU.probe(trace[next].prefixBlocks) * prefixBlockTokens, live[next].prompt - 1) }
                enqueue(next)
                next += 1
            }
            scheduled.removeAll(keepingCapacity: true)
            var left = budget
            // Running requests first, in priority order; a decode that finds no free block
            // preempts the lowest-priority running request (possibly itself).
            var k = 0
            while k < running.count, left > 0 {
                let i = running[k]
                let remaining = need(i) - live[i].inKV
                let tokens = remaining > 0 ? Swift.min(remaining, left) : 1
                let extra = blocks(live[i].inKV + tokens) - live[i].blocks
                if used + extra > capacity {
                    let victim = running.removeLast()
                    preempt(victim)
                    if victim == i { break }
                    continue
                }
                used += extra
                live[i].blocks += extra
                scheduled.append((i, tokens))
                left -= tokens
                k += 1
            }
            // Then waiting requests, best first, while the budget, the batch and the KV allow.
            while left > 0, running.count < maxBatch, let best = top() {
                var i = propose(best: best)
                func admissionBlocks(_ i: Int) -> (start: Int, tokens: Int, extra: Int) {
                    if live[i].inKV == 0, live[i].generated == 0, prefixCapacity > 0, live[i].cached == 0 {
                        let hits = prefixLRU.hits(trace[i].prefixBlocks)
                        live[i].cached = Swift.min(hits * prefixBlockTokens, live[i].prompt - 1)
                    }
                    let start = live[i].generated == 0 ? live[i].cached : 0
                    let from = Swift.max(live[i].inKV, start)
                    let tokens = Swift.min(need(i) - from, left)
                    return (start, tokens, blocks(from + tokens) - live[i].blocks)
                }
                if guarded {
                    let overdue = guardState.overdue(now: now, maxWait: configuration.guardSettings.maxWait, current: { i, v in live[i].waiting && live[i].version == v })
                    let starved = guardState.belowFloor(configuration.guardSettings.tenantFloor, current: { i, v in live[i].waiting && live[i].version == v })
                    let free = capacity - used
                    let context = ServingValidator.Context(overdue: overdue, starvedTenant: starved, freeBlocks: free,
                                                           blocksNeeded: { admissionBlocks($0).extra })
                    guard let fixed = validator.check(i, in: context) else { break }
                    i = fixed
                }
                let (start, tokens, extra) = admissionBlocks(i)
                if used + extra > capacity { break }
                live[i].waiting = false
                live[i].inKV = Swift.max(live[i].inKV, start)
                used += extra
                live[i].blocks += extra
                scheduled.append((i, tokens))
                left -= tokens
                insertRunning(i)
                if guarded { guardState.admitted(tenant: live[i].tenant) }
            }
            peak = Swift.max(peak, used)
            if scheduled.isEmpty {
                guard next < live.count else {
                    throw ServingSimulationError.invalidConfiguration("no request could be scheduled with \(capacity) KV blocks free of \(used) used")
                }
                now = Swift.max(now, trace[next].arrival)
                continue
            }
            var prefillTokens = 0, decodes = 0, context = 0
            for (i, tokens) in scheduled {
                if need(i) - live[i].inKV > 0 { prefillTokens += tokens } else { decodes += 1; context += live[i].inKV }
            }
            now += cost.iterationMs(prefillTokens: prefillTokens, decodeBatch: decodes, decodeContext: context) / 1000
            iterations += 1
            for (i, tokens) in scheduled {
                let wasPrefill = need(i) - live[i].inKV > 0
                live[i].inKV += tokens
                if !wasPrefill || live[i].inKV == need(i) {
                    live[i].generated += 1
                    if live[i].firstToken < 0 {
                        live[i].firstToken = now
                        if prefixCapacity > 0 { prefixLRU.insert(trace[i].prefixBlocks) }
                    }
                }
                if live[i].generated == live[i].output {
                    live[i].finish = now
                    used -= live[i].blocks
                    live[i].blocks = 0
                    done += 1
                    if hooks.window > 0 {
                        completedInWindow[i / hooks.window] += 1
                        latencyInWindow[i / hooks.window] += now - live[i].arrival
                    }
                }
            }
            running.removeAll { live[$0].finish >= 0 }
            if case .clairvoyant = policy {
                for i in running { live[i].key = key(i) }
                running.sort(by: before)
            }
            // The guardrail's controller sees each window of requests once all of them are done
            // (and again at later iterations while it answers `notReady`).
            if let controller = hooks.controller {
                while nextWindow < windows {
                    let size = Swift.min(hooks.window, live.count - nextWindow * hooks.window)
                    guard completedInWindow[nextWindow] == size else { break }
                    let answer = try controller(nextWindow, now, latencyInWindow[nextWindow] / Double(size))
                    if case .notReady = answer { break }
                    if case let .switchTo(replacement) = answer { try switchPolicy(to: replacement) }
                    nextWindow += 1
                }
            }
        }
        let served = live.indices.map { i -> ServedRequest in
            let l = live[i]
            return ServedRequest(id: trace[i].id, ttft: l.firstToken - l.arrival,
                                 tpot: l.output > 1 ? (l.finish - l.firstToken) / Double(l.output - 1) : 0,
                                 endToEnd: l.finish - l.arrival, preemptions: l.preemptions, cachedPromptTokens: l.cached)
        }
        let met = served.filter { $0.ttft <= slo.ttft && $0.tpot <= slo.tpot }.count
        let makespan = (live.map(\.finish).max() ?? 0) - (trace.first?.arrival ?? 0)
        return ServingReport(policy: initialPolicy.description, requests: served, ttft: LatencySummary(served.map(\.ttft)),
                             tpot: LatencySummary(served.filter { $0.tpot > 0 }.map(\.tpot)), endToEnd: LatencySummary(served.map(\.endToEnd)),
                             sloAttainment: served.isEmpty ? 0 : Double(met) / Double(served.count),
                             goodput: makespan > 0 ? Double(met) / makespan : 0, makespan: makespan, iterations: iterations,
                             preemptions: preemptions, peakKVBlocks: peak, kvCapacity: capacity, validation: validator.metrics)
    }
}

/// Training and guardrail hooks into ``ServingSimulator``.
struct ServingHooks {
    /// Candidates offered to `observe` and to sampling: the best waiting request and up to this
    /// many others.
    var candidates = 32
    /// Called at each admission the policy proposes with the candidates' features (row-major,
    /// `count × ServingFeatures.count`), their count, and the position of the proposal.
    var observe: (([Double], Int, Int) -> Void)?
    /// The learned policy samples its proposal from `softmax(−s/τ)` over the candidates.
    var sampling: (temperature: Double, key: RandomKey)?
    /// Requests per guardrail window (by position in the trace).
    var window = 0
    /// Called once every request of window `k` has completed, at simulated time `now`, with the
    /// window's mean end-to-end latency in this run.
    var controller: ((_ window: Int, _ now: Double, _ observedMean: Double) throws -> ControllerAnswer)?

    enum ControllerAnswer {
        /// Ask again after the next iteration (what the decision needs is not known yet).
        case notReady
        case keep
        case switchTo(SchedulingPolicy)
    }
}

/// The guard's bookkeeping: waiting requests by arrival (all, and per tenant, stale entries
/// dropped lazily) and the tenants of the last admissions.
private struct GuardState {
    var byArrival = BinaryHeap<Queued>()
    var byTenant: [BinaryHeap<Queued>]
    var waitingPerTenant: [Int]
    var recent: [Int]
    var recentHead = 0, recentCount = 0
    var admittedPerTenant: [Int]

    init(tenants: Int, window: Int) {
        byTenant = tenants > 1 ? Array(repeating: BinaryHeap(), count: tenants) : []
        waitingPerTenant = Array(repeating: 0, count: tenants)
        admittedPerTenant = Array(repeating: 0, count: tenants)
        recent = Array(repeating: 0, count: window)
    }

    mutating func enqueue(_ i: Int, arrival: Double, tenant: Int, version: Int32) {
        let q = Queued(key: arrival, index: i, version: version)
        byArrival.push(q)
        if !byTenant.isEmpty { byTenant[tenant].push(q) }
        waitingPerTenant[tenant] += 1
    }

    mutating func admitted(tenant: Int) {
        waitingPerTenant[tenant] -= 1
        if recentCount == recent.count { admittedPerTenant[recent[recentHead]] -= 1 } else { recentCount += 1 }
        recent[recentHead] = tenant
        admittedPerTenant[tenant] += 1
        recentHead = (recentHead + 1) % recent.count
    }

    /// The longest-waiting request, if it has waited `maxWait` or more.
    mutating func overdue(now: Double, maxWait: Double, current: (Int, Int32) -> Bool) -> Int? {
        while let q = byArrival.first, !current(q.index, q.version) { byArrival.pop() }
        guard let q = byArrival.first, now - q.key >= maxWait else { return nil }
        return q.index
    }

    /// The longest-waiting request of the tenant furthest below its floor, once the window has
    /// seen enough admissions to judge (a quarter of it).
    mutating func belowFloor(_ floor: Double, current: (Int, Int32) -> Bool) -> Int? {
        guard floor > 0, !byTenant.isEmpty, recentCount * 4 >= recent.count else { return nil }
        let active = waitingPerTenant.filter { $0 > 0 }.count
        guard active > 1 else { return nil }
        let fair = Double(recentCount) / Double(active)
        var worst: Int?, worstShare = floor
        for t in byTenant.indices where waitingPerTenant[t] > 0 {
            let share = Double(admittedPerTenant[t]) / fair
            if share < worstShare { (worst, worstShare) = (t, share) }
        }
        guard let t = worst else { return nil }
        while let q = byTenant[t].first, !current(q.index, q.version) { byTenant[t].pop() }
        return byTenant[t].first?.index
    }
}

/// A waiting request by its priority key (lower first, then arrival order).
private struct Queued: HeapOrdered {
    var key: Double, index: Int, version: Int32
    static func precedes(_ a: Queued, _ b: Queued) -> Bool { a.key < b.key || (a.key == b.key && a.index < b.index) }
}

/// Recently computed 512-token prompt blocks (by id), least recently used dropped first.
private struct PrefixCache {
    let capacity: Int
    private var stamp: [UInt64: Int] = [:]
    private var clock = 0

    init(capacity: Int) { self.capacity = capacity }

    /// How many leading blocks of `ids` are cached, without touching their recency.
    func probe(_ ids: [UInt64]) -> Int {
        var n = 0
        for id in ids {
            guard stamp[id] != nil else { break }
            n += 1
        }
        return n
    }

    /// How many leading blocks of `ids` are cached (a prefix hit stops at the first miss).
    mutating func hits(_ ids: [UInt64]) -> Int {
        var n = 0
        for id in ids {
            guard stamp[id] != nil else { break }
            clock += 1
            stamp[id] = clock
            n += 1
        }
        return n
    }

    mutating func insert(_ ids: [UInt64]) {
        guard capacity > 0 else { return }
        for id in ids {
            clock += 1
            stamp[id] = clock
        }
        if stamp.count > capacity {
            // Drop the oldest down to capacity (sorting here is rare: once per overflow batch).
            let keep = stamp.sorted { $0.value > $1.value }.prefix(capacity)
            stamp = Dictionary(uniqueKeysWithValues: keep.map { ($0.key, $0.value) })
        }
    }
}
