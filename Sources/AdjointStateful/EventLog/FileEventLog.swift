import AdjointTensor
import Foundation
import AdjointIO
#if canImport(Glibc)
import Glibc
#endif

/// An event log in one file: a 16-byte header (`ADJLOG` magic, format version), then records of
/// `[u32 length][u32 CRC-32C of the payload][payload = Event.encoded()]`, little-endian.
///
/// Opening scans the whole file and sorts its bytes into valid records, **damaged ranges** (bytes
/// that are no valid record but are followed by valid records: a flipped bit, an overwritten block)
/// and a **torn tail** (bytes after the last valid record: a record a crash cut short). The result
/// is ``recovery``.
///
/// - Opened for writing (``init(path:fsync:recovery:)``), a torn tail is cut off (under
///   ``Recovery/truncate``, the default) so appends continue after the last valid record; a damaged
///   range is never cut: opening throws ``EventLogError/damaged(path:ranges:)`` and the file is left
///   as it is. ``salvage(_:to:)`` copies the valid records into a new file.
/// - Opened for reading (``init(readingAt:extent:)``), nothing is written, created or locked: the
///   log shows every valid record (or, with ``Extent/validPrefix``, those before the first damage).
///
/// One writer at a time: a writer locks the file (`flock`), so a second writer gets an error
/// instead of interleaving records. Not thread-safe; use it from one thread.
public final class FileEventLog: EventLog {
    public enum Recovery: Sendable { case truncate, refuse }
    /// Which records a log opened for reading shows.
    public enum Extent: Sendable { case allValidRecords, validPrefix }

    public let path: String
    public let fsync: FsyncPolicy
    /// What opening found: valid records, damaged ranges, the torn tail.
    public private(set) var recovery: EventLogRecovery
    /// Whether this log was opened for reading (appends throw ``EventLogError/readOnly(path:)``).
    public let isReadOnly: Bool

    static let magic: [UInt8] = Array("ADJLOG\0\0".utf8)
    /// The format version this build writes and the newest it reads.
    public static let formatVersion: UInt32 = 1
    static let headerSize = 16
    /// The 16 bytes every log starts with: magic, format version, 4 reserved bytes.
    static var header: [UInt8] { magic + withUnsafeBytes(of: formatVersion.littleEndian, Array.init) + [0, 0, 0, 0] }
    /// The smallest payload an event encodes to (kind, step, name length, value count, data length).
    static let minimumPayload = 19

    private var fd: Int32
    private var offsets: [Int] = []      // byte offset of each visible record
    private var end: Int                 // offset after the last visible record
    private var appendsSinceSync = 0

    /// Opens `path` for appending, creating it (with its header, durably) when missing.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when the file cannot be opened,
    ///   locked (another process has it open) or read; ``EventLogError/notAnEventLog(path:detail:)``
    ///   for a file with another header or a newer version; ``EventLogError/damaged(path:ranges:)``
    ///   when valid records follow a damaged range (nothing is cut); ``EventLogError/corruptTail(path:offset:detail:)``
    ///   for a torn tail under ``Recovery/refuse``.
    public init(path: String, fsync: FsyncPolicy = .everyRecord, recovery mode: Recovery = .truncate) throws {
        self.path = path
        self.fsync = fsync
        isReadOnly = false
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure(path, "open") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = Self.failure(path, "lock (is another process writing this log?)")
            Glibc.close(fd)
            throw error
        }
        do {
            let size = try Self.size(fd, path: path)
            if size == 0 {
                try Self.writeAll(fd, Self.header, at: 0, path: path)
                guard Glibc.fsync(fd) == 0 else { throw Self.failure(path, "fsync") }
                try Self.syncDirectory(of: path)
                end = Self.headerSize
                recovery = EventLogRecovery(records: 0, validBytes: end, discardedBytes: 0, reason: "")
            } else {
                (offsets, end, recovery) = try Self.scan(fd, size: size, path: path)
                guard recovery.damaged.isEmpty else { throw EventLogError.damaged(path: path, ranges: recovery.damaged) }
                if recovery.discardedBytes > 0 {
                    if mode == .refuse { throw EventLogError.corruptTail(path: path, offset: recovery.validBytes, detail: recovery.reason) }
                    guard ftruncate(fd, off_t(end)) == 0 else { throw Self.failure(path, "truncate the torn tail") }
                    guard Glibc.fsync(fd) == 0 else { throw Self.failure(path, "fsync") }
                }
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Opens an existing log for reading only: the file is opened `O_RDONLY`, never locked, cut or
    /// created, so a log being written by another process, or on a read-only file system, can be read.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when the file does not exist or cannot
    ///   be read; ``EventLogError/notAnEventLog(path:detail:)`` for another header or a newer version.
    public init(readingAt path: String, extent: Extent = .allValidRecords) throws {
        self.path = path
        fsync = .never
        isReadOnly = true
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure(path, "open for reading") }
        do {
            let size = try Self.size(fd, path: path)
            (offsets, end, recovery) = try Self.scan(fd, size: size, path: path)
            if extent == .validPrefix, let first = recovery.damaged.first {
                offsets.removeSubrange(first.recordsBefore...)
                end = first.offset
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Copies the valid records of the log at `source` (read only, never modified) into a new log
    /// at `destination`, written atomically (a temporary file renamed into place). Returns what the
    /// scan of `source` found.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when `destination` exists (it is never
    ///   overwritten) or cannot be written; the errors of ``init(readingAt:extent:)``.
    @discardableResult
    public static func salvage(_ source: String, to destination: String) throws -> EventLogRecovery {
        guard !FileManager.default.fileExists(atPath: destination) else {
            throw EventLogError.io(path: destination, operation: "salvage", detail: "the destination exists; choose a new path")
        }
        let log = try FileEventLog(readingAt: source)
        defer { try? log.close() }
        do {
            try AtomicFile.write(to: destination) { write in
                try write(header)
                var i = 0
                while i < log.offsets.count {     // in batches, so memory stays bounded by the batch
                    let upper = Swift.min(i + 4096, log.offsets.count)
                    var bytes: [UInt8] = []
                    for k in i..<upper {
                        let length = try log.recordLength(at: log.offsets[k])
                        bytes += try readAll(log.fd, count: 8 + length, at: log.offsets[k], path: source)
                    }
                    try write(bytes)
                    i = upper
                }
            }
        } catch let error as PersistenceError {
            throw EventLogError.io(path: destination, operation: "salvage", detail: "\(error)")
        }
        return log.recovery
    }

    deinit { if fd >= 0 { Glibc.close(fd) } }

    public var count: Int { offsets.count }

    public func append(_ event: Event) throws -> Int {
        try append(contentsOf: [event]).lowerBound
    }

    /// All records in one write and, under `.everyRecord` (or when an `.every(n)` boundary falls
    /// inside the batch), one sync.
    public func append(contentsOf events: [Event]) throws -> Range<Int> {
        guard fd >= 0 else { throw EventLogError.closed(path: path) }
        guard !isReadOnly else { throw EventLogError.readOnly(path: path) }
        var bytes: [UInt8] = []
        var starts: [Int] = []
        for event in events {
            let payload = event.encoded()
            starts.append(end + bytes.count)
            withUnsafeBytes(of: UInt32(payload.count).littleEndian) { bytes += $0 }
            withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian) { bytes += $0 }
            bytes += payload
        }
        do { try Self.writeAll(fd, bytes, at: end, path: path) } catch {
            _ = ftruncate(fd, off_t(end))   // do not leave half a record behind
            throw error
        }
        let first = offsets.count
        offsets += starts
        end += bytes.count
        appendsSinceSync += events.count
        if (first..<offsets.count).contains(where: { fsync.syncs(afterAppend: $0 + 1) }) { try sync() }
        return first..<offsets.count
    }

    public func sync() throws {
        guard fd >= 0 else { throw EventLogError.closed(path: path) }
        guard appendsSinceSync > 0 else { return }
        guard fdatasync(fd) == 0 else { throw Self.failure(path, "fdatasync") }
        appendsSinceSync = 0
    }

    public func events(_ range: Range<Int>) throws -> [Event] {
        guard fd >= 0 else { throw EventLogError.closed(path: path) }
        let r = range.clamped(to: 0..<offsets.count)
        guard !r.isEmpty else { return [] }
        let start = offsets[r.lowerBound], stop = r.upperBound < offsets.count ? offsets[r.upperBound] : end
        let bytes = try Self.readAll(fd, count: stop - start, at: start, path: path)
        return try r.map { i in
            let base = offsets[i] - start
            let length = bytes[base..<(base + 4)].withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
            return try Event.decode(bytes[(base + 8)..<(base + 8 + length)], context: "\(path) record \(i)")
        }
    }

    public func close() throws {
        guard fd >= 0 else { return }
        defer { Glibc.close(fd); fd = -1 }
        try sync()
    }

    // MARK: Scanning

    private func recordLength(at offset: Int) throws -> Int {
        let header = try Self.readAll(fd, count: 4, at: offset, path: path)
        return header.withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
    }

    /// Reads the header and every record. Where a record fails (cut short, checksum, parse), the
    /// scan looks for the next offset where a valid record starts: found, the bytes between are a
    /// damaged range; not found, they are the torn tail.
    static func scan(_ fd: Int32, size: Int, path: String) throws -> ([Int], Int, EventLogRecovery) {
        guard size >= headerSize else {
            throw EventLogError.notAnEventLog(path: path, detail: "\(size) bytes, shorter than the \(headerSize)-byte header")
        }
        let header = try readAll(fd, count: headerSize, at: 0, path: path)
        guard Array(header[0..<8]) == magic else { throw EventLogError.notAnEventLog(path: path, detail: "the file does not start with the ADJLOG magic") }
        let version = header[8..<12].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        guard version <= formatVersion else {
            throw EventLogError.notAnEventLog(path: path, detail: "format version \(version) is newer than this build reads (\(formatVersion))")
        }
        var reader = WindowReader(fd: fd, size: size, path: path)
        var offsets: [Int] = []
        var damaged: [EventLogDamage] = []
        var position = headerSize, end = headerSize
        while position < size {
            let length: Int
            switch try reader.record(at: position, index: offsets.count) {
            case let .valid(n): length = n
            case let .invalid(reason):
                var next = position + 1
                while next < size, case .invalid = try reader.record(at: next, index: offsets.count, resynchronizing: true) { next += 1 }
                guard next < size else {
                    return (offsets, end, EventLogRecovery(records: offsets.count, validBytes: damaged.first?.offset ?? end,
                                                           discardedBytes: size - position, reason: reason, tailOffset: position, damaged: damaged))
                }
                damaged.append(EventLogDamage(offset: position, length: next - position, recordsBefore: offsets.count, reason: reason))
                position = next
                continue
            }
            offsets.append(position)
            position += 8 + length
            end = position
        }
        return (offsets, end, EventLogRecovery(records: offsets.count, validBytes: damaged.first?.offset ?? end,
                                               discardedBytes: 0, reason: "", tailOffset: size, damaged: damaged))
    }

    /// Reads a file through a 1 MiB window, for the scan.
    struct WindowReader {
        let fd: Int32, size: Int, path: String
        var buffer: [UInt8] = [], bufferStart = 0

        enum Outcome { case valid(length: Int), invalid(String) }

        /// Whether bytes `[offset, offset + n)` exist; when they do, they are in the buffer.
        mutating func ensure(_ n: Int, at offset: Int) throws -> Bool {
            if offset >= bufferStart, offset + n <= bufferStart + buffer.count { return true }
            guard n <= size - offset else { return false }
            bufferStart = offset
            buffer = try readAll(fd, count: Swift.min(size - offset, Swift.max(n, 1 << 20)), at: offset, path: path)
            return true
        }

        /// Whether a valid record starts at `offset`. While resynchronizing, cheap checks (a
        /// payload long enough for an event, a known event kind) come before the checksum.
        mutating func record(at offset: Int, index: Int, resynchronizing: Bool = false) throws -> Outcome {
            guard try ensure(8, at: offset) else { return .invalid("a record header cut short (\(size - offset) of 8 bytes)") }
            let b = offset - bufferStart
            let length = buffer[b..<(b + 4)].withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
            let stored = buffer[(b + 4)..<(b + 8)].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            if resynchronizing {
                guard length >= minimumPayload, length <= size - offset - 8, try ensure(9, at: offset),
                      Event.Kind(rawValue: buffer[offset - bufferStart + 8]) != nil else { return .invalid("") }
            }
            guard try ensure(8 + length, at: offset) else {
                return .invalid("record \(index) declares \(length) bytes, \(size - offset - 8) remain")
            }
            let p = offset - bufferStart + 8
            let payload = buffer[p..<(p + length)]
            let computed = CRC32C.checksum(payload)
            guard computed == stored else {
                return .invalid("record \(index) fails its checksum (stored \(hex(stored)), computed \(hex(computed)))")
            }
            do { _ = try Event.decode(payload, context: "\(path) record \(index)") } catch {
                return .invalid("record \(index) does not parse: \(error)")
            }
            return .valid(length: length)
        }
    }

    // MARK: System calls

    static func size(_ fd: Int32, path: String) throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw failure(path, "stat") }
        return Int(info.st_size)
    }

    static func failure(_ path: String, _ operation: String) -> EventLogError {
        .io(path: path, operation: operation, detail: String(cString: strerror(errno)) + " (errno \(errno))")
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int, path: String) throws {
        var done = 0
        try bytes.withUnsafeBytes { raw in
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw failure(path, "write") }
                done += n
            }
        }
    }

    static func readAll(_ fd: Int32, count: Int, at offset: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        try out.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw failure(path, "read") }
                if n == 0 { throw EventLogError.io(path: path, operation: "read", detail: "the file ended at byte \(offset + done), expected \(offset + count)") }
                done += n
            }
        }
        return out
    }

    static func syncDirectory(of path: String) throws {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw failure(directory, "open directory") }
        defer { Glibc.close(dfd) }
        guard Glibc.fsync(dfd) == 0 else { throw failure(directory, "fsync directory") }
    }
}

func hex(_ value: UInt32) -> String { String(format: "%08x", value) }
