import AdjointAutodiff
import AdjointTensor
import Foundation

/// What the learned admission gate knows about a missed object, all from sketches of fixed size
/// and scaled by the cache, so one model serves every cache size:
///
/// | # | feature |
/// |---|---|
/// | 0 | frequency: log(1 + the ``FrequencySketch``'s count of earlier requests) |
/// | 1 | gap: log(1 + (requests since the object was last seen) / (objects the cache holds)), the gap capped at the sketch's horizon (10 × the cache's objects; never seen counts as the horizon) |
/// | 2 | size: log(1 + size / the mean size of the requests so far) |
public enum AdmissionFeatures {
    public static let count = 3
    public static let names = ["frequency", "gap", "size"]
}

/// f_φ: a logistic admission score from the normalised features, `w·x + b`; the gate admits when
/// the score is ≥ 0 (the predicted probability that the object is requested again while an LRU
/// cache of this size would still hold it is at least ½, shifted by the threshold chosen on the
/// validation slice, folded into `b`).
public struct AdmissionScorer: ParameterCollection, Sendable {
    /// `w` [d, 1], `b` [1].
    public var w: Tensor, b: Tensor

    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try visit("admission.w", &w); try visit("admission.b", &b)
    }

    /// A scorer that admits everything (`w = 0`, `b = 1`).
    public init() throws {
        w = try Tensor.zeros([AdmissionFeatures.count, 1])
        b = try Tensor([1.0], shape: [1])
    }

    public init(w: Tensor, b: Tensor) { (self.w, self.b) = (w, b) }

    /// Scores of normalised feature rows `x` [n, d] → [n] (differentiable).
    public func scores(_ x: Tensor) throws -> Tensor { try (x.matmul(w) + b).reshaped([-1]) }
}

/// A trained admission gate: the scorer, the normalisation of its features and how it was chosen.
public struct AdmissionModel: Sendable {
    public struct Metadata: Codable, Equatable, Sendable {
        public var features = AdmissionFeatures.names
        public var mean: [Double]
        public var std: [Double]
        /// Mean request size of the training trace (sizes the sketches of a byte-sized cache).
        public var meanSize: Double
        /// The shift of the decision threshold chosen on the validation slice.
        public var threshold: Double
        /// Validation miss ratios: the eviction policy behind this gate, and admitting everything.
        public var validationMissRatio: Double
        public var ungatedValidationMissRatio: Double

        public init(mean: [Double], std: [Double], meanSize: Double, threshold: Double, validationMissRatio: Double, ungatedValidationMissRatio: Double) {
            (self.mean, self.std, self.meanSize, self.threshold) = (mean, std, meanSize, threshold)
            (self.validationMissRatio, self.ungatedValidationMissRatio) = (validationMissRatio, ungatedValidationMissRatio)
        }
    }

    public var scorer: AdmissionScorer
    public var metadata: Metadata

    public init(scorer: AdmissionScorer, metadata: Metadata) {
        self.scorer = scorer
        self.metadata = metadata
    }

    /// The gate for a cache of `capacity` (objects or bytes).
    public func gate(capacity: Int64, mode: SizeMode) -> LearnedAdmission {
        LearnedAdmission(self, objects: AdmissionKind.objects(capacity: capacity, mode: mode, meanSize: metadata.meanSize))
    }

    /// Throws `invalid(field, detail)` for the first field a gate could not use.
    func validate(_ invalid: (String, String) -> CacheModelError) throws {
        let m = metadata, d = AdmissionFeatures.count
        guard m.features == AdmissionFeatures.names else { throw invalid("admission.features", "\(m.features); this build computes \(AdmissionFeatures.names)") }
        guard m.mean.count == d, m.std.count == d, m.mean.allSatisfy(\.isFinite), m.std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw invalid("admission.normalization", "means \(m.mean), deviations \(m.std): expected \(d) finite means and \(d) finite deviations above 0")
        }
        guard m.meanSize.isFinite, m.meanSize >= 1, m.threshold.isFinite else {
            throw invalid("admission.meanSize", "mean size \(m.meanSize) and threshold \(m.threshold): expected a finite size ≥ 1 and a finite threshold")
        }
    }
}

/// The learned admission gate: scores each request's ``AdmissionFeatures`` with the linear
/// ``AdmissionScorer`` (normalisation folded into the weights) and admits a missed object when
/// the score is ≥ 0. State: a ``FrequencySketch`` and a ``RecencySketch`` sized by the cache,
/// and the running mean request size — fixed memory, no allocation per request.
public struct LearnedAdmission: AdmissionGate {
    public var name: String { "LearnedGate" }
    /// About how many objects the cache holds (scales the gap feature and sizes the sketches).
    public let objects: Double
    var frequency: FrequencySketch
    var recency: RecencySketch
    var now: Int64 = 0
    var sizes = 0.0
    let a: (Double, Double, Double), c: Double
    let horizon: Double

    public init(_ model: AdmissionModel, objects: Int) {
        let n = Swift.max(1, Swift.min(objects, 1 << 24))
        self.objects = Double(n)
        frequency = FrequencySketch(objects: n)
        recency = RecencySketch(width: 8 * n)
        horizon = 10 * Double(n)
        let w = model.scorer.w.doubles, m = model.metadata
        var c = model.scorer.b.doubles[0]
        var a = [Double](repeating: 0, count: AdmissionFeatures.count)
        for j in 0..<AdmissionFeatures.count {
            a[j] = w[j] / m.std[j]
            c -= a[j] * m.mean[j]
        }
        (self.a, self.c) = ((a[0], a[1], a[2]), c)
    }

    /// The raw (not normalised) features of `request` now.
    @inline(__always)
    public func features(_ request: CacheRequest) -> (Double, Double, Double) {
        let gap = recency.lastSeen(request.id).map { Swift.min(Double(now - $0), horizon) } ?? horizon
        let meanSize = now == 0 ? Double(request.size) : sizes / Double(now)
        return (ObjectFeatures.logScale(Double(frequency.estimate(request.id))), ObjectFeatures.logScale(gap / objects),
                ObjectFeatures.logScale(Double(request.size) / Swift.max(meanSize, 1e-9)))
    }

    public func admits(_ request: CacheRequest) -> Bool {
        let x = features(request)
        return c + a.0 * x.0 + a.1 * x.1 + a.2 * x.2 >= 0
    }

    public mutating func record(_ request: CacheRequest, hit: Bool) {
        frequency.add(request.id)
        recency.record(request.id, at: now)
        sizes += Double(request.size)
        now += 1
    }
}
