import AdjointTensor
import Foundation
import AdjointIO
#if canImport(Glibc)
import Glibc
#endif

/// A directory of checkpoints, `checkpoint-<step>.safetensors`, keeping the newest few.
///
/// A save writes the new file atomically and only then deletes checkpoints beyond ``keep``, so a
/// kill at any moment leaves at least the previous good checkpoint. Temporary files left by a
/// killed writer are removed when a store is opened (those of a live process are left alone).
public struct CheckpointStore {
    public let directory: String
    /// Checkpoints kept after a save (≥ 1).
    public let keep: Int

    /// A checkpoint read back from the store, with the newer files that failed verification.
    public struct Loaded {
        public var checkpoint: Checkpoint
        public var path: String
        /// Newer checkpoint files that could not be loaded, newest first, with the reason.
        public var rejected: [(path: String, error: Error)]
    }

    /// Opens the store at `directory`. Nothing is created until the first ``save(_:)``, which
    /// creates the directory itself (its parent must exist); a store whose directory does not exist
    /// yet is empty.
    ///
    /// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` for `keep < 1`;
    ///   `PersistenceError.io` when the directory cannot be listed.
    public init(directory: String, keep: Int = 2) throws {
        guard keep >= 1 else { throw TrainingError.invalidOption(name: "checkpoints kept", value: "\(keep)", expected: "at least 1") }
        self.directory = directory
        self.keep = keep
        for name in try listing() where name.contains(".tmp-") {
            if let pid = Int32(name.split(separator: "-").last ?? ""), kill(pid, 0) == 0 || errno == EPERM { continue }
            unlink(path(named: name))
        }
    }

    /// The file a checkpoint of `step` is stored in.
    public func path(step: Int) -> String { path(named: String(format: "checkpoint-%010d.safetensors", step)) }

    /// Steps of the checkpoints present, ascending.
    public func steps() throws -> [Int] {
        try listing().compactMap { name -> Int? in
            guard name.hasPrefix("checkpoint-"), name.hasSuffix(".safetensors") else { return nil }
            return Int(name.dropFirst("checkpoint-".count).dropLast(".safetensors".count))
        }.sorted()
    }

    /// Saves `checkpoint` as the one of its step, then removes all but the newest ``keep``.
    @discardableResult
    public func save(_ checkpoint: Checkpoint) throws -> String {
        try createDirectory()
        let file = path(step: checkpoint.manifest.step)
        try checkpoint.write(to: file)
        for old in try steps().dropLast(keep) { unlink(path(step: old)) }
        return file
    }

    /// Creates the store's directory when it does not exist (not its parent: a missing parent is an
    /// error, so a mistyped path does not become a tree of directories).
    public func createDirectory() throws {
        if mkdir(directory, 0o755) != 0, errno != EEXIST {
            let code = errno
            throw PersistenceError.io(path: directory, operation: "create the checkpoint directory", errno: code, message: String(cString: strerror(code)))
        }
    }

    /// The newest checkpoint that loads and verifies, or `nil` when the store is empty. Damaged newer
    /// files are reported in ``Loaded/rejected``, not skipped silently; when no file loads, the
    /// newest one's error is thrown.
    public func latest() throws -> Loaded? {
        var rejected: [(path: String, error: Error)] = []
        for step in try steps().reversed() {
            let file = path(step: step)
            do { return Loaded(checkpoint: try Checkpoint.read(file), path: file, rejected: rejected) } catch {
                rejected.append((file, error))
            }
        }
        if let newest = rejected.first { throw newest.error }   // files exist, none loads
        return nil
    }

    private func path(named name: String) -> String { (directory as NSString).appendingPathComponent(name) }

    private func listing() throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) else { return [] }
        do { return try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw PersistenceError.io(path: directory, operation: "list directory", errno: ENOENT, message: "\(error.localizedDescription)")
        }
    }
}
