import AdjointTensor
import Foundation

/// The persistent event-log backends, by name.
public enum EventLogBackend: String, CaseIterable, Sendable {
    case file, sqlite

    /// The backend an existing file was written by (SQLite's header or the event-log magic), or
    /// `nil` when the file does not exist or is empty.
    public static func detect(path: String) -> EventLogBackend? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        if head.isEmpty { return nil }
        return head.starts(with: Array("SQLite format 3".utf8)) ? .sqlite : .file
    }

    /// Opens the existing log at `path` for reading only, with the backend its header names:
    /// nothing is created, written, cut or locked.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when there is no such file (or it is
    ///   empty); the errors of ``FileEventLog/init(readingAt:extent:)`` and ``SQLiteEventLog/init(readingAt:)``.
    public static func openForReading(path: String, extent: FileEventLog.Extent = .allValidRecords) throws -> any EventLog {
        switch detect(path: path) {
        case .file: return try FileEventLog(readingAt: path, extent: extent)
        case .sqlite: return try SQLiteEventLog(readingAt: path)
        case nil:
            let detail = FileManager.default.fileExists(atPath: path) ? "the file is empty" : "no such file"
            throw EventLogError.io(path: path, operation: "open for reading", detail: detail)
        }
    }

    /// Opens a log of this backend.
    public func open(path: String, fsync: FsyncPolicy = .everyRecord) throws -> any EventLog {
        switch self {
        case .file: return try FileEventLog(path: path, fsync: fsync)
        case .sqlite: return try SQLiteEventLog(path: path, fsync: fsync)
        }
    }
}
