import AdjointTensor
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// An event log in one file: a 16-byte header (`ADJLOG` magic, format version), then records of
/// `[u32 length][u32 CRC-32C of the payload][payload = Event.encoded()]`, little-endian.
///
/// Opening scans the file. A record cut short by a crash (a torn tail) or whose checksum fails
/// ends the valid prefix: with ``Recovery/truncate`` (the default) the file is cut back to it, the
/// loss is reported in ``recovery`` (offset, bytes, why), and appends continue after it; with
/// ``Recovery/refuse`` opening throws ``EventLogError/corruptTail(path:offset:detail:)``.
///
/// One writer at a time: the file is locked (`flock`) while open, so a second process opening it
/// gets an error instead of interleaving records. Not thread-safe; use it from one thread.
public final class FileEventLog: EventLog {
    public enum Recovery: Sendable { case truncate, refuse }

    public let path: String
    public let fsync: FsyncPolicy
    /// What opening found at the end of the file.
    public private(set) var recovery: EventLogRecovery

    static let magic: [UInt8] = Array("ADJLOG\0\0".utf8)
    /// The format version this build writes and the newest it reads.
    public static let formatVersion: UInt32 = 1
    static let headerSize = 16

    private var fd: Int32
    private var offsets: [Int] = []      // byte offset of each record
    private var end: Int                 // offset after the last valid record
    private var appendsSinceSync = 0

    /// Opens `path`, creating it (with its header, durably) when missing.
    ///
    /// - Throws: ``EventLogError/io(path:operation:detail:)`` when the file cannot be opened,
    ///   locked (another process has it open) or read; ``EventLogError/notAnEventLog(path:detail:)``
    ///   for a file with another header or a newer version; ``EventLogError/corruptTail(path:offset:detail:)``
    ///   under ``Recovery/refuse``.
    public init(path: String, fsync: FsyncPolicy = .everyRecord, recovery mode: Recovery = .truncate) throws {
        self.path = path
        self.fsync = fsync
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure(path, "open") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let error = Self.failure(path, "lock (is another process writing this log?)")
            Glibc.close(fd)
            throw error
        }
        do {
            var info = stat()
            guard fstat(fd, &info) == 0 else { throw Self.failure(path, "stat") }
            let size = Int(info.st_size)
            if size == 0 {
                var header = Self.magic
                withUnsafeBytes(of: Self.formatVersion.littleEndian) { header += $0 }
                header += [0, 0, 0, 0]
                try Self.writeAll(fd, header, at: 0, path: path)
                guard Glibc.fsync(fd) == 0 else { throw Self.failure(path, "fsync") }
                try Self.syncDirectory(of: path)
                end = Self.headerSize
                recovery = EventLogRecovery(records: 0, validBytes: end, discardedBytes: 0, reason: "")
            } else {
                (offsets, end, recovery) = try Self.scan(fd, size: size, path: path)
                if !recovery.isClean {
                    if mode == .refuse { throw EventLogError.corruptTail(path: path, offset: recovery.validBytes, detail: recovery.reason) }
                    guard ftruncate(fd, off_t(end)) == 0 else { throw Self.failure(path, "truncate to the valid prefix") }
                    guard Glibc.fsync(fd) == 0 else { throw Self.failure(path, "fsync") }
                }
            }
        } catch {
            Glibc.close(fd)
            throw error
        }
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

    /// Reads the header and every record, stopping at the first torn or corrupt one.
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
        var offsets: [Int] = []
        var position = headerSize
        var buffer: [UInt8] = [], bufferStart = position
        func ensure(_ n: Int, at offset: Int) throws -> Bool {   // bytes [offset, offset+n) in buffer?
            if offset >= bufferStart, offset + n <= bufferStart + buffer.count { return true }
            guard offset + n <= size else { return false }
            bufferStart = offset
            buffer = try readAll(fd, count: Swift.min(size - offset, Swift.max(n, 1 << 20)), at: offset, path: path)
            return true
        }
        func stop(_ reason: String) -> ([Int], Int, EventLogRecovery) {
            (offsets, position, EventLogRecovery(records: offsets.count, validBytes: position, discardedBytes: size - position, reason: reason))
        }
        while position < size {
            guard try ensure(8, at: position) else { return stop("a record header cut short (\(size - position) of 8 bytes)") }
            let b = position - bufferStart
            let length = buffer[b..<(b + 4)].withUnsafeBytes { Int(UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self))) }
            let stored = buffer[(b + 4)..<(b + 8)].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
            guard try ensure(8 + length, at: position) else {
                return stop("record \(offsets.count) declares \(length) bytes, \(size - position - 8) remain")
            }
            let p = position - bufferStart + 8
            let payload = buffer[p..<(p + length)]
            let computed = CRC32C.checksum(payload)
            guard computed == stored else {
                return stop("record \(offsets.count) fails its checksum (stored \(hex(stored)), computed \(hex(computed)))")
            }
            do { _ = try Event.decode(payload, context: "\(path) record \(offsets.count)") } catch {
                return stop("record \(offsets.count) does not parse: \(error)")
            }
            offsets.append(position)
            position += 8 + length
        }
        return stop("")
    }

    // MARK: System calls

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
