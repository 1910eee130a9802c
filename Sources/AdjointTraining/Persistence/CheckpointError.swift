import AdjointTensor
import AdjointIO

/// Errors reading, verifying or restoring training checkpoints. Damage at the byte level (a short
/// file, a bad safetensors header, a failed system call) surfaces as `PersistenceError`.
public enum CheckpointError: Error, Equatable, CustomStringConvertible {
    /// The file is a safetensors file without an Adjoint checkpoint manifest, or the manifest is not
    /// the documented JSON.
    case notACheckpoint(path: String, detail: String)
    /// Written by a newer format version than this build reads.
    case unsupportedVersion(path: String, found: Int, supported: Int)
    /// The stored checksum does not match the file's contents.
    case checksumMismatch(path: String, stored: String, computed: String)
    /// The manifest's tensor table disagrees with the tensors in the file.
    case manifestMismatch(path: String, detail: String)
    /// The checkpoint does not fit what it is being restored into (a parameter missing or of another
    /// shape or dtype, an optimizer configured differently).
    case incompatible(detail: String)

    public var description: String {
        switch self {
        case let .notACheckpoint(path, detail): return "\(path): not an Adjoint checkpoint: \(detail)"
        case let .unsupportedVersion(path, found, supported):
            return "\(path): checkpoint format version \(found) is newer than this build reads (\(supported)); upgrade Adjoint to load it"
        case let .checksumMismatch(path, stored, computed):
            return "\(path): checksum mismatch: the file records \(stored) but its contents hash to \(computed); the file is damaged"
        case let .manifestMismatch(path, detail): return "\(path): manifest and tensors disagree: \(detail)"
        case let .incompatible(detail): return "cannot restore the checkpoint: \(detail)"
        }
    }
}
