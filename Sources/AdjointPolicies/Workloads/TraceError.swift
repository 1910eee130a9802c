/// A trace that cannot be read: names the file and where.
public enum TraceError: Error, Equatable, CustomStringConvertible {
    /// The file cannot be opened or read.
    case io(path: String, detail: String)
    /// The file ends inside a record (`record` is the 0-based index of the incomplete one).
    case truncated(path: String, record: Int, offset: Int, detail: String)
    /// A record or line does not parse.
    case malformed(path: String, record: Int, offset: Int, detail: String)
    /// The compressed stream is damaged.
    case decompression(path: String, offset: Int, detail: String)
    /// Options that do not fit the file (a column that does not exist, an unknown format).
    case invalidOptions(path: String, detail: String)
    /// The trace holds no request (a miss ratio over it would mean nothing).
    case empty(path: String)

    public var description: String {
        switch self {
        case let .io(path, detail): return "\(path): \(detail)"
        case let .truncated(path, record, offset, detail): return "\(path): truncated at record \(record) (byte \(offset)): \(detail)"
        case let .malformed(path, record, offset, detail): return "\(path): record \(record) (byte \(offset)): \(detail)"
        case let .decompression(path, offset, detail): return "\(path): compressed data damaged near byte \(offset) of the file: \(detail)"
        case let .invalidOptions(path, detail): return "\(path): \(detail)"
        case let .empty(path): return "\(path): the trace holds no requests"
        }
    }
}
