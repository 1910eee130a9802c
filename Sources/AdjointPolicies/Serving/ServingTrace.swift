import AdjointTensor
import Foundation

/// One request of an LLM-serving trace.
public struct ServingRequest: Sendable, Equatable {
    /// Position in the trace (0-based).
    public var id: Int
    /// Seconds after the trace's first request.
    public var arrival: Double
    /// Prompt tokens.
    public var promptTokens: Int
    /// Tokens the model generated (known to the trace, and to the clairvoyant policy only).
    public var outputTokens: Int
    /// Ids of the prompt's 512-token blocks, equal ids meaning a shared prefix (Mooncake traces);
    /// empty when the trace has none.
    public var prefixBlocks: [UInt64]
    /// The tenant (0 ..< 65536) the request belongs to; the shared traces carry none (all 0), see
    /// ``assigningTenants(_:count:seed:)``.
    public var tenant: Int

    public init(id: Int, arrival: Double, promptTokens: Int, outputTokens: Int, prefixBlocks: [UInt64] = [], tenant: Int = 0) {
        (self.id, self.arrival, self.promptTokens, self.outputTokens, self.prefixBlocks) = (id, arrival, promptTokens, outputTokens, prefixBlocks)
        self.tenant = tenant
    }

    /// `requests` spread over `count` tenants by a hash of each request's id and `seed` — for
    /// fairness experiments on traces that name no tenants.
    public static func assigningTenants(_ requests: [ServingRequest], count: Int, seed: UInt64 = 1) -> [ServingRequest] {
        guard count > 1 else { return requests }
        let key = RandomKey(seed: seed)
        return requests.map { r in
            var r = r
            let bits = key.bits(block: UInt64(r.id))
            r.tenant = Int((UInt64(bits.0) << 32 | UInt64(bits.1)) % UInt64(count))
            return r
        }
    }
}

/// A serving trace that cannot be read: the file, the 1-based line, the field and what is wrong.
public enum ServingTraceError: Error, Equatable, CustomStringConvertible {
    case io(path: String, detail: String)
    /// A line whose `field` does not parse or breaks a limit.
    case invalid(path: String, line: Int, field: String, detail: String)
    /// The trace holds no request.
    case empty(path: String)
    /// Options that cannot work (an unknown format, a load that is not a positive finite factor).
    case invalidOptions(detail: String)

    public var description: String {
        switch self {
        case let .io(path, detail): return "\(path): \(detail)"
        case let .invalid(path, line, field, detail): return "\(path): line \(line): \(field): \(detail)"
        case let .empty(path): return "\(path): the trace holds no requests"
        case let .invalidOptions(detail): return detail
        }
    }
}

/// The two trace formats of `../shared/data/serving`.
public enum ServingTraceFormat: String, Sendable, CaseIterable {
    /// Azure LLM inference trace: `TIMESTAMP,ContextTokens,GeneratedTokens`, wall-clock timestamps
    /// `YYYY-MM-DD HH:MM:SS.fffffff`.
    case azureCSV
    /// Mooncake: one JSON object per line, `timestamp` (ms), `input_length`, `output_length`,
    /// `hash_ids`.
    case mooncakeJSONL

    /// `.jsonl` → Mooncake, anything else → Azure CSV.
    public static func inferred(from path: String) -> ServingTraceFormat {
        path.lowercased().hasSuffix(".jsonl") ? .mooncakeJSONL : .azureCSV
    }
}

/// Reads a serving trace one request at a time (memory independent of its length), checking every
/// field: token counts in `1 ... maximumTokens`, timestamps finite and never earlier than the
/// previous line's, lines at most `maximumLineBytes` long. Arrivals are divided by `load`, so a
/// load of 2 replays the same requests at twice the rate.
public struct ServingTraceReader {
    /// The most prompt or output tokens a request may have (2^21).
    public static let maximumTokens = 1 << 21
    /// The longest line read (1 MiB).
    public static let maximumLineBytes = 1 << 20
    /// The most prefix blocks a request may list (`maximumTokens / 512`).
    public static let maximumBlocks = maximumTokens / 512

    public let path: String
    public let format: ServingTraceFormat
    public let load: Double
    private let lines: BufferedBytes
    private var lineNumber = 0
    /// The first line's time, and the previous line's: whole seconds and the fraction apart, so
    /// that wall-clock times keep their 100 ns resolution (a `Double` of seconds since 1970 has
    /// about 240 ns).
    private var first: (whole: Int, fraction: Double)?
    private var previous = (whole: Int.min, fraction: 0.0)
    private var produced = 0

    public init(path: String, format: ServingTraceFormat? = nil, load: Double = 1) throws {
        guard load.isFinite, load > 0, load <= 1e6 else {
            throw ServingTraceError.invalidOptions(detail: "the load factor must be a finite number in (0, 10⁶], got \(load)")
        }
        self.path = path
        self.format = format ?? .inferred(from: path)
        self.load = load
        do { lines = BufferedBytes(try FileStream(path: path)) } catch { throw ServingTraceError.io(path: path, detail: "\(error)") }
        if self.format == .azureCSV {
            guard let header = try nextLine() else { throw ServingTraceError.empty(path: path) }
            let columns = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard columns == ["TIMESTAMP", "ContextTokens", "GeneratedTokens"] else {
                throw ServingTraceError.invalid(path: path, line: 1, field: "header",
                                                detail: "expected TIMESTAMP,ContextTokens,GeneratedTokens, got \(header.prefix(80))")
            }
        }
    }

    private mutating func nextLine() throws -> Substring? {
        do {
            guard let line = try lines.readLine(maxBytes: Self.maximumLineBytes) else { return nil }
            lineNumber += 1
            return line
        } catch BufferedBytes.LineTooLong.tooLong {
            throw ServingTraceError.invalid(path: path, line: lineNumber + 1, field: "line",
                                            detail: "longer than \(Self.maximumLineBytes) bytes")
        } catch let error as TraceError {
            throw ServingTraceError.io(path: path, detail: "\(error)")
        }
    }

    /// The next request, or nil at the end.
    public mutating func next() throws -> ServingRequest? {
        while let line = try nextLine() {
            if line.allSatisfy(\.isWhitespace) { continue }
            let (time, prompt, output, blocks) = format == .azureCSV ? try azure(line) : try mooncake(line)
            guard time.whole > previous.whole || (time.whole == previous.whole && time.fraction >= previous.fraction) else {
                throw invalid("timestamp", "earlier than the previous line's (requests must be in arrival order)")
            }
            previous = time
            let start = first ?? time
            first = start
            defer { produced += 1 }
            let seconds = Double(time.whole - start.whole) + (time.fraction - start.fraction)
            return ServingRequest(id: produced, arrival: seconds / load, promptTokens: prompt, outputTokens: output, prefixBlocks: blocks)
        }
        return nil
    }

    /// Every request (for traces whose size the caller has bounded); throws on an empty trace.
    public static func readAll(path: String, format: ServingTraceFormat? = nil, load: Double = 1,
                               limit: Int = .max) throws -> [ServingRequest] {
        var reader = try ServingTraceReader(path: path, format: format, load: load)
        var out: [ServingRequest] = []
        while out.count < limit, let request = try reader.next() { out.append(request) }
        guard !out.isEmpty else { throw ServingTraceError.empty(path: path) }
        return out
    }

    private func invalid(_ field: String, _ detail: String) -> ServingTraceError {
        .invalid(path: path, line: lineNumber, field: field, detail: detail)
    }

    private func tokens(_ text: Substring, _ field: String) throws -> Int {
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
            throw invalid(field, "not an integer: '\(text.prefix(40))'")
        }
        guard value >= 1, value <= Self.maximumTokens else {
            throw invalid(field, "\(value) is outside 1 ... \(Self.maximumTokens)")
        }
        return value
    }

    private func azure(_ line: Substring) throws -> ((whole: Int, fraction: Double), Int, Int, [UInt64]) {
        let fields = line.split(separator: ",", omittingEmptySubsequences: false)
        guard fields.count == 3 else { throw invalid("line", "expected 3 comma-separated fields, got \(fields.count)") }
        return (try Self.wallClockSeconds(fields[0]).get(orThrow: invalid("TIMESTAMP", "not a time YYYY-MM-DD HH:MM:SS[.fraction]: '\(fields[0].prefix(40))'")),
                try tokens(fields[1], "ContextTokens"), try tokens(fields[2], "GeneratedTokens"), [])
    }

    /// Seconds since 1970 of `YYYY-MM-DD HH:MM:SS[.fraction]` (UTC; only differences are used),
    /// whole and fraction apart.
    static func wallClockSeconds(_ text: Substring) -> (whole: Int, fraction: Double)? {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: " ")
        guard parts.count == 2 else { return nil }
        let date = parts[0].split(separator: "-"), time = parts[1].split(separator: ":")
        guard date.count == 3, time.count == 3, let y = Int(date[0]), let m = Int(date[1]), let d = Int(date[2]),
              let hh = Int(time[0]), let mm = Int(time[1]), let ss = Double(time[2]), ss.isFinite,
              time[2].allSatisfy({ $0.isNumber || $0 == "." }),
              (1 ... 9999).contains(y), (1 ... 12).contains(m), (1 ... 31).contains(d), (0 ... 23).contains(hh),
              (0 ... 59).contains(mm), ss >= 0, ss < 61 else { return nil }
        // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
        let yy = m <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let whole = ss.rounded(.down)
        return (days * 86_400 + hh * 3_600 + mm * 60 + Int(whole), ss - whole)
    }

    private struct MooncakeLine: Decodable {
        var timestamp: Double
        var input_length: Int
        var output_length: Int
        var hash_ids: [UInt64]?
    }

    private func mooncake(_ line: Substring) throws -> ((whole: Int, fraction: Double), Int, Int, [UInt64]) {
        let record: MooncakeLine
        do {
            record = try JSONDecoder().decode(MooncakeLine.self, from: Data(line.utf8))
        } catch let DecodingError.keyNotFound(key, _) {
            throw invalid(key.stringValue, "missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context) {
            throw invalid(context.codingPath.first?.stringValue ?? "line", "wrong type: \(context.debugDescription)")
        } catch let DecodingError.dataCorrupted(context) {
            throw invalid(context.codingPath.first?.stringValue ?? "line", "not JSON: \(context.debugDescription)")
        } catch {
            throw invalid("line", "\(error)")
        }
        guard record.timestamp.isFinite, record.timestamp >= 0, record.timestamp <= 1e15 else {
            throw invalid("timestamp", "\(record.timestamp) is not a time in milliseconds within 0 ... 10¹⁵")
        }
        let prompt = try tokens(Substring(String(record.input_length)), "input_length")
        let output = try tokens(Substring(String(record.output_length)), "output_length")
        let blocks = record.hash_ids ?? []
        guard blocks.count <= Self.maximumBlocks else {
            throw invalid("hash_ids", "\(blocks.count) blocks; at most \(Self.maximumBlocks)")
        }
        let seconds = record.timestamp / 1000
        return ((Int(seconds.rounded(.down)), seconds - seconds.rounded(.down)), prompt, output, blocks)
    }
}

private extension Optional {
    func get(orThrow error: @autoclosure () -> some Error) throws -> Wrapped {
        guard let self else { throw error() }
        return self
    }
}
