import AdjointTensor

/// An append-only record of a running system's events, numbered from 0 in append order.
///
/// Backends: ``MemoryEventLog`` (tests, short runs), ``FileEventLog`` (length-prefixed records
/// with CRC-32C, torn tails recovered) and ``SQLiteEventLog`` (SQLite through GRDB in WAL mode: the
/// durable embedded default). Under ``FsyncPolicy/everyRecord``, an `append` that has returned is
/// on disk: a crash, even SIGKILL or power loss, does not lose it.
public protocol EventLog: AnyObject {
    /// Appends `event`; returns its sequence number. Durable on return under `.everyRecord`.
    @discardableResult
    func append(_ event: Event) throws -> Int
    /// Makes every appended event durable now, whatever the policy.
    func sync() throws
    /// Events in the log.
    var count: Int { get }
    /// Events `range` (clamped to the log), in order.
    func events(_ range: Range<Int>) throws -> [Event]
    /// Syncs and releases the log's resources; later calls throw `EventLogError.closed`.
    func close() throws
    /// Appends `events` in order as one unit of durability: under ``FsyncPolicy/everyRecord`` they
    /// are all on disk when it returns, after one sync instead of one per record. A crash during the
    /// call may keep a prefix of them. Returns their sequence numbers.
    @discardableResult
    func append(contentsOf events: [Event]) throws -> Range<Int>
}

extension EventLog {
    /// One `append` per event (backends with a cheaper batch override this).
    public func append(contentsOf events: [Event]) throws -> Range<Int> {
        let start = count
        for e in events { try append(e) }
        return start..<count
    }

    /// Every event, in order.
    public func allEvents() throws -> [Event] { try events(0..<count) }
}

/// When appends reach the disk.
public enum FsyncPolicy: Equatable, Sendable, CustomStringConvertible {
    /// Every append is durable when it returns.
    case everyRecord
    /// Every `n`-th append syncs (and ``EventLog/sync()``); a crash loses at most the `n − 1`
    /// appends since the last sync.
    case every(Int)
    /// Only ``EventLog/sync()`` and ``EventLog/close()`` sync; a crash loses what the OS had not written.
    case never

    public var description: String {
        switch self {
        case .everyRecord: return "every"
        case let .every(n): return "\(n)"
        case .never: return "never"
        }
    }

    /// Parses `every`, `never` or a count.
    public init?(_ text: String) {
        switch text {
        case "every", "everyRecord": self = .everyRecord
        case "never": self = .never
        default:
            guard let n = Int(text), n >= 1 else { return nil }
            self = n == 1 ? .everyRecord : .every(n)
        }
    }

    /// Whether the append with this 1-based count must sync.
    func syncs(afterAppend count: Int) -> Bool {
        switch self {
        case .everyRecord: return true
        case let .every(n): return count % n == 0
        case .never: return false
        }
    }
}

/// What opening a file log found: its valid records, damaged ranges and torn tail.
public struct EventLogRecovery: Equatable, Sendable, CustomStringConvertible {
    /// Valid records in the file (damaged ranges skipped).
    public var records: Int
    /// Byte offset where the valid prefix ends: the first damaged range, else the torn tail, else
    /// the end of the file. A writer's file is cut back to it when only a torn tail follows.
    public var validBytes: Int
    /// Bytes of the torn tail: after the last valid record, no valid record after them (0 when none).
    public var discardedBytes: Int
    /// Why the tail is not a record (empty when there is none).
    public var reason: String
    /// Where the torn tail starts (the file's length when there is none).
    public var tailOffset: Int
    /// Damaged ranges: bytes that are no valid record, with valid records after them.
    public var damaged: [EventLogDamage]

    public init(records: Int, validBytes: Int, discardedBytes: Int, reason: String, tailOffset: Int? = nil, damaged: [EventLogDamage] = []) {
        self.records = records
        self.tailOffset = tailOffset ?? validBytes
        self.validBytes = validBytes
        self.discardedBytes = discardedBytes
        self.reason = reason
        self.damaged = damaged
    }

    /// No damaged range and no torn tail.
    public var isClean: Bool { discardedBytes == 0 && damaged.isEmpty }
    /// Valid records before the first damaged range (all of them when there is none).
    public var prefixRecords: Int { damaged.first?.recordsBefore ?? records }

    public var description: String {
        var parts = ["\(records) records"]
        parts += damaged.map { "damaged: \($0)" }
        if discardedBytes > 0 { parts.append("torn tail of \(discardedBytes) bytes at offset \(tailOffset): \(reason)") }
        if !damaged.isEmpty { parts.append("\(prefixRecords) records before the first damage") }
        return isClean ? "\(records) records, clean" : parts.joined(separator: "; ")
    }
}

/// A byte range of a file log that holds no valid record but is followed by valid records.
public struct EventLogDamage: Equatable, Sendable, CustomStringConvertible {
    /// First byte of the range.
    public var offset: Int
    /// Bytes in the range.
    public var length: Int
    /// Valid records before it.
    public var recordsBefore: Int
    /// Why the record at `offset` is not valid.
    public var reason: String

    public init(offset: Int, length: Int, recordsBefore: Int, reason: String) {
        self.offset = offset
        self.length = length
        self.recordsBefore = recordsBefore
        self.reason = reason
    }

    public var description: String { "bytes \(offset)..<\(offset + length) after \(recordsBefore) valid records (\(reason))" }
}

/// Errors of event logs.
public enum EventLogError: Error, Equatable, CustomStringConvertible {
    /// A file or database operation failed.
    case io(path: String, operation: String, detail: String)
    /// The file does not start with the event-log header (not a log, or a newer format).
    case notAnEventLog(path: String, detail: String)
    /// Opened with ``FileEventLog/Recovery/refuse`` and the tail is torn or corrupt.
    case corruptTail(path: String, offset: Int, detail: String)
    /// A record's bytes do not parse as an event.
    case malformedRecord(context: String, detail: String)
    /// The log was closed.
    case closed(path: String)
    /// A replay found the log inconsistent with the system replayed from it.
    case replayMismatch(step: Int, detail: String)
    /// Valid records follow damaged bytes: the log is not opened for writing and never cut.
    case damaged(path: String, ranges: [EventLogDamage])
    /// The log was opened for reading.
    case readOnly(path: String)

    public var description: String {
        switch self {
        case let .io(path, operation, detail): return "\(path): \(operation) failed: \(detail)"
        case let .notAnEventLog(path, detail): return "\(path): not an Adjoint event log: \(detail)"
        case let .corruptTail(path, offset, detail): return "\(path): torn or corrupt record at byte \(offset): \(detail)"
        case let .malformedRecord(context, detail): return "\(context): malformed record: \(detail)"
        case let .closed(path): return "\(path): the event log is closed"
        case let .replayMismatch(step, detail): return "replay diverged from the log at step \(step): \(detail)"
        case let .damaged(path, ranges):
            return "\(path): damaged: " + ranges.map(\.description).joined(separator: "; ")
                + ". Valid records follow, so nothing was cut; `adjoint log inspect --salvage NEW` copies the valid records into a new log"
        case let .readOnly(path): return "\(path): the event log is open for reading only"
        }
    }
}

/// An in-memory log: fast, lost with the process.
public final class MemoryEventLog: EventLog {
    private var storage: [Event] = []
    private var isClosed = false

    public init(_ events: [Event] = []) { storage = events }

    public func append(_ event: Event) throws -> Int {
        guard !isClosed else { throw EventLogError.closed(path: "<memory>") }
        storage.append(event)
        return storage.count - 1
    }

    public func sync() throws {}
    public var count: Int { storage.count }

    public func events(_ range: Range<Int>) throws -> [Event] {
        guard !isClosed else { throw EventLogError.closed(path: "<memory>") }
        return Array(storage[range.clamped(to: 0..<storage.count)])
    }

    public func close() throws { isClosed = true }
}
