import Adjoint
import Foundation

/// A small classifier trained with Adam, dropout and reshuffled mini-batches on a synthetic
/// teacher–student dataset: the workload of `adjoint train` and `adjoint repro mlp`, and the subject
/// of the bit-exact resume tests. Everything random (data, initialisation, shuffling, dropout) comes
/// from keys derived from one seed, and everything that moves during training (parameters, Adam
/// moments, the dropout stream's counter, the data position) is in its checkpoint.
public struct MLPTraining {
    public struct Configuration: Codable, Equatable, Sendable {
        public var examples = 2048
        public var features = 32
        public var classes = 4
        public var hidden = 128
        public var batchSize = 64
        public var dropout = 0.1
        public var learningRate = 1e-3
        public var seed: UInt64 = 7

        public init() {}
    }

    /// Two hidden ReLU layers with dropout, float32.
    public struct Model: ParameterCollection {
        public var w1, b1, w2, b2, w3, b3: Tensor

        public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("w1", &w1); try visit("b1", &b1); try visit("w2", &w2)
            try visit("b2", &b2); try visit("w3", &w3); try visit("b3", &b3)
        }

        /// Glorot-uniform weights, zero biases.
        init(_ c: Configuration, key: RandomKey) throws {
            func layer(_ i: UInt64, _ fanIn: Int, _ fanOut: Int) throws -> Tensor {
                let bound = (6.0 / Double(fanIn + fanOut)).squareRoot()
                return try Tensor.uniform([fanIn, fanOut], key: key.fold(in: i), low: -bound, high: bound, dtype: .float32)
            }
            w1 = try layer(1, c.features, c.hidden); b1 = try .zeros([c.hidden], dtype: .float32)
            w2 = try layer(2, c.hidden, c.hidden); b2 = try .zeros([c.hidden], dtype: .float32)
            w3 = try layer(3, c.hidden, c.classes); b3 = try .zeros([c.classes], dtype: .float32)
        }

        /// Mean cross-entropy of a batch, with dropout after each hidden layer.
        func loss(_ x: Tensor, _ labels: Tensor, dropoutRate: Double, stream: inout RandomStream) throws -> Tensor {
            let h1 = try dropout((x.matmul(w1) + b1).relu(), rate: dropoutRate, stream: &stream)
            let h2 = try dropout((h1.matmul(w2) + b2).relu(), rate: dropoutRate, stream: &stream)
            return try (h2.matmul(w3) + b3).crossEntropy(labels: labels).mean()
        }
    }

    public let configuration: Configuration
    /// Inputs `[examples, features]` (float32) and teacher labels `[examples]` (int64).
    public let inputs: Tensor, labels: Tensor
    public private(set) var model: Model
    public private(set) var optimizer: Adam
    public private(set) var dropoutStream: RandomStream
    public private(set) var batches: ShuffledBatches
    /// The loss of the last step (NaN before the first).
    public private(set) var lastLoss = Double.nan

    /// Optimizer steps taken.
    public var step: Int { optimizer.step }

    /// A fresh run: data, initial model and streams from `configuration.seed`.
    public init(_ configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        let key = RandomKey(seed: configuration.seed)
        inputs = try Tensor.normal([configuration.examples, configuration.features], key: key.fold(in: 1), dtype: .float32)
        let teacher = try Tensor.normal([configuration.features, configuration.classes], key: key.fold(in: 2), dtype: .float32)
        let noise = try Tensor.normal([configuration.examples, configuration.classes], key: key.fold(in: 3), std: 0.5, dtype: .float32)
        labels = try (inputs.matmul(teacher) + noise).argmax(axis: 1)
        model = try Model(configuration, key: key.fold(in: 4))
        optimizer = try Adam(learningRate: .constant(configuration.learningRate))
        dropoutStream = RandomStream(key: key.fold(in: 5))
        batches = try ShuffledBatches(count: configuration.examples, batchSize: configuration.batchSize, key: key.fold(in: 6))
    }

    /// The seeds recorded in run manifests.
    public var seeds: [String: UInt64] { ["data": configuration.seed] }

    /// One step: next shuffled batch, forward with dropout, backward, Adam. Returns the loss.
    @discardableResult
    public mutating func trainStep() throws -> Double {
        let indices = try batches.next()
        let x = try inputs.gather(indices, axis: 0), y = try labels.gather(indices, axis: 0)
        var stream = dropoutStream
        let rate = configuration.dropout
        let (loss, gradient) = try valueWithGradient(at: model) { m in try m.loss(x, y, dropoutRate: rate, stream: &stream) }
        dropoutStream = stream
        try optimizer.update(&model, along: gradient)
        lastLoss = try loss.item()
        return lastLoss
    }

    // MARK: Data-parallel steps (`adjoint repro mlp --ranks`, `mpirun … adjoint train --distributed`)

    /// The next shuffled batch's example indices (advances the data position, like a step).
    public mutating func nextBatch() throws -> [Int] {
        try batches.next().scalars(as: Int64.self).map { Int($0) }
    }

    /// The loss of one example under `model`, with dropout from a stream of its own keyed by the
    /// step and the example: the same wherever and with whatever else it is computed, which makes a
    /// data-parallel gradient independent of how the batch is split among ranks.
    public func exampleLoss(_ model: Model, example: Int, step: Int) throws -> Tensor {
        let index = Tensor([Int64(example)])
        let x = try inputs.gather(index, axis: 0), y = try labels.gather(index, axis: 0)
        var stream = RandomStream(key: RandomKey(seed: configuration.seed).fold(in: 8).fold(in: UInt64(step)).fold(in: UInt64(example)))
        return try model.loss(x, y, dropoutRate: configuration.dropout, stream: &stream)
    }

    /// Replaces the parameters (a data-parallel run starts from rank 0's, broadcast).
    public mutating func replaceModel(with model: Model) {
        self.model = model
    }

    /// One optimizer step along `gradient` (computed elsewhere, e.g. across ranks); records `loss`.
    public mutating func apply(gradient: Model, loss: Double) throws {
        try optimizer.update(&model, along: gradient)
        lastLoss = loss
    }

    /// The whole training state.
    /// - Parameter metadata: more entries for the manifest's metadata (a distributed run records
    ///   its ranks there).
    public func checkpoint(run: RunManifest, metadata: [String: String] = [:]) -> Checkpoint {
        Checkpoint(model: model, optimizer: optimizer, random: ["dropout": dropoutStream], data: batches.position, run: run,
                   metadata: metadata.merging(["workload": "mlp", "configuration": configurationText]) { _, fixed in fixed })
    }

    /// Continues from `checkpoint` (taken from a run with the same configuration).
    ///
    /// - Throws: `CheckpointError.incompatible(detail:)` when the checkpoint belongs to another
    ///   configuration or lacks the dropout stream or data position.
    public mutating func restore(from checkpoint: Checkpoint) throws {
        guard checkpoint.manifest.metadata["configuration"] == configurationText else {
            throw CheckpointError.incompatible(detail: "the checkpoint was written by an MLP run configured as \(checkpoint.manifest.metadata["configuration"] ?? "unknown"), this run is \(configurationText)")
        }
        guard let stream = checkpoint.manifest.random["dropout"], let position = checkpoint.manifest.data else {
            throw CheckpointError.incompatible(detail: "the checkpoint has no dropout stream or data position")
        }
        var model = self.model, optimizer = self.optimizer
        try checkpoint.restore(model: &model, optimizer: &optimizer)
        batches = try ShuffledBatches(count: configuration.examples, batchSize: configuration.batchSize, key: batches.key, position: position)
        self.model = model
        self.optimizer = optimizer
        dropoutStream = stream
    }

    /// The configuration as canonical JSON (recorded in checkpoints, compared on resume).
    public var configurationText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(configuration)) ?? Data(), as: UTF8.self)
    }

    /// The tensors that define where training stands: parameters and optimizer moments.
    public var stateTensors: [(name: String, tensor: Tensor)] {
        model.namedTensors.map { ("model/\($0.name)", $0.tensor) } + optimizer.state.sorted { $0.key < $1.key }.map { ("optimizer/\($0.key)", $0.value) }
    }

    /// `crc32c:XXXXXXXX` of ``stateTensors`` (names and bytes): equal digests mean bitwise-equal state.
    public var digest: String { TensorDigest.of(stateTensors) }
}

/// A short fingerprint of named tensors' bytes, for comparing runs.
public enum TensorDigest {
    public static func of(_ tensors: [(name: String, tensor: Tensor)]) -> String { CRC32C.digest(tensors: tensors) }
}
