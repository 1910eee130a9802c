import AdjointAutodiff
import AdjointTensor
import Foundation
import AdjointIO

/// The JSON record of a checkpoint: where training stood and how to continue it.
public struct CheckpointManifest: Codable, Equatable, Sendable {
    /// `"adjoint.checkpoint"`.
    public var format: String
    public var formatVersion: Int
    /// Optimizer steps completed.
    public var step: Int
    /// The optimizer's kind and hyperparameters, when one was saved (its state tensors are under
    /// `optimizer/`).
    public var optimizer: OptimizerConfiguration?
    /// Random streams by name (key and counter).
    public var random: [String: RandomStream]
    /// Position in the training data.
    public var data: DataPosition?
    public var run: RunManifest
    /// Every tensor in the file: dtype (safetensors code) and shape.
    public var tensors: [String: TensorRecord]
    /// Free-form strings for the application.
    public var metadata: [String: String]

    public struct TensorRecord: Codable, Equatable, Sendable {
        public var dtype: String
        public var shape: [Int]
    }

    public static let formatName = "adjoint.checkpoint"
    /// The version this build writes and the newest it reads.
    public static let currentVersion = 1
}

/// A training checkpoint: named tensors (model parameters under `model/`, optimizer state under
/// `optimizer/`, anything else the application keeps under `extra/`) and a ``CheckpointManifest``.
///
/// On disk it is one safetensors file, loadable by Python's `safetensors`. Its `__metadata__` holds
/// the manifest as JSON under `adjoint.manifest` and `adjoint.checksum` = `crc32c:XXXXXXXX`, the
/// CRC-32C of the manifest text followed by every tensor's bytes in name order. One file, written
/// atomically, so a checkpoint is either entirely there or not at all.
public struct Checkpoint {
    public var manifest: CheckpointManifest
    public var tensors: [String: Tensor]

    /// Captures a training state.
    public init<Model: ParameterCollection, Opt: Optimizer>(
        model: Model, optimizer: Opt, random: [String: RandomStream] = [:], data: DataPosition? = nil,
        extra: [String: Tensor] = [:], run: RunManifest = .current(), metadata: [String: String] = [:]
    ) {
        var tensors: [String: Tensor] = [:]
        for (name, t) in model.namedTensors { tensors["model/\(name)"] = t }
        for (name, t) in optimizer.state { tensors["optimizer/\(name)"] = t }
        for (name, t) in extra { tensors["extra/\(name)"] = t }
        self.init(step: optimizer.step, tensors: tensors, optimizer: optimizer.configuration, random: random, data: data,
                  run: run, metadata: metadata)
    }

    /// A checkpoint of arbitrary tensors (names as given).
    public init(step: Int, tensors: [String: Tensor], optimizer: OptimizerConfiguration? = nil, random: [String: RandomStream] = [:],
                data: DataPosition? = nil, run: RunManifest = .current(), metadata: [String: String] = [:]) {
        let table = tensors.mapValues { t in
            CheckpointManifest.TensorRecord(dtype: SafeTensors.code(for: t.dtype) ?? "\(t.dtype)", shape: t.shape)
        }
        manifest = CheckpointManifest(format: CheckpointManifest.formatName, formatVersion: CheckpointManifest.currentVersion,
                                      step: step, optimizer: optimizer, random: random, data: data, run: run,
                                      tensors: table, metadata: metadata)
        self.tensors = tensors
    }

    /// The tensors under `prefix/`, with the prefix removed.
    public func tensors(under prefix: String) -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for (name, t) in tensors where name.hasPrefix(prefix + "/") { out[String(name.dropFirst(prefix.count + 1))] = t }
        return out
    }

    /// Loads the parameters into `model` and the state into `optimizer`.
    ///
    /// - Throws: ``CheckpointError/incompatible(detail:)`` when a parameter is missing or has another
    ///   shape or dtype, when the checkpoint has parameters the model lacks, or when the optimizer is
    ///   configured differently; neither argument is modified in that case.
    public func restore<Model: ParameterCollection, Opt: Optimizer>(model: inout Model, optimizer: inout Opt) throws {
        let saved = tensors(under: "model")
        let names = model.namedTensors
        for (name, current) in names {
            guard let t = saved[name] else { throw CheckpointError.incompatible(detail: "parameter '\(name)' is not in the checkpoint") }
            guard t.shape == current.shape, t.dtype == current.dtype else {
                throw CheckpointError.incompatible(detail: "parameter '\(name)' is \(current.valueType) in the model and \(t.valueType) in the checkpoint")
            }
        }
        if let extra = Set(saved.keys).subtracting(names.map(\.name)).sorted().first {
            throw CheckpointError.incompatible(detail: "the checkpoint has parameter '\(extra)', which the model does not")
        }
        guard manifest.optimizer == optimizer.configuration else {
            throw CheckpointError.incompatible(detail: "the checkpoint was saved with \(manifest.optimizer.map { "\($0)" } ?? "no optimizer"), the optimizer now is \(optimizer.configuration)")
        }
        var restored = optimizer
        try restored.restore(state: tensors(under: "optimizer"), step: manifest.step)
        model = model.replacingTensors(with: names.map { saved[$0.name]! })
        optimizer = restored
    }

    // MARK: Encoding

    static let manifestKey = "adjoint.manifest", checksumKey = "adjoint.checksum"

    /// The file's bytes.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let manifestText = String(decoding: try encoder.encode(manifest), as: UTF8.self)
        let checksum = Checkpoint.checksum(manifestText: manifestText, tensors: tensors)
        return try SafeTensors.encode(tensors, metadata: [Checkpoint.manifestKey: manifestText, Checkpoint.checksumKey: checksum])
    }

    /// Parses and verifies a checkpoint file's bytes; `path` names it in errors.
    ///
    /// - Throws: `PersistenceError` for a file that is not valid safetensors (truncated, bad header);
    ///   ``CheckpointError`` for a missing or malformed manifest, a newer format version, a checksum
    ///   mismatch, or a tensor table that disagrees with the file.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> Checkpoint {
        let (tensors, metadata) = try SafeTensors.decode(bytes, path: path)
        guard let text = metadata[manifestKey] else {
            throw CheckpointError.notACheckpoint(path: path, detail: "the safetensors metadata has no '\(manifestKey)' entry")
        }
        struct Header: Decodable { var format: String; var formatVersion: Int }
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(text.utf8)), header.format == CheckpointManifest.formatName else {
            throw CheckpointError.notACheckpoint(path: path, detail: "'\(manifestKey)' is not a manifest of format '\(CheckpointManifest.formatName)'")
        }
        guard header.formatVersion <= CheckpointManifest.currentVersion else {
            throw CheckpointError.unsupportedVersion(path: path, found: header.formatVersion, supported: CheckpointManifest.currentVersion)
        }
        let computed = checksum(manifestText: text, tensors: tensors)
        guard let stored = metadata[checksumKey] else { throw CheckpointError.notACheckpoint(path: path, detail: "no '\(checksumKey)' entry") }
        guard stored == computed else { throw CheckpointError.checksumMismatch(path: path, stored: stored, computed: computed) }
        let manifest: CheckpointManifest
        do { manifest = try JSONDecoder().decode(CheckpointManifest.self, from: Data(text.utf8)) } catch {
            throw CheckpointError.notACheckpoint(path: path, detail: "the manifest does not decode: \(error)")
        }
        let table = tensors.mapValues { CheckpointManifest.TensorRecord(dtype: SafeTensors.code(for: $0.dtype) ?? "", shape: $0.shape) }
        guard table == manifest.tensors else {
            let names = Set(table.keys).symmetricDifference(manifest.tensors.keys).sorted()
            let first = names.first ?? table.keys.sorted().first { table[$0] != manifest.tensors[$0] } ?? ""
            throw CheckpointError.manifestMismatch(path: path, detail: "tensor '\(first)' is listed as \(manifest.tensors[first].map { "\($0.dtype) \($0.shape)" } ?? "absent") and stored as \(table[first].map { "\($0.dtype) \($0.shape)" } ?? "absent")")
        }
        return Checkpoint(manifest: manifest, tensors: tensors)
    }

    private init(manifest: CheckpointManifest, tensors: [String: Tensor]) {
        self.manifest = manifest
        self.tensors = tensors
    }

    /// Writes the checkpoint to `path` atomically (temporary file, fsync, rename, directory fsync).
    public func write(to path: String) throws { try AtomicFile.write(encoded(), to: path) }

    /// Reads and verifies a checkpoint file.
    public static func read(_ path: String) throws -> Checkpoint { try decode(AtomicFile.read(path), path: path) }

    /// `crc32c:XXXXXXXX` over the manifest text, then each tensor's name and bytes in name order.
    static func checksum(manifestText: String, tensors: [String: Tensor]) -> String {
        CRC32C.digest(text: manifestText, tensors: tensors)
    }
}
