import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Trace readers and synthetic workloads")
struct WorkloadTests {
    static func temp(_ name: String) -> String { (temporaryDirectory("traces") as NSString).appendingPathComponent(name) }

    static func sample(_ n: Int = 5000) throws -> [CacheRequest] {
        var w = try SyntheticWorkload(.zipf(objects: 300, alpha: 0.8), requests: n, key: RandomKey(seed: 4), sizes: .perObject(min: 10, max: 900))
        return try w.readAll()
    }

    @Test("oracleGeneral round-trips raw and zstd-compressed, with next accesses", arguments: [false, true])
    func oracleGeneral(_ compress: Bool) throws {
        let requests = try Self.sample()
        let path = Self.temp(compress ? "t.oracleGeneral.bin.zst" : "t.oracleGeneral.bin")
        try OracleGeneralWriter.write(requests, to: path, compress: compress)
        var reader = try OracleGeneralReader(path: path)
        let back = try reader.readAll()
        var expected = requests
        NextAccess.annotate(&expected)
        #expect(back == expected)
        #expect(back.contains { $0.nextAccess != .max } && back.last?.nextAccess == .max)
    }

    @Test("a truncated or damaged file is named with the record and byte offset")
    func damaged() throws {
        let requests = try Self.sample(100)
        let path = Self.temp("t.bin")
        try OracleGeneralWriter.write(requests, to: path)
        var bytes = try AtomicFile.read(path)
        try AtomicFile.write(Array(bytes[..<(24 * 3 + 10)]), to: path)
        var reader = try OracleGeneralReader(path: path)
        #expect(throws: TraceError.truncated(path: path, record: 3, offset: 72, detail: "10 bytes of a 24-byte record (the file is not a whole number of records)")) {
            _ = try reader.readAll()
        }
        let zst = Self.temp("t.bin.zst")
        try OracleGeneralWriter.write(requests, to: zst, compress: true)
        bytes = try AtomicFile.read(zst)
        try AtomicFile.write(Array(bytes[..<(bytes.count / 2)]), to: zst)
        var cut = try OracleGeneralReader(path: zst)
        #expect { _ = try cut.readAll() } throws: { "\($0)".contains("compressed data damaged") }
        var garbage = bytes
        for i in 20..<60 { garbage[i] ^= 0x5A }
        try AtomicFile.write(garbage, to: zst)
        var bad = try OracleGeneralReader(path: zst)
        #expect { _ = try bad.readAll() } throws: { $0 is TraceError }
        #expect(throws: TraceError.self) { try OracleGeneralReader(path: "/nonexistent/trace.bin") }
    }

    @Test("CSV with named or numbered columns, header or not; bad fields are named by line")
    func csv() throws {
        let path = Self.temp("t.csv")
        try AtomicFile.write(Array("time,key,bytes\n1,42,100\n2,user:7,200\n\n3,42,100\n".utf8), to: path)
        var named = try CSVTraceReader(path: path, columns: .init(id: "key", time: "time", size: "bytes"), hasHeader: true)
        let rows = try named.readAll()
        #expect(rows.map(\.time) == [1, 2, 3] && rows.map(\.size) == [100, 200, 100] && rows[0].id == 42 && rows[2].id == 42)
        #expect(rows[1].id != 42)   // a string key, hashed
        let plain = Self.temp("t2.csv")
        try AtomicFile.write(Array("5;9\n6;10\n".utf8), to: plain)
        var numbered = try CSVTraceReader(path: plain, columns: .init(id: 1, time: 0), hasHeader: false, delimiter: ";")
        #expect(try numbered.readAll().map(\.id) == [9, 10])
        #expect(throws: TraceError.self) { try CSVTraceReader(path: path, columns: .init(id: "nope"), hasHeader: true) }
        #expect(throws: TraceError.self) { try CSVTraceReader(path: plain, columns: .init(id: "key"), hasHeader: false) }
        let bad = Self.temp("bad.csv")
        try AtomicFile.write(Array("t,k,s\n1,2,3\n1,2,x\n".utf8), to: bad)
        var reader = try CSVTraceReader(path: bad, columns: .init(id: "k", size: "s"), hasHeader: true)
        #expect { _ = try reader.readAll() } throws: { "\($0)".contains("record 1") && "\($0)".contains("line 3") && "\($0)".contains("size 'x'") }
        var short = try CSVTraceReader(path: bad, columns: .init(id: 7), hasHeader: true)
        #expect { _ = try short.readAll() } throws: { "\($0)".contains("has 3 fields") }
        // A line without end (2 MiB, no newline) is refused, not held in memory: as data and as a header.
        let endless = Self.temp("endless.csv")
        try AtomicFile.write(Array("1,2\n".utf8) + [UInt8](repeating: 0x37, count: 2 << 20), to: endless)
        var long = try CSVTraceReader(path: endless, columns: .init(id: 1), hasHeader: false)
        #expect { _ = try long.readAll() } throws: { "\($0)".contains("record 2") && "\($0)".contains("longer than 1048576 bytes") }
        #expect { try CSVTraceReader(path: endless, columns: .init(id: "k"), hasHeader: true) } throws: { _ in true }
        let headless = Self.temp("endless-header.csv")
        try AtomicFile.write([UInt8](repeating: 0x61, count: 2 << 20), to: headless)
        #expect { try CSVTraceReader(path: headless, columns: .init(id: "k"), hasHeader: true) } throws: { "\($0)".contains("longer than") }
    }

    @Test("a header read as data is refused; sizes beyond the oracleGeneral limit are named")
    func csvHeaderSniffing() throws {
        let path = Self.temp("header.csv")
        try AtomicFile.write(Array("version,time,op,size,lbn\n1,5633898,2a,512,42932745\n1,5633898,2a,512,42932746\n".utf8), to: path)
        var unheaded = try CSVTraceReader(path: path, columns: .init(id: 0), hasHeader: false)
        #expect { _ = try unheaded.readAll() } throws: { "\($0)".contains("looks like a header") && "\($0)".contains("version,time,op,size,lbn") }
        var headed = try CSVTraceReader(path: path, columns: .init(id: "lbn", size: "size"), hasHeader: true)
        #expect(try headed.readAll().map(\.id) == [42932745, 42932746])
        // Names on every line are string ids, not a header.
        let names = Self.temp("names.csv")
        try AtomicFile.write(Array("get,alpha\nget,beta\nput,alpha\n".utf8), to: names)
        var strings = try CSVTraceReader(path: names, columns: .init(id: 1), hasHeader: false)
        let ids = try strings.readAll().map(\.id)
        #expect(ids.count == 3 && ids[0] == ids[2] && ids[0] != ids[1])
        let huge = Self.temp("huge.csv")
        try AtomicFile.write(Array("1,9223372036854775807\n".utf8), to: huge)
        var sized = try CSVTraceReader(path: huge, columns: .init(id: 0, size: 1), hasHeader: false)
        #expect { _ = try sized.readAll() } throws: { "\($0)".contains("0...\(CSVTraceReader.maximumSize)") && "\($0)".contains("line 1") }
    }

    @Test("plain text ids, and gzip-compressed text")
    func text() throws {
        let path = Self.temp("ids.txt")
        try AtomicFile.write(Array("1\n2\n3\r\n2\nabc\n".utf8), to: path)
        var reader = try TextTraceReader(path: path)
        let ids = try reader.readAll().map(\.id)
        #expect(Array(ids[0..<4]) == [1, 2, 3, 2] && ids.count == 5)
        let result = try runProcess(["gzip", "-k", path])
        #expect(result.status == 0, "\(result.output)")
        var gz = try TextTraceReader(path: path + ".gz")
        #expect(try gz.readAll().map(\.id) == ids)
        var bytes = try AtomicFile.read(path + ".gz")
        bytes[bytes.count / 2] ^= 0xFF
        bytes[bytes.count / 2 + 1] ^= 0xFF
        try AtomicFile.write(bytes, to: path + ".gz")
        var broken = try TextTraceReader(path: path + ".gz")
        #expect(throws: TraceError.self) { _ = try broken.readAll() }
    }

    @Test("the shared CloudPhysics trace reads the same from .bin, .csv and .txt",
          .enabled(if: FileManager.default.fileExists(atPath: sharedData + "/traces/cloudPhysicsIO.oracleGeneral.bin"),
                   "needs ../shared/data/traces/cloudPhysicsIO.*"))
    func sharedFormats() throws {
        let base = sharedData + "/traces/cloudPhysicsIO"
        var bin = try OracleGeneralReader(path: base + ".oracleGeneral.bin")
        var csv = try CSVTraceReader(path: base + ".csv", columns: .init(id: "lbn", time: "time", size: "size"), hasHeader: true)
        var txt = try TextTraceReader(path: base + ".txt")
        let a = try bin.readAll(), b = try csv.readAll(), c = try txt.readAll()
        #expect(a.count == 113_872 && Set(a.map(\.id)).count == 48_974)
        #expect(a.map(\.id) == b.map(\.id) && a.map(\.id) == c.map(\.id))   // sizes differ: the .bin keeps the first size seen per object
        #expect(TraceFormat.guess(path: base + ".csv") == .csv && TraceFormat.guess(path: "x.oracleGeneral.bin.zst") == .oracleGeneral)
    }

    @Test("synthetic workloads are reproducible and have the shapes they promise")
    func synthetic() throws {
        var a = try SyntheticWorkload.standard(requests: 20_000), b = try SyntheticWorkload.standard(requests: 20_000)
        let x = try a.readAll(), y = try b.readAll()
        #expect(x == y && x.count == 20_000)
        var other = try SyntheticWorkload.standard(requests: 20_000, key: RandomKey(seed: 9))
        #expect(try other.readAll() != x)
        // Zipf: the most popular id takes its share; drift moves popularity.
        var zipf = try SyntheticWorkload(.zipf(objects: 1000, alpha: 1.0, driftEvery: 10_000, driftStep: 500), requests: 20_000, key: RandomKey(seed: 1))
        let z = try zipf.readAll()
        func top(_ r: ArraySlice<CacheRequest>) -> UInt64 { Dictionary(grouping: r, by: \.id).max { $0.value.count < $1.value.count }!.key }
        let first = top(z[..<10_000])
        let share = Double(z[..<10_000].filter { $0.id == first }.count) / 10_000
        #expect(share > 0.1 && share < 0.2)   // 1/H(1000) ≈ 0.134
        #expect(first != top(z[10_000...]))
        var scan = try SyntheticWorkload(.scan, requests: 1000, key: RandomKey(seed: 1))
        #expect(Set(try scan.readAll().map(\.id)).count == 1000)
        var loop = try SyntheticWorkload(.loop(objects: 7), requests: 70, key: RandomKey(seed: 1))
        let l = try loop.readAll()
        #expect(Set(l.map(\.id)).count == 7 && l[0].id == l[7].id)
        for bad: SyntheticWorkload.Pattern in [.zipf(objects: 0, alpha: 1), .loop(objects: 0), .mixture([]), .mixture([(.scan, -1)])] {
            #expect(throws: TensorError.self) { try SyntheticWorkload(bad, requests: 10, key: RandomKey(seed: 1)) }
        }
        #expect(throws: TensorError.self) { try SyntheticWorkload(.scan, requests: 10, key: RandomKey(seed: 1), sizes: .perObject(min: 5, max: 2)) }
    }
}
