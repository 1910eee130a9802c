/// Why a distributed operation failed. Every collective either completes on every rank or fails
/// with one of these on every rank that reached it; none hangs past its timeout.
public enum DistributedError: Error, Equatable, CustomStringConvertible {
    /// An MPI call returned an error code.
    case mpi(function: String, code: Int32, message: String)
    /// The ranks called a collective with different arguments: `field` (collective order,
    /// collective, dtype, shape, root or operator) took `values` (one per rank, in rank order).
    /// Detected before any data moves.
    case mismatch(collective: String, field: String, values: [String])
    /// A collective did not complete within `seconds`: a rank is dead, stuck, or calling something
    /// else. The communicator is unusable afterwards (the collective cannot be cancelled).
    case timeout(collective: String, sequence: Int64, seconds: Double)
    /// A collective was called after an earlier one timed out or MPI was finalized.
    case communicatorUnusable(reason: String)
    /// The tensor's dtype has no MPI counterpart here, or the operation is not defined for it.
    case unsupportedDType(collective: String, dtype: String)
    /// An argument is out of range: `field` was `value`, `limit` says what is allowed.
    case invalidArgument(field: String, value: String, limit: String)
    /// Contributions to a reproducible sum that cannot be summed together.
    case invalidContributions(detail: String)

    public var description: String {
        switch self {
        case let .mpi(function, code, message):
            return "\(function) failed with MPI error \(code): \(message)"
        case let .mismatch(collective, field, values):
            return "\(collective): the ranks disagree on \(field): " + values.enumerated().map { "rank \($0.offset) \($0.element)" }.joined(separator: ", ")
        case let .timeout(collective, sequence, seconds):
            return "\(collective) (collective #\(sequence)) did not complete within \(seconds) s: a rank is dead, stuck or in another collective; the communicator is unusable"
        case let .communicatorUnusable(reason):
            return "the communicator is unusable: \(reason)"
        case let .unsupportedDType(collective, dtype):
            return "\(collective) does not take \(dtype) tensors"
        case let .invalidArgument(field, value, limit):
            return "\(field) is \(value); \(limit)"
        case let .invalidContributions(detail):
            return "reproducible sum: \(detail)"
        }
    }
}
