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

    public var description: String {
        switch self {
        case .fcfs: return "FCFS"
        case .shortestPromptFirst: return "SPF"
        case let .tokenBudget(b): return "Sarathi(\(b))"
        case .earliestDeadlineFirst: return "EDF"
        case .clairvoyant: return "Oracle-SRF"
        }
    }

    /// The classical policies and the clairvoyant bound.
    public static let classical: [SchedulingPolicy] = [.fcfs, .shortestPromptFirst, .tokenBudget(512), .earliestDeadlineFirst, .clairvoyant]
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

    public init(tokenBudget: Int = 8192, maxBatch: Int = 256, kvBlocks: Int? = nil, prefixCacheBlocks: Int = 0,
                slo: ServingSLO = ServingSLO(ttft: 2, tpot: 0.1)) {
        (self.tokenBudget, self.maxBatch, self.kvBlocks, self.prefixCacheBlocks, self.slo) = (tokenBudget, maxBatch, kvBlocks, prefixCacheBlocks, slo)
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
public struct ServingSimulator {
    public let cost: ServingCostModel
    public let configuration: ServingConfiguration

    public init(cost: ServingCostModel, configuration: ServingConfiguration = ServingConfiguration()) throws {
        let c = configuration
        guard (1 ... 1 << 20).contains(c.tokenBudget) else { throw ServingSimulationError.invalidConfiguration("token budget \(c.tokenBudget) is outside 1 ... 2^20") }
        guard (1 ... 1 << 16).contains(c.maxBatch) else { throw ServingSimulationError.invalidConfiguration("max batch \(c.maxBatch) is outside 1 ... 65536") }
        if let blocks = c.kvBlocks, !(1 ... 1 << 30).contains(blocks) { throw ServingSimulationError.invalidConfiguration("KV blocks \(blocks) outside 1 ... 2^30") }
        guard c.prefixCacheBlocks >= 0, c.prefixCacheBlocks <= 1 << 24 else { throw ServingSimulationError.invalidConfiguration("prefix cache blocks \(c.prefixCacheBlocks) outside 0 ... 2^24") }
        self.cost = cost
        self.configuration = c
    }

    /// Per-request state, in arrays indexed by request (no allocation per iteration).
    private struct Live {
        var arrival: Double, prompt: Int, output: Int
        var inKV = 0, generated = 0, blocks = 0
        var firstToken = -1.0, finish = -1.0
        var preemptions = 0, cached = 0
        var key = 0.0
    }

    public func run(_ trace: [ServingRequest], policy: SchedulingPolicy) throws -> ServingReport {
        let blockTokens = ServingCostModel.blockTokens
        let prefixBlockTokens = 512, prefixBlockCost = prefixBlockTokens / blockTokens
        let prefixCapacity = configuration.prefixCacheBlocks
        let capacity = (configuration.kvBlocks ?? cost.kvBlocks) - prefixCapacity * prefixBlockCost
        guard capacity >= 1 else { throw ServingSimulationError.invalidConfiguration("the prefix cache takes the whole KV cache") }
        var budget = configuration.tokenBudget
        if case let .tokenBudget(b) = policy {
            guard (1 ... 1 << 20).contains(b) else { throw ServingSimulationError.invalidConfiguration("token budget \(b) is outside 1 ... 2^20") }
            budget = b
        }
        var live = try trace.map { r -> Live in
            let need = (r.promptTokens + r.outputTokens + blockTokens - 1) / blockTokens
            guard need <= capacity else { throw ServingSimulationError.requestTooLarge(id: r.id, blocks: need, capacity: capacity) }
            return Live(arrival: r.arrival, prompt: r.promptTokens, output: r.outputTokens)
        }
        let slo = configuration.slo
        func key(_ i: Int) -> Double {
            switch policy {
            case .fcfs, .tokenBudget: return live[i].arrival
            case .shortestPromptFirst: return Double(live[i].prompt)
            case .earliestDeadlineFirst: return live[i].arrival + slo.ttft
            case .clairvoyant:
                // Remaining work on the shared resource, the iteration's token budget, knowing the
                // true output length: prompt tokens still to prefill plus output tokens to come.
                return Double(Swift.max(0, live[i].prompt - live[i].inKV) + live[i].output - live[i].generated)
            }
        }
        func before(_ a: Int, _ b: Int) -> Bool { live[a].key < live[b].key || (live[a].key == live[b].key && a < b) }

        var waiting = BinaryHeap<Queued>()
        var running: [Int] = []          // in priority order
        var scheduled: [(index: Int, tokens: Int)] = []
        var prefixLRU = PrefixCache(capacity: prefixCapacity)
        var next = 0, now = trace.first?.arrival ?? 0, used = 0, peak = 0, iterations = 0, preemptions = 0, done = 0

        func need(_ i: Int) -> Int { live[i].prompt + Swift.max(live[i].generated, 1) - 1 }
        func blocks(_ tokens: Int) -> Int { (tokens + blockTokens - 1) / blockTokens }
        func preempt(_ i: Int) {
            used -= live[i].blocks
            live[i].blocks = 0
            live[i].inKV = 0
            live[i].preemptions += 1
            preemptions += 1
            live[i].key = key(i)
            waiting.push(Queued(key: live[i].key, index: i))
        }
        func insertRunning(_ i: Int) {
            var position = running.count
            while position > 0, before(i, running[position - 1]) { position -= 1 }
            running.insert(i, at: position)
        }

        while done < live.count {
            while next < live.count, trace[next].arrival <= now {
                live[next].key = key(next)
                waiting.push(Queued(key: live[next].key, index: next))
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
            while left > 0, running.count < configuration.maxBatch, let i = waiting.first?.index {
                if live[i].inKV == 0, live[i].generated == 0, prefixCapacity > 0, live[i].cached == 0 {
                    let hits = prefixLRU.hits(trace[i].prefixBlocks)
                    live[i].cached = Swift.min(hits * prefixBlockTokens, live[i].prompt - 1)
                }
                let start = live[i].generated == 0 ? live[i].cached : 0
                let remaining = need(i) - Swift.max(live[i].inKV, start)
                let tokens = Swift.min(remaining, left)
                let extra = blocks(Swift.max(live[i].inKV, start) + tokens) - live[i].blocks
                if used + extra > capacity { break }
                waiting.pop()
                live[i].inKV = Swift.max(live[i].inKV, start)
                used += extra
                live[i].blocks += extra
                scheduled.append((i, tokens))
                left -= tokens
                insertRunning(i)
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
                }
            }
            running.removeAll { live[$0].finish >= 0 }
            if case .clairvoyant = policy {
                for i in running { live[i].key = key(i) }
                running.sort(by: before)
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
        return ServingReport(policy: policy.description, requests: served, ttft: LatencySummary(served.map(\.ttft)),
                             tpot: LatencySummary(served.filter { $0.tpot > 0 }.map(\.tpot)), endToEnd: LatencySummary(served.map(\.endToEnd)),
                             sloAttainment: served.isEmpty ? 0 : Double(met) / Double(served.count),
                             goodput: makespan > 0 ? Double(met) / makespan : 0, makespan: makespan, iterations: iterations,
                             preemptions: preemptions, peakKVBlocks: peak, kvCapacity: capacity)
    }
}

/// A waiting request by its priority key (lower first, then arrival order).
private struct Queued: HeapOrdered {
    var key: Double, index: Int
    static func precedes(_ a: Queued, _ b: Queued) -> Bool { a.key < b.key || (a.key == b.key && a.index < b.index) }
}

/// Recently computed 512-token prompt blocks (by id), least recently used dropped first.
private struct PrefixCache {
    let capacity: Int
    private var stamp: [UInt64: Int] = [:]
    private var clock = 0

    init(capacity: Int) { self.capacity = capacity }

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
