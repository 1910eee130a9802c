import Foundation

/// libCacheSim's oracleGeneral format: 24-byte little-endian records `u32 timestamp, u64 id, u32
/// size, i64 next access` (the index of the next request for the object, −1 for none), no
/// header; `.zst` files are Zstandard-compressed and decompressed as they stream.
public struct OracleGeneralReader: RequestSource {
    public let path: String
    public var name: String { (path as NSString).lastPathComponent }
    private let bytes: BufferedBytes
    private var index = 0

    public init(path: String) throws {
        self.path = path
        let file = try FileStream(path: path)
        bytes = BufferedBytes(path.hasSuffix(".zst") ? try ZstdStream(file) : file)
    }

    public mutating func next() throws -> CacheRequest? {
        let (request, available) = try bytes.withBytes(24) { raw -> CacheRequest in
            let time = raw.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
            let id = raw.loadUnaligned(fromByteOffset: 4, as: UInt64.self).littleEndian
            let size = raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian
            let next = raw.loadUnaligned(fromByteOffset: 16, as: Int64.self).littleEndian
            return CacheRequest(time: Int64(time), id: id, size: Int64(size), nextAccess: next < 0 ? .max : next)
        }
        guard let request else {
            if available > 0 {
                throw TraceError.truncated(path: path, record: index, offset: bytes.consumed,
                                           detail: "\(available) bytes of a 24-byte record (the file is not a whole number of records)")
            }
            return nil
        }
        index += 1
        return request
    }
}

/// Delimited text with chosen columns for the id and, optionally, time and size; a header line or
/// not. Ids that are not integers are hashed (FNV-1a, 64 bits) so string keys work.
///
/// A file read without a header whose first line looks like one (several fields, none a number,
/// while the next line has numbers) is refused with ``TraceError/invalidOptions(path:detail:)``
/// instead of being counted as a request. Sizes are limited to ``maximumSize`` (that of
/// oracleGeneral's `u32` field), so sums over billions of requests cannot overflow.
public struct CSVTraceReader: RequestSource {
    public struct Columns: Sendable {
        /// 0-based column indices, or names when the file has a header.
        public var id: ColumnRef
        public var time: ColumnRef?
        public var size: ColumnRef?

        public init(id: ColumnRef, time: ColumnRef? = nil, size: ColumnRef? = nil) {
            self.id = id
            self.time = time
            self.size = size
        }
    }

    public enum ColumnRef: Sendable, ExpressibleByIntegerLiteral, ExpressibleByStringLiteral {
        case index(Int), name(String)
        public init(integerLiteral value: Int) { self = .index(value) }
        public init(stringLiteral value: String) { self = .name(value) }
    }

    public let path: String
    public var name: String { (path as NSString).lastPathComponent }
    private let bytes: BufferedBytes
    private let delimiter: Character
    private let idColumn: Int, timeColumn: Int?, sizeColumn: Int?
    private let hasHeader: Bool
    private var line = 0, index = 0
    private var pending: (text: Substring, offset: Int)?

    /// The largest object size a CSV trace may give (bytes).
    public static let maximumSize = Int64(UInt32.max)
    /// The longest line read (1 MiB): a file without newlines is an error, not a line held in memory.
    public static let maximumLineBytes = 1 << 20

    /// The next line, at most ``maximumLineBytes`` long.
    private static func boundedLine(_ bytes: BufferedBytes, path: String, record: Int) throws -> Substring? {
        do { return try bytes.readLine(maxBytes: maximumLineBytes) } catch BufferedBytes.LineTooLong.tooLong {
            throw TraceError.malformed(path: path, record: record, offset: bytes.consumed, detail: "a line longer than \(maximumLineBytes) bytes")
        }
    }

    /// - Throws: ``TraceError/invalidOptions(path:detail:)`` for a column name that is not in the
    ///   header (or a name without a header).
    public init(path: String, columns: Columns, hasHeader: Bool, delimiter: Character = ",") throws {
        self.path = path
        self.delimiter = delimiter
        self.hasHeader = hasHeader
        let file = try FileStream(path: path)
        bytes = BufferedBytes(path.hasSuffix(".gz") ? try GzipStream(file) : file)
        var header: [String] = []
        if hasHeader {
            guard let first = try Self.boundedLine(bytes, path: path, record: 1) else { throw TraceError.invalidOptions(path: path, detail: "empty file, expected a header") }
            header = first.split(separator: delimiter, omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            line = 1
        }
        func resolve(_ ref: ColumnRef?, _ role: String) throws -> Int? {
            switch ref {
            case nil: return nil
            case let .index(i)?:
                guard i >= 0 else { throw TraceError.invalidOptions(path: path, detail: "\(role) column \(i) is negative") }
                return i
            case let .name(n)?:
                guard let i = header.firstIndex(of: n) else {
                    throw TraceError.invalidOptions(path: path, detail: hasHeader ? "no \(role) column '\(n)' in the header \(header)" : "\(role) column '\(n)' named, but the file has no header")
                }
                return i
            }
        }
        idColumn = try resolve(columns.id, "id")!
        timeColumn = try resolve(columns.time, "time")
        sizeColumn = try resolve(columns.size, "size")
    }

    /// The next line that is not blank, and its byte offset.
    private mutating func nextLine() throws -> (text: Substring, offset: Int)? {
        if let line = pending { pending = nil; return line }
        while true {
            let offset = bytes.consumed
            guard let text = try Self.boundedLine(bytes, path: path, record: line + 1) else { return nil }
            line += 1
            if text.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
            return (text, offset)
        }
    }

    public mutating func next() throws -> CacheRequest? {
        while true {
            guard let (text, offset) = try nextLine() else { return nil }
            let fields = text.split(separator: delimiter, omittingEmptySubsequences: false)
            if index == 0, !hasHeader, fields.count >= 2, !fields.contains(where: Self.isNumber) {
                // Names only: a header, if the next line has numbers.
                if let following = try nextLine() {
                    pending = following
                    if following.text.split(separator: delimiter, omittingEmptySubsequences: false).contains(where: Self.isNumber) {
                        throw TraceError.invalidOptions(path: path, detail: "the first line (\(text.prefix(120))) looks like a header: no field is a number, "
                            + "while the next line has numbers; read it with a header (--csv-header) and name the columns")
                    }
                }
            }
            func field(_ column: Int, _ role: String) throws -> Substring {
                guard column < fields.count else {
                    throw TraceError.malformed(path: path, record: index, offset: offset, detail: "line \(line) has \(fields.count) fields, the \(role) is column \(column)")
                }
                return Substring(fields[column].trimmingCharacters(in: .whitespaces))
            }
            let idText = try field(idColumn, "id")
            guard !idText.isEmpty else { throw TraceError.malformed(path: path, record: index, offset: offset, detail: "line \(line): empty id") }
            let id = UInt64(idText) ?? fnv1a(idText)
            var time = Int64(index), size: Int64 = 1
            if let timeColumn {
                let t = try field(timeColumn, "time")
                guard let value = Int64(t) ?? Double(t).flatMap({ $0.isFinite ? Int64(exactly: $0.rounded(.down)) : nil }) else {
                    throw TraceError.malformed(path: path, record: index, offset: offset, detail: "line \(line): time '\(t)' is not a number")
                }
                time = value
            }
            if let sizeColumn {
                let s = try field(sizeColumn, "size")
                guard let value = Int64(s), value >= 0, value <= Self.maximumSize else {
                    throw TraceError.malformed(path: path, record: index, offset: offset,
                                               detail: "line \(line): size '\(s)' is not an integer in 0...\(Self.maximumSize)")
                }
                size = value
            }
            index += 1
            return CacheRequest(time: time, id: id, size: size)
        }
    }
}

/// One object id per line (integers, or any text, hashed); `.gz` files are gunzipped as they stream.
public struct TextTraceReader: RequestSource {
    public let path: String
    public var name: String { (path as NSString).lastPathComponent }
    private var csv: CSVTraceReader

    public init(path: String) throws {
        self.path = path
        csv = try CSVTraceReader(path: path, columns: .init(id: 0), hasHeader: false, delimiter: "\u{1}")
    }

    public mutating func next() throws -> CacheRequest? { try csv.next() }
}

/// The trace formats by file name.
public enum TraceFormat: String, CaseIterable, Sendable {
    case oracleGeneral, csv, text

    /// `.oracleGeneral.bin[.zst]` / `.bin[.zst]` → oracleGeneral, `.csv[.gz]` → csv, anything else → text.
    public static func guess(path: String) -> TraceFormat {
        let lower = path.lowercased()
        if lower.hasSuffix(".bin") || lower.hasSuffix(".bin.zst") || lower.hasSuffix(".zst") { return .oracleGeneral }
        if lower.hasSuffix(".csv") || lower.hasSuffix(".csv.gz") { return .csv }
        return .text
    }
}

extension CSVTraceReader {
    static func isNumber(_ field: Substring) -> Bool {
        Double(field.trimmingCharacters(in: .whitespaces)) != nil
    }
}

/// FNV-1a, 64 bits, of a string's UTF-8 (ids that are not integers).
func fnv1a(_ text: Substring) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for byte in text.utf8 { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
    return h
}
