import AdjointTensor
import Foundation
import AdjointIO

/// Why a cache model file is refused: names the file, the field and what is wrong.
public enum CacheModelError: Error, Equatable, CustomStringConvertible {
    case invalid(path: String, field: String, detail: String)

    public var description: String {
        switch self {
        case let .invalid(path, field, detail): return "\(path): cache model field '\(field)': \(detail)"
        }
    }
}

/// A trained eviction model on disk: the scorer's tensors in safetensors, with JSON metadata
/// (under `adjoint.cacheModel`) naming the features, the normalisation and how it was trained,
/// and a CRC-32C of both (`adjoint.cacheModel.checksum`).
///
/// Reading checks everything a policy relies on: the checksum, the format, the features, finite
/// weights, a normalisation of finite means and positive finite deviations, `1 ... 4096`
/// candidates, `0 ... 4096` hidden units, a positive cache size. The `<path>.json` sidecar is a
/// copy of the metadata for people; when it is present and says something else than the model
/// file, reading refuses (an edit of the sidecar would otherwise be silently ignored).
public struct CacheModel {
    /// The most candidates and hidden units a model file may declare.
    public static let maximumCandidates = 4096, maximumHidden = 4096

    public struct Metadata: Codable, Equatable, Sendable {
        public var format = "adjoint.cacheModel"
        public var formatVersion = 1
        public var features = ObjectFeatures.names
        public var normalization: FeatureNormalization
        public var hidden: Int
        public var candidates: Int
        public var method: String
        public var trace: String
        public var cacheSize: Int64
        public var sizeMode: String
        public var seed: UInt64
        public var rounds: Int
        public var trainingMissRatio: Double?
        /// The round whose scorer was kept (best miss ratio on the held-back validation slice;
        /// 0 = the initial scorer), its validation miss ratio, and LRU's on the same slice.
        public var bestRound: Int?
        public var validationMissRatio: Double?
        public var lruValidationMissRatio: Double?
        /// The admission gate's metadata, when the model has one (its tensors are `admission.w`
        /// and `admission.b`).
        public var admission: AdmissionModel.Metadata?
        /// Whether the eviction policy bypasses a missed object that scores below every candidate
        /// (``LearnedPolicy/bypass``): kept when it lowered the validation miss ratio.
        public var bypass: Bool?
        /// The cache sizes training learned from and selected by, when more than `cacheSize`
        /// (validation figures are then means over them).
        public var trainingSizes: [Int64]?
        /// The training sizes at which the kept scorer lost to LRU on the validation slice (models
        /// written before ``fallbacks``; read as LRU fallbacks).
        public var lruSizes: [Int64]?
        /// The training sizes at which a classical policy beat the kept scorer on the validation
        /// slice, each with the best one there: at a cache size nearest one of them (by ratio),
        /// ``CacheModel/deployed(capacity:mode:pinned:)`` runs that policy.
        public var fallbacks: [Fallback]?

        public init(normalization: FeatureNormalization, hidden: Int, candidates: Int, method: String, trace: String, cacheSize: Int64,
                    sizeMode: String, seed: UInt64, rounds: Int, trainingMissRatio: Double?) {
            self.normalization = normalization
            self.hidden = hidden
            self.candidates = candidates
            self.method = method
            self.trace = trace
            self.cacheSize = cacheSize
            self.sizeMode = sizeMode
            self.seed = seed
            self.rounds = rounds
            self.trainingMissRatio = trainingMissRatio
        }
    }

    public var scorer: EvictionScorer
    public var metadata: Metadata
    /// The learned admission gate, if training kept one (see ``AdmissionTraining``).
    public var admission: AdmissionModel? { didSet { metadata.admission = admission?.metadata } }

    public init(scorer: EvictionScorer, metadata: Metadata, admission: AdmissionModel? = nil) {
        self.scorer = scorer
        self.metadata = metadata
        self.admission = admission
        self.metadata.admission = admission?.metadata
    }

    /// The hard eviction policy this model drives (with its bypass, without its admission gate).
    public func policy(capacity: Int64, pinned: Set<UInt64> = [], key: RandomKey = RandomKey(seed: 7)) -> LearnedPolicy {
        var policy = LearnedPolicy(capacity: capacity, scorer: scorer, normalization: metadata.normalization, candidates: metadata.candidates,
                                   pinned: pinned, key: key)
        policy.bypass = metadata.bypass ?? false
        return policy
    }

    /// The classical policy validation found better than the learned scorer at the training size
    /// nearest `capacity` (by ratio; ``Metadata/fallbacks``, or LRU at ``Metadata/lruSizes``), or
    /// nil where the learned scorer was better.
    public func fallback(capacity: Int64) -> PolicyKind? {
        guard let sizes = metadata.trainingSizes, !sizes.isEmpty, capacity > 0,
              let nearest = sizes.filter({ $0 > 0 }).min(by: { Swift.abs(log(Double($0) / Double(capacity))) < Swift.abs(log(Double($1) / Double(capacity))) })
        else { return nil }
        if let kind = metadata.fallbacks?.first(where: { $0.size == nearest }).flatMap({ PolicyKind(name: $0.policy) }) { return kind }
        return metadata.lruSizes?.contains(nearest) == true ? .lru : nil
    }

    /// What a cache deploys, named "Learned": the classical policy validation preferred at this
    /// size (``fallback(capacity:)``; pinned objects need the learned policy's validator, so with
    /// pins the learned policy is kept), else the eviction policy behind the learned admission gate
    /// when the model has one, else the eviction policy alone.
    public func deployed(capacity: Int64, mode: SizeMode, pinned: Set<UInt64> = []) -> any CachePolicy {
        func named<P: CachePolicy>(_ policy: P) -> any CachePolicy { Renamed(policy, name: "Learned") }
        if pinned.isEmpty, let kind = fallback(capacity: capacity) { return named(kind.make(capacity: capacity)) }
        let eviction = policy(capacity: capacity, pinned: pinned)
        guard let admission else { return eviction }
        return Renamed(GatedPolicy(eviction, gate: admission.gate(capacity: capacity, mode: mode)), name: "Learned")
    }

    static let key = "adjoint.cacheModel"

    /// Writes the model atomically (and `<path>.json`, the metadata alone, for reading).
    public func write(to path: String) throws {
        let tensors = Dictionary(uniqueKeysWithValues: (scorer.namedTensors + (admission?.scorer.namedTensors ?? [])).map { ($0.name, $0.tensor) })
        let json = try ModelFile.write(metadata, tensors: tensors, key: Self.key, pretty: true, to: path)
        try AtomicFile.write(Array(json) + [0x0A], to: path + ".json")
    }

    /// Reads a model file; errors name the file, the field and what is wrong (``CacheModelError``).
    public static func read(_ path: String) throws -> CacheModel {
        func invalid(_ field: String, _ detail: String) -> CacheModelError { .invalid(path: path, field: field, detail: detail) }
        let (metadata, tensors) = try ModelFile.read(path, key: key, kind: "cache model", as: Metadata.self, invalid: invalid)
        try metadata.validate(invalid)
        let sidecar = path + ".json"
        if FileManager.default.fileExists(atPath: sidecar) {
            let copy: Metadata
            do { copy = try JSONDecoder().decode(Metadata.self, from: Data(try AtomicFile.read(sidecar))) } catch {
                throw invalid("sidecar", "\(sidecar) does not decode (\(error)); it must be the model's metadata or absent")
            }
            guard copy == metadata else {
                throw invalid("sidecar", "\(sidecar) differs from the metadata inside the model; the model file is what is used — "
                              + "regenerate or delete the sidecar")
            }
        }
        var scorer = try EvictionScorer(hidden: metadata.hidden)
        let names = scorer.namedTensors
        for (name, current) in names {
            guard let t = tensors[name], t.shape == current.shape, t.dtype == current.dtype else {
                throw invalid("tensor \(name)", "missing or not \(current.valueType)")
            }
            guard t.doubles.allSatisfy(\.isFinite) else { throw invalid("tensor \(name)", "holds NaN or infinite weights") }
        }
        scorer = scorer.replacingTensors(with: names.map { tensors[$0.name]! })
        var admission: AdmissionModel?
        if let gate = metadata.admission {
            let d = AdmissionFeatures.count
            guard let w = tensors["admission.w"], w.shape == [d, 1], w.dtype == .float64, let b = tensors["admission.b"], b.shape == [1], b.dtype == .float64 else {
                throw invalid("tensor admission.w / admission.b", "missing or not float64 [\(d), 1] and [1], though the metadata describes an admission gate")
            }
            guard (w.doubles + b.doubles).allSatisfy(\.isFinite) else { throw invalid("tensor admission.w / admission.b", "holds NaN or infinite weights") }
            admission = AdmissionModel(scorer: AdmissionScorer(w: w, b: b), metadata: gate)
            try admission!.validate(invalid)
        }
        return CacheModel(scorer: scorer, metadata: metadata, admission: admission)
    }
}

extension CacheModel.Metadata {
    /// Throws `invalid(field, detail)` for the first field a policy could not use.
    func validate(_ invalid: (String, String) -> CacheModelError) throws {
        guard format == "adjoint.cacheModel" else { throw invalid("format", "'\(format)', expected 'adjoint.cacheModel'") }
        guard formatVersion >= 1, formatVersion <= 1 else { throw invalid("formatVersion", "\(formatVersion); this build reads version 1") }
        guard features == ObjectFeatures.names else { throw invalid("features", "\(features); this build computes \(ObjectFeatures.names)") }
        let d = ObjectFeatures.count
        guard normalization.mean.count == d, normalization.std.count == d else {
            throw invalid("normalization", "\(normalization.mean.count) means and \(normalization.std.count) deviations for \(d) features")
        }
        guard normalization.mean.allSatisfy(\.isFinite) else { throw invalid("normalization.mean", "\(normalization.mean) is not all finite") }
        guard normalization.std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw invalid("normalization.std", "\(normalization.std): every deviation must be finite and above 0")
        }
        guard (1...CacheModel.maximumCandidates).contains(candidates) else {
            throw invalid("candidates", "\(candidates), expected 1...\(CacheModel.maximumCandidates)")
        }
        guard (0...CacheModel.maximumHidden).contains(hidden) else { throw invalid("hidden", "\(hidden), expected 0...\(CacheModel.maximumHidden)") }
        guard cacheSize >= 1 else { throw invalid("cacheSize", "\(cacheSize), expected at least 1") }
        guard SizeMode(rawValue: sizeMode) != nil else { throw invalid("sizeMode", "'\(sizeMode)', expected unit or bytes") }
        for fallback in fallbacks ?? [] {
            guard let kind = PolicyKind(name: fallback.policy), kind != .belady else {
                throw invalid("fallbacks", "'\(fallback.policy)' at \(fallback.size) is not an online policy (\(PolicyKind.allCases.filter { $0 != .belady }.map(\.rawValue).joined(separator: ", ")))")
            }
            guard trainingSizes?.contains(fallback.size) == true else {
                throw invalid("fallbacks", "size \(fallback.size) is not one of the training sizes \(trainingSizes ?? [])")
            }
        }
    }
}

extension CacheModel {
    /// A classical policy a model deploys at one of its training sizes (``CacheModel/Metadata/fallbacks``).
    public struct Fallback: Codable, Equatable, Sendable {
        public var size: Int64
        public var policy: String
        public init(size: Int64, policy: String) { (self.size, self.policy) = (size, policy) }
    }
}
