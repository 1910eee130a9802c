import Adjoint
import AdjointTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

enum Backend: String, CaseIterable, CustomTestStringConvertible {
    case memory, file, sqlite
    var testDescription: String { rawValue }

    func open(_ path: String, fsync: FsyncPolicy = .everyRecord) throws -> any EventLog {
        switch self {
        case .memory: return MemoryEventLog()
        case .file: return try FileEventLog(path: path, fsync: fsync)
        case .sqlite: return try SQLiteEventLog(path: path, fsync: fsync)
        }
    }
}

@Suite("Event logs")
struct EventLogTests {
    static func sample() throws -> [Event] {
        [Event.input(step: 0, try Tensor.uniform([2, 3], key: RandomKey(seed: 1), dtype: .float32)),
         Event(kind: .external, step: 0, name: "arrival", values: [1.5, -2, .infinity]),
         Event.random(step: 1, name: "noise", key: RandomKey(seed: 9, stream: 4), counter: 77),
         Event.decision(step: 1, name: "evict", choice: 3, options: 8),
         Event.stateHash(step: 2, StateHash(0xDEAD_BEEF_0123_4567)),
         Event(kind: .checkpoint, step: 2, data: [1, 2, 3]),
         Event(kind: .marker, step: -1, name: "ünïcode ✓"),
         Event.input(step: 3, Tensor(Int64(5)))]
    }

    static func path(_ name: String) -> String { (temporaryDirectory("eventlog") as NSString).appendingPathComponent(name) }

    @Test("appends read back equal, typed readers decode, reopening keeps everything", arguments: Backend.allCases)
    func roundTrip(_ backend: Backend) throws {
        let path = Self.path("log")
        let events = try Self.sample()
        let log = try backend.open(path)
        for (i, e) in events.enumerated() { #expect(try log.append(e) == i) }
        #expect(log.count == events.count)
        #expect(try log.allEvents() == events)
        #expect(try log.events(2..<4) == Array(events[2..<4]))
        #expect(try log.events(6..<100).count == 2)
        // A batch: one write (and one sync) for several records, numbered in order.
        #expect(try log.append(contentsOf: Array(events[0..<3])) == events.count..<(events.count + 3))
        #expect(try log.events(events.count..<(events.count + 3)) == Array(events[0..<3]))
        let read = try log.allEvents()
        #expect(bitwiseEqual(try read[0].tensor(), try events[0].tensor()))
        #expect(read[2].randomPosition?.counter == 77 && read[2].randomPosition?.key == RandomKey(seed: 9, stream: 4))
        #expect(read[3].choice == 3 && read[4].hash == StateHash(0xDEAD_BEEF_0123_4567))
        try log.close()
        #expect(throws: EventLogError.self) { try log.append(events[0]) }
        guard backend != .memory else { return }
        let reopened = try backend.open(path)
        #expect(try reopened.allEvents() == events + Array(events[0..<3]))
        #expect(try reopened.append(events[1]) == events.count + 3)
        try reopened.close()
    }

    @Test("every fsync policy keeps every record after close", arguments: Backend.allCases.filter { $0 != .memory },
          [FsyncPolicy.everyRecord, .every(3), .never])
    func policies(_ backend: Backend, _ policy: FsyncPolicy) throws {
        let path = Self.path("log")
        let log = try backend.open(path, fsync: policy)
        for i in 0..<10 { try log.append(Event(kind: .marker, step: i)) }
        #expect(try log.allEvents().map(\.step) == Array(0..<10))   // readable before any sync
        try log.close()
        #expect(try backend.open(path).allEvents().map(\.step) == Array(0..<10))
        #expect(FsyncPolicy("every") == .everyRecord && FsyncPolicy("8") == .every(8) && FsyncPolicy("never") == .never && FsyncPolicy("0") == nil)
    }

    @Test("a torn tail is reported with its offset, cut off, and appends continue after it")
    func tornTail() throws {
        let path = Self.path("log")
        let log = try FileEventLog(path: path)
        for i in 0..<5 { _ = try log.append(Event(kind: .marker, step: i, name: "m")) }
        try log.close()
        let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int
        #expect(truncate(path, off_t(size - 3)) == 0)
        #expect(throws: EventLogError.self) { try FileEventLog(path: path, recovery: .refuse) }
        let recovered = try FileEventLog(path: path)
        #expect(recovered.count == 4 && !recovered.recovery.isClean)
        #expect(recovered.recovery.discardedBytes == size - 3 - recovered.recovery.validBytes)
        #expect(recovered.recovery.reason.contains("record 4 declares"))
        _ = try recovered.append(Event(kind: .marker, step: 99))
        try recovered.close()
        let again = try FileEventLog(path: path)
        #expect(again.recovery.isClean)
        #expect(try again.allEvents().map(\.step) == [0, 1, 2, 3, 99])
    }

    @Test("tensors in records: overflowing shapes and bool bytes other than 0 and 1 are malformed records")
    func hostileTensorRecords() throws {
        func record(_ dtype: String, _ shape: [Int64], _ payload: [UInt8]) -> Event {
            var data = [UInt8(dtype.utf8.count)] + Array(dtype.utf8) + [UInt8(shape.count)]
            for d in shape { withUnsafeBytes(of: d.littleEndian) { data += $0 } }
            return Event(kind: .input, step: 0, data: data + payload)
        }
        #expect { try record("f64", [1 << 39, 1 << 39, 1 << 39], []).tensor() } throws: { "\($0)".contains("overflows") }
        #expect { try record("bool", [2], [1, 2]).tensor() } throws: { "\($0)".contains("bool element 1 is the byte 2") }
        #expect(try record("bool", [2], [1, 0]).tensor().doubles == [1, 0])
    }

    /// Writes `n` external events to a new file log; returns the path and each record's offset.
    static func fileLog(_ name: String, records n: Int) throws -> (String, [Int]) {
        let path = Self.path(name)
        let log = try FileEventLog(path: path)
        var offsets: [Int] = []
        for i in 0..<n {
            offsets.append(try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int)
            _ = try log.append(Event(kind: .external, step: i, values: [Double(i)]))
        }
        try log.close()
        return (path, offsets)
    }

    @Test("a torn last record is cut by a writer only")
    func corruptLastRecord() throws {
        let (path, offsets) = try Self.fileLog("log", records: 4)
        var bytes = try AtomicFile.read(path)
        bytes[offsets[3] + 12] ^= 0x40            // inside the last record's payload
        try AtomicFile.write(bytes, to: path)
        let reader = try FileEventLog(readingAt: path)
        #expect(reader.count == 3 && reader.recovery.discardedBytes == bytes.count - offsets[3] && reader.recovery.damaged.isEmpty)
        #expect(reader.recovery.tailOffset == offsets[3] && reader.recovery.reason.contains("checksum"))
        #expect(throws: EventLogError.readOnly(path: path)) { try reader.append(Event(kind: .marker, step: 0)) }
        try reader.close()
        #expect(try AtomicFile.read(path) == bytes)
        var refused = false
        do { _ = try FileEventLog(path: path, recovery: .refuse) } catch let EventLogError.corruptTail(_, offset, detail) {
            refused = true
            #expect(offset == offsets[3] && detail.contains("checksum"))
        }
        #expect(refused)
        let recovered = try FileEventLog(path: path)
        #expect(recovered.count == 3 && recovered.recovery.validBytes == offsets[3])
    }

    @Test("a damaged record with valid records after it is never cut; readers skip it, writers refuse, salvage copies the rest",
          arguments: [12, 0, 2, 5])   // a byte in the payload, two in the length field, one in the checksum
    func damagedMiddle(_ byte: Int) throws {
        let (path, offsets) = try Self.fileLog("log-\(byte)", records: 40)
        var bytes = try AtomicFile.read(path)
        bytes[offsets[10] + byte] ^= byte == 0 ? 0x7f : 0x40
        try AtomicFile.write(bytes, to: path)
        let reader = try FileEventLog(readingAt: path)
        #expect(reader.count == 39 && reader.recovery.records == 39 && reader.recovery.discardedBytes == 0)
        let expected = EventLogDamage(offset: offsets[10], length: offsets[11] - offsets[10], recordsBefore: 10,
                                      reason: reader.recovery.damaged.first?.reason ?? "")
        #expect(reader.recovery.damaged == [expected])
        #expect(try reader.allEvents().map(\.step) == Array(0..<10) + Array(11..<40))
        #expect(reader.recovery.prefixRecords == 10 && reader.recovery.validBytes == offsets[10])
        let prefix = try FileEventLog(readingAt: path, extent: .validPrefix)
        #expect(try prefix.allEvents().map(\.step) == Array(0..<10))
        // A writer refuses and cuts nothing.
        #expect { try FileEventLog(path: path) } throws: { error in
            guard case let EventLogError.damaged(p, ranges) = error else { return false }
            return p == path && ranges == reader.recovery.damaged && "\(error)".contains("--salvage")
        }
        #expect(try AtomicFile.read(path) == bytes)
        // Salvage: every valid record in a new, clean log; the original stays; an existing file is never overwritten.
        let salvaged = Self.path("salvaged-\(byte)")
        #expect(try FileEventLog.salvage(path, to: salvaged).damaged.count == 1)
        let copy = try FileEventLog(path: salvaged)
        #expect(copy.recovery.isClean)
        #expect(try copy.allEvents() == reader.allEvents())
        try copy.close()
        #expect(try AtomicFile.read(path) == bytes)
        #expect(throws: EventLogError.self) { try FileEventLog.salvage(path, to: salvaged) }
    }

    @Test("reading a log creates, writes and locks nothing", arguments: [Backend.file, .sqlite])
    func readOnly(_ backend: Backend) throws {
        let directory = temporaryDirectory("eventlog-readonly-\(backend)")
        let path = (directory as NSString).appendingPathComponent("log")
        let writer = try backend.open(path)
        for i in 0..<20 { try writer.append(Event(kind: .marker, step: i)) }
        try writer.close()
        let reader = try EventLogBackend.openForReading(path: path)
        let concurrentWriter = try backend.open(path)   // a reader holds no lock
        try concurrentWriter.close()
        let before = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        let bytes = try AtomicFile.read(path)
        #expect(try reader.allEvents().map(\.step) == Array(0..<20))
        #expect(throws: EventLogError.readOnly(path: path)) { try reader.append(Event(kind: .marker, step: 0)) }
        try reader.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == before)
        #expect(try AtomicFile.read(path) == bytes)
        let missing = (directory as NSString).appendingPathComponent("missing")
        #expect { try EventLogBackend.openForReading(path: missing) } throws: { "\($0)".contains("no such file") }
        #expect { try SQLiteEventLog(readingAt: missing) } throws: { "\($0)".contains("no such file") }
        #expect(throws: EventLogError.self) { try FileEventLog(readingAt: missing) }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).sorted() == before)
    }

    @Test("an SQLite log left in WAL mode without its -wal file is read without creating one")
    func walModeWithoutWALFile() throws {
        let directory = temporaryDirectory("eventlog-wal")
        let path = (directory as NSString).appendingPathComponent("log.sqlite")
        let writer = try SQLiteEventLog(path: path)
        for i in 0..<5 { _ = try writer.append(Event(kind: .marker, step: i)) }
        try writer.close()
        // What an older writer left: WAL mode in the header, every page checkpointed, no -wal file.
        var bytes = try AtomicFile.read(path)
        #expect(bytes[18] == 1 && bytes[19] == 1)   // the writer left rollback mode
        bytes[18] = 2; bytes[19] = 2
        try AtomicFile.write(bytes, to: path)
        let reader = try EventLogBackend.openForReading(path: path)
        #expect(try reader.allEvents().map(\.step) == Array(0..<5))
        try reader.close()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == ["log.sqlite"])
    }

    @Test("foreign files, newer versions, a second writer and bad records are refused with a reason")
    func refusals() throws {
        let foreign = Self.path("foreign")
        try AtomicFile.write(Array("hello, this is not a log at all".utf8), to: foreign)
        #expect(throws: EventLogError.self) { try FileEventLog(path: foreign) }
        let newer = Self.path("newer")
        try AtomicFile.write(Array("ADJLOG\0\0".utf8) + [9, 0, 0, 0, 0, 0, 0, 0], to: newer)
        #expect { try FileEventLog(path: newer) } throws: { "\($0)".contains("format version 9 is newer") }
        let path = Self.path("locked")
        let first = try FileEventLog(path: path)
        #expect(throws: EventLogError.self) { try FileEventLog(path: path) }
        try first.close()
        _ = try FileEventLog(path: path)
        #expect(throws: EventLogError.self) { try FileEventLog(path: "/proc/nope/log") }
        #expect(throws: EventLogError.self) { try Event.decode([99, 0, 0][...], context: "x") }
        #expect(throws: EventLogError.self) { try Event.decode(Event(kind: .marker, step: 1).encoded().dropLast()[...], context: "x") }
        #expect(throws: EventLogError.self) { try Event(kind: .input, step: 0, data: [3, 0x66, 0x36, 0x34, 1, 2, 0, 0, 0, 0, 0, 0, 0]).tensor() }
    }
}
