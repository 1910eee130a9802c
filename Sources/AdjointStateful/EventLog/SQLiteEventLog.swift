import AdjointTensor
import Foundation
import GRDB

/// An event log in an SQLite database (through GRDB), in WAL mode: the durable embedded default.
///
/// One table, `events(seq INTEGER PRIMARY KEY, kind, step, name, body BLOB)`, where `body` is
/// ``Event/encoded()`` and the other columns are there for queries (`SELECT … WHERE step BETWEEN …`).
/// SQLite's journal makes a crash lose nothing committed and never leave a half-written record;
/// the ``FsyncPolicy`` decides what is committed when:
///
/// | policy | how |
/// |---|---|
/// | `.everyRecord` | `synchronous = FULL`, one transaction per append |
/// | `.every(n)` | `synchronous = FULL`, one transaction per `n` appends (open between them) |
/// | `.never` | `synchronous = OFF`, one transaction per append |
public final class SQLiteEventLog: EventLog {
    public let path: String
    public let fsync: FsyncPolicy
    /// Whether this log was opened for reading (appends throw ``EventLogError/readOnly(path:)``).
    public let isReadOnly: Bool
    private var queue: DatabaseQueue?
    private var rows: Int
    private var pending = 0     // appends in the open transaction (`.every(n)`)

    /// Opens (creating if needed) the database at `path`.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when SQLite cannot open it or it has
    ///   an `events` table of another shape.
    public init(path: String, fsync: FsyncPolicy = .everyRecord) throws {
        self.path = path
        self.fsync = fsync
        isReadOnly = false
        do {
            var configuration = Configuration()
            configuration.allowsUnsafeTransactions = true   // `.every(n)` keeps a transaction open across appends
            let synchronous = fsync == .never ? "OFF" : "FULL"
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = \(synchronous)")
            }
            let queue = try DatabaseQueue(path: path, configuration: configuration)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: """
                    CREATE TABLE IF NOT EXISTS events (
                        seq INTEGER PRIMARY KEY, kind INTEGER NOT NULL, step INTEGER NOT NULL,
                        name TEXT NOT NULL, body BLOB NOT NULL)
                    """)
                try db.execute(sql: "CREATE INDEX IF NOT EXISTS events_step ON events(step)")
            }
            (rows, _) = try Self.verifiedCount(queue, path: path)
            self.queue = queue
        } catch let error as EventLogError {
            throw error
        } catch {
            throw EventLogError.io(path: path, operation: "open", detail: "\(error)")
        }
    }

    /// Opens an existing database for reading only (`SQLITE_OPEN_READONLY`): nothing is created,
    /// written or checkpointed, and appends throw ``EventLogError/readOnly(path:)``.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when the file does not exist, is not
    ///   an SQLite database, or has no `events` table of the expected shape.
    public init(readingAt path: String) throws {
        self.path = path
        fsync = .never
        isReadOnly = true
        guard FileManager.default.fileExists(atPath: path) else {
            throw EventLogError.io(path: path, operation: "open for reading", detail: "no such file")
        }
        do {
            var configuration = Configuration()
            configuration.readonly = true
            // SQLite opens a WAL-mode database read-only by creating its -wal and -shm files when they
            // are missing. A writer that closed cleanly left the database in rollback mode (see
            // `close()`); one in WAL mode without a -wal file has everything in the main file, and
            // is opened as immutable so nothing is created beside it.
            var header = [UInt8](repeating: 0, count: 20)
            if let handle = FileHandle(forReadingAtPath: path) {
                header = Array((try? handle.read(upToCount: 20)) ?? Data())
                try? handle.close()
            }
            let walMode = header.count == 20 && header[18] == 2
            let immutable = walMode && !FileManager.default.fileExists(atPath: path + "-wal")
            let queue: DatabaseQueue
            if immutable, let uri = URL(fileURLWithPath: path).absoluteURL.path.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) {
                queue = try DatabaseQueue(path: "file:\(uri)?immutable=1", configuration: configuration)
            } else {
                queue = try DatabaseQueue(path: path, configuration: configuration)
            }
            (rows, _) = try Self.verifiedCount(queue, path: path)
            self.queue = queue
        } catch let error as EventLogError {
            throw error
        } catch {
            throw EventLogError.io(path: path, operation: "open for reading", detail: "\(error)")
        }
    }

    /// The row count, checked to be the sequence numbers `0 ..< count`.
    private static func verifiedCount(_ queue: DatabaseQueue, path: String) throws -> (Int, Void) {
        try queue.read { db in
            guard try db.tableExists("events") else {
                throw EventLogError.io(path: path, operation: "open", detail: "the database has no events table; it is not an Adjoint event log")
            }
            let rows = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM events") ?? 0
            let maxSeq = try Int.fetchOne(db, sql: "SELECT MAX(seq) FROM events")
            guard (maxSeq ?? -1) == rows - 1 else {
                throw EventLogError.io(path: path, operation: "open", detail: "sequence numbers are not 0 ..< \(rows) (max \(maxSeq ?? -1))")
            }
            return (rows, ())
        }
    }

    public var count: Int { rows }

    public func append(_ event: Event) throws -> Int {
        guard let queue else { throw EventLogError.closed(path: path) }
        guard !isReadOnly else { throw EventLogError.readOnly(path: path) }
        let seq = rows
        do {
            try queue.writeWithoutTransaction { db in
                if case .every = fsync, pending == 0 { try db.execute(sql: "BEGIN IMMEDIATE") }
                try db.execute(sql: "INSERT INTO events (seq, kind, step, name, body) VALUES (?, ?, ?, ?, ?)",
                               arguments: [seq, Int(event.kind.rawValue), event.step, event.name, Data(event.encoded())])
            }
        } catch {
            throw EventLogError.io(path: path, operation: "append", detail: "\(error)")
        }
        rows += 1
        if case .every = fsync {
            pending += 1
            if fsync.syncs(afterAppend: rows) { try sync() }
        }
        return seq
    }

    /// One transaction for the whole batch (one commit, so one sync under `.everyRecord`);
    /// `.every(n)` keeps its rolling transaction.
    public func append(contentsOf events: [Event]) throws -> Range<Int> {
        guard let queue else { throw EventLogError.closed(path: path) }
        guard !isReadOnly else { throw EventLogError.readOnly(path: path) }
        if case .every = fsync {
            let start = rows
            for e in events { _ = try append(e) }
            return start..<rows
        }
        let start = rows
        do {
            try queue.write { db in
                for (i, event) in events.enumerated() {
                    try db.execute(sql: "INSERT INTO events (seq, kind, step, name, body) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [start + i, Int(event.kind.rawValue), event.step, event.name, Data(event.encoded())])
                }
            }
        } catch {
            throw EventLogError.io(path: path, operation: "append", detail: "\(error)")
        }
        rows += events.count
        return start..<rows
    }

    public func sync() throws {
        guard let queue else { throw EventLogError.closed(path: path) }
        guard pending > 0 else { return }
        do { try queue.writeWithoutTransaction { db in try db.execute(sql: "COMMIT") } } catch {
            throw EventLogError.io(path: path, operation: "commit", detail: "\(error)")
        }
        pending = 0
    }

    public func events(_ range: Range<Int>) throws -> [Event] {
        guard let queue else { throw EventLogError.closed(path: path) }
        let r = range.clamped(to: 0..<rows)
        guard !r.isEmpty else { return [] }
        do {
            return try queue.writeWithoutTransaction { db in   // the writer's connection sees its open transaction
                let bodies = try Data.fetchAll(db, sql: "SELECT body FROM events WHERE seq >= ? AND seq < ? ORDER BY seq",
                                               arguments: [r.lowerBound, r.upperBound])
                return try bodies.enumerated().map { i, body in
                    try Event.decode(ArraySlice(body), context: "\(path) event \(r.lowerBound + i)")
                }
            }
        } catch let error as EventLogError {
            throw error
        } catch {
            throw EventLogError.io(path: path, operation: "read", detail: "\(error)")
        }
    }

    /// Commits, then (for a writer) leaves the database in rollback-journal mode, so that no -wal
    /// or -shm file remains and readers open it without creating any.
    public func close() throws {
        guard let queue else { return }
        try sync()
        if !isReadOnly {
            _ = try? queue.writeWithoutTransaction { db in try String.fetchOne(db, sql: "PRAGMA journal_mode = DELETE") }
        }
        do { try queue.close() } catch { throw EventLogError.io(path: path, operation: "close", detail: "\(error)") }
        self.queue = nil
    }
}
