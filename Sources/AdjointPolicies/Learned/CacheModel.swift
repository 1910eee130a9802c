import AdjointTensor
import Foundation

/// A trained eviction model on disk: the scorer's tensors in safetensors, with JSON metadata
/// (under `adjoint.cacheModel`) naming the features, the normalisation and how it was trained.
public struct CacheModel {
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

    public init(scorer: EvictionScorer, metadata: Metadata) {
        self.scorer = scorer
        self.metadata = metadata
    }

    /// The hard policy this model drives.
    public func policy(capacity: Int64, pinned: Set<UInt64> = [], key: RandomKey = RandomKey(seed: 7)) -> LearnedPolicy {
        LearnedPolicy(capacity: capacity, scorer: scorer, normalization: metadata.normalization, candidates: metadata.candidates,
                      pinned: pinned, key: key)
    }

    static let key = "adjoint.cacheModel"

    /// Writes the model atomically (and `<path>.json`, the metadata alone, for reading).
    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let json = try encoder.encode(metadata)
        try SafeTensors.write(Dictionary(uniqueKeysWithValues: scorer.namedTensors.map { ($0.name, $0.tensor) }),
                              metadata: [Self.key: String(decoding: json, as: UTF8.self)], to: path)
        try AtomicFile.write(Array(json) + [0x0A], to: path + ".json")
    }

    /// Reads a model file; errors name the file and what is missing or unexpected.
    public static func read(_ path: String) throws -> CacheModel {
        let (tensors, meta) = try SafeTensors.read(path)
        guard let text = meta[key], let metadata = try? JSONDecoder().decode(Metadata.self, from: Data(text.utf8)),
              metadata.format == "adjoint.cacheModel" else {
            throw TraceError.invalidOptions(path: path, detail: "not an Adjoint cache model (no '\(key)' metadata)")
        }
        guard metadata.formatVersion <= 1 else {
            throw TraceError.invalidOptions(path: path, detail: "cache model format version \(metadata.formatVersion) is newer than this build reads (1)")
        }
        guard metadata.features == ObjectFeatures.names else {
            throw TraceError.invalidOptions(path: path, detail: "the model uses features \(metadata.features), this build computes \(ObjectFeatures.names)")
        }
        var scorer = try EvictionScorer(hidden: metadata.hidden)
        let names = scorer.namedTensors
        for (name, current) in names {
            guard let t = tensors[name], t.shape == current.shape, t.dtype == current.dtype else {
                throw TraceError.invalidOptions(path: path, detail: "tensor '\(name)' is missing or not \(current.valueType)")
            }
        }
        scorer = scorer.replacingTensors(with: names.map { tensors[$0.name]! })
        return CacheModel(scorer: scorer, metadata: metadata)
    }
}
