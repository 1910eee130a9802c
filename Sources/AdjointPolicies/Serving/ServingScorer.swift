import AdjointAutodiff
import AdjointIO
import AdjointTensor
import Foundation

/// What a scheduler knows about a waiting request when it decides — never its output length.
///
/// | index | name | value |
/// |---|---|---|
/// | 0 | `log2PromptToPrefill` | log₂(1 + prompt tokens still to prefill, after prefix-cache hits) |
/// | 1 | `log2Generated` | log₂(1 + output tokens generated so far: non-zero after a preemption) |
/// | 2 | `prefixHitFraction` | the share of the prompt found in the prefix cache on arrival |
/// | 3 | `waitedSeconds` | seconds since arrival |
///
/// Queue length and KV occupancy are the same for every candidate of one decision, so they cannot
/// change a ranking; they enter the learned policy through its batching knobs instead
/// (``ServingKnobs``).
public enum ServingFeatures {
    public static let names = ["log2PromptToPrefill", "log2Generated", "prefixHitFraction", "waitedSeconds"]
    public static let count = names.count
    /// The index of the waiting time: the one feature that grows while a request waits.
    static let waited = 3

    /// The features of a request at `now`.
    @inline(__always)
    static func write(promptToPrefill: Int, generated: Int, prefixFraction: Double, waited: Double,
                      into out: UnsafeMutablePointer<Double>) {
        out[0] = Foundation.log2(1 + Double(promptToPrefill))
        out[1] = Foundation.log2(1 + Double(generated))
        out[2] = prefixFraction
        out[3] = waited
    }
}

/// The learned priority: `s = w·x` over ``ServingFeatures``, lower first.
///
/// Linear on purpose: every waiting request's waiting time grows at the same rate, so `w₃·waited`
/// moves every score by the same amount between two decisions and the ranking of the waiting
/// requests never changes while they wait. The simulator keeps them in a heap by the static key
/// `w₀x₀ + w₁x₁ + w₂x₂ − w₃·arrival` (O(log n) per decision); a nonlinear scorer would have to
/// rescore the whole queue at every decision.
public struct ServingScorer: ParameterCollection, Sendable, Equatable {
    /// [d] weights.
    public var w: Tensor

    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try visit("w", &w)
    }

    /// FCFS: only the waiting time counts (`w₃ = −1`: the longest-waiting request first).
    public static func fcfs() throws -> ServingScorer {
        var weights = [Double](repeating: 0, count: ServingFeatures.count)
        weights[ServingFeatures.waited] = -1
        return try ServingScorer(weights: weights)
    }

    public init(weights: [Double]) throws {
        guard weights.count == ServingFeatures.count, weights.allSatisfy(\.isFinite) else {
            throw TensorError.invalidArgument(op: "ServingScorer", detail: "needs \(ServingFeatures.count) finite weights, got \(weights)")
        }
        w = try Tensor(weights, shape: [ServingFeatures.count])
    }

    public static func == (a: Self, b: Self) -> Bool { a.w.doubles == b.w.doubles }

    /// Scores of feature rows `x` [n, d] → [n] (differentiable).
    public func scores(_ x: Tensor) throws -> Tensor { try x.matmul(w.reshaped([-1, 1])).reshaped([-1]) }

    /// The weights as numbers.
    public var weights: [Double] { w.doubles }
}

/// The learned batching knobs: the iteration's token budget (prefill chunk size plus decodes) and
/// the most sequences an iteration holds. Trained on the hard simulator (SPSA in log₂ space:
/// they are integers, and their effect on latency is through discrete events).
public struct ServingKnobs: Codable, Sendable, Equatable, CustomStringConvertible {
    public var tokenBudget: Int
    public var maxBatch: Int

    public init(tokenBudget: Int, maxBatch: Int) { (self.tokenBudget, self.maxBatch) = (tokenBudget, maxBatch) }

    public static let tokenBudgetRange = 16 ... 1 << 16, maxBatchRange = 1 ... 1024

    /// Knobs from log₂ values, rounded and clamped to the ranges.
    static func fromLog2(_ budget: Double, _ batch: Double) -> ServingKnobs {
        func clamp(_ v: Double, _ r: ClosedRange<Int>) -> Int {
            guard v.isFinite else { return r.lowerBound }
            return Swift.min(r.upperBound, Swift.max(r.lowerBound, Int(Foundation.pow(2, Swift.min(v, 30)).rounded())))
        }
        return ServingKnobs(tokenBudget: clamp(budget, tokenBudgetRange), maxBatch: clamp(batch, maxBatchRange))
    }

    public var description: String { "token budget \(tokenBudget), max batch \(maxBatch)" }
}

/// Why a serving model file is refused: names the file, the field and what is wrong.
public enum ServingModelError: Error, Equatable, CustomStringConvertible {
    case invalid(path: String, field: String, detail: String)

    public var description: String {
        switch self {
        case let .invalid(path, field, detail): return "\(path): serving model field '\(field)': \(detail)"
        }
    }
}

/// A trained scheduling policy: the scorer's weights, the knobs and how it was trained. On disk:
/// safetensors with JSON metadata (`adjoint.servingModel`) and a CRC-32C of both, like
/// ``CacheModel``.
public struct ServingPolicyModel: Sendable, Equatable {
    public struct Metadata: Codable, Equatable, Sendable {
        public var format = "adjoint.servingModel"
        public var formatVersion = 1
        public var features = ServingFeatures.names
        public var knobs: ServingKnobs
        public var method: String
        public var trace: String
        public var model: String
        public var load: Double
        public var seed: UInt64
        public var rounds: Int
        /// The round whose parameters were kept (best validation latency), 0 = the initial policy.
        public var bestRound: Int
        /// Mean end-to-end latency (seconds) on the validation slice at `bestRound`.
        public var validationMeanLatency: Double?

        public init(knobs: ServingKnobs, method: String, trace: String, model: String, load: Double, seed: UInt64, rounds: Int,
                    bestRound: Int, validationMeanLatency: Double?) {
            (self.knobs, self.method, self.trace, self.model, self.load, self.seed, self.rounds, self.bestRound, self.validationMeanLatency)
                = (knobs, method, trace, model, load, seed, rounds, bestRound, validationMeanLatency)
        }
    }

    public var scorer: ServingScorer
    public var metadata: Metadata

    public init(scorer: ServingScorer, metadata: Metadata) { (self.scorer, self.metadata) = (scorer, metadata) }

    public var knobs: ServingKnobs { metadata.knobs }

    static let key = "adjoint.servingModel"

    /// Writes the model atomically.
    public func write(to path: String) throws {
        try ModelFile.write(metadata, tensors: ["w": scorer.w], key: Self.key, to: path)
    }

    /// Reads a model file; errors name the file, the field and what is wrong.
    public static func read(_ path: String) throws -> ServingPolicyModel {
        func invalid(_ field: String, _ detail: String) -> ServingModelError { .invalid(path: path, field: field, detail: detail) }
        let (metadata, tensors) = try ModelFile.read(path, key: key, kind: "serving model", as: Metadata.self, invalid: invalid)
        guard metadata.format == "adjoint.servingModel" else { throw invalid("format", "'\(metadata.format)', expected 'adjoint.servingModel'") }
        guard metadata.formatVersion == 1 else { throw invalid("formatVersion", "\(metadata.formatVersion); this build reads version 1") }
        guard metadata.features == ServingFeatures.names else { throw invalid("features", "\(metadata.features); this build computes \(ServingFeatures.names)") }
        guard ServingKnobs.tokenBudgetRange.contains(metadata.knobs.tokenBudget) else {
            throw invalid("knobs.tokenBudget", "\(metadata.knobs.tokenBudget), expected \(ServingKnobs.tokenBudgetRange)")
        }
        guard ServingKnobs.maxBatchRange.contains(metadata.knobs.maxBatch) else {
            throw invalid("knobs.maxBatch", "\(metadata.knobs.maxBatch), expected \(ServingKnobs.maxBatchRange)")
        }
        guard let w = tensors["w"], w.shape == [ServingFeatures.count], w.dtype == .float64 else {
            throw invalid("tensor w", "missing or not float64 [\(ServingFeatures.count)]")
        }
        guard w.doubles.allSatisfy(\.isFinite) else { throw invalid("tensor w", "holds NaN or infinite weights") }
        return ServingPolicyModel(scorer: try ServingScorer(weights: w.doubles), metadata: metadata)
    }
}
