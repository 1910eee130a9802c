import AdjointTensor
import AdjointIO

/// One record of an ``EventLog``: something a running system consumed or decided at a step.
///
/// The log holds what a replay cannot recompute — inputs, external events (arrivals, timings,
/// messages), random-generator positions, scheduling and other discrete decisions — plus what lets
/// a replay check itself and start midway: the state hashes of the live run and state checkpoints.
public struct Event: Equatable, Sendable {
    public enum Kind: UInt8, CaseIterable, Sendable, CustomStringConvertible {
        /// The input `x[t]` of step `t` (a tensor in ``data``).
        case input = 1
        /// Something from outside (an arrival, a timing, a message): named numbers.
        case external = 2
        /// A random stream's key and counter when the step drew from it.
        case random = 3
        /// A discrete decision: ``values`` = [choice, number of options].
        case decision = 4
        /// The hash of `s[t]` in the live run.
        case stateHash = 5
        /// A serialized `s[t]` (``StepFunction/serialize(_:)``).
        case checkpoint = 6
        /// Application-defined.
        case marker = 7

        public var description: String {
            switch self {
            case .input: return "input"
            case .external: return "external"
            case .random: return "random"
            case .decision: return "decision"
            case .stateHash: return "stateHash"
            case .checkpoint: return "checkpoint"
            case .marker: return "marker"
            }
        }
    }

    public var kind: Kind
    public var step: Int
    public var name: String
    public var values: [Double]
    public var data: [UInt8]

    public init(kind: Kind, step: Int, name: String = "", values: [Double] = [], data: [UInt8] = []) {
        self.kind = kind
        self.step = step
        self.name = name
        self.values = values
        self.data = data
    }

    /// The name of the marker a resumed ``EventSourcedRun`` logs first: events of an unfinished
    /// step before it are void.
    public static let resumeMarker = "adjoint.resume"

    // MARK: Typed constructors and readers

    /// The input of `step`.
    public static func input(step: Int, _ tensor: Tensor, name: String = "x") -> Event {
        Event(kind: .input, step: step, name: name, data: TensorBytes.encode(tensor))
    }

    /// The tensor of an ``Kind/input`` event.
    public func tensor() throws -> Tensor { try TensorBytes.decode(data, context: "event \(kind) '\(name)' of step \(step)") }

    /// The live run's hash of `s[step]`.
    public static func stateHash(step: Int, _ hash: StateHash) -> Event {
        Event(kind: .stateHash, step: step, data: withUnsafeBytes(of: hash.value.littleEndian) { Array($0) })
    }

    /// The hash of a ``Kind/stateHash`` event.
    public var hash: StateHash? {
        guard kind == .stateHash, data.count == 8 else { return nil }
        return StateHash(data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) })
    }

    /// A decision among `options` alternatives.
    public static func decision(step: Int, name: String, choice: Int, options: Int) -> Event {
        Event(kind: .decision, step: step, name: name, values: [Double(choice), Double(options)])
    }

    /// The choice of a ``Kind/decision`` event.
    public var choice: Int? { kind == .decision && !values.isEmpty ? Int(values[0]) : nil }

    /// A random stream's position.
    public static func random(step: Int, name: String, key: RandomKey, counter: UInt64) -> Event {
        var bytes: [UInt8] = []
        for word in [key.seed, key.stream, counter] { withUnsafeBytes(of: word.littleEndian) { bytes += $0 } }
        return Event(kind: .random, step: step, name: name, data: bytes)
    }

    /// The key and counter of a ``Kind/random`` event.
    public var randomPosition: (key: RandomKey, counter: UInt64)? {
        guard kind == .random, data.count == 24 else { return nil }
        let words = (0..<3).map { i in data.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) } }
        return (RandomKey(seed: words[0], stream: words[1]), words[2])
    }

    // MARK: Binary form

    /// `kind u8, step i64, name (u16 length + UTF-8), values (u32 count + f64 each), data (u32
    /// length + bytes)`, little-endian.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(19 + name.utf8.count + 8 * values.count + data.count)
        out.append(kind.rawValue)
        withUnsafeBytes(of: Int64(step).littleEndian) { out += $0 }
        let nameBytes = Array(name.utf8.prefix(Int(UInt16.max)))
        withUnsafeBytes(of: UInt16(nameBytes.count).littleEndian) { out += $0 }
        out += nameBytes
        withUnsafeBytes(of: UInt32(values.count).littleEndian) { out += $0 }
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        withUnsafeBytes(of: UInt32(data.count).littleEndian) { out += $0 }
        out += data
        return out
    }

    /// Parses ``encoded()``; `context` names the record in errors.
    public static func decode(_ bytes: ArraySlice<UInt8>, context: String) throws -> Event {
        var reader = ByteReader(bytes: bytes, context: context)
        guard let kind = Kind(rawValue: try reader.integer(UInt8.self)) else {
            throw EventLogError.malformedRecord(context: context, detail: "unknown event kind \(bytes[bytes.startIndex])")
        }
        let step = Int(try reader.integer(Int64.self))
        let name = String(decoding: try reader.bytes(Int(try reader.integer(UInt16.self))), as: UTF8.self)
        let count = Int(try reader.integer(UInt32.self))
        var values: [Double] = []
        values.reserveCapacity(Swift.min(count, bytes.count / 8))
        for _ in 0..<count { values.append(Double(bitPattern: try reader.integer(UInt64.self))) }
        let data = Array(try reader.bytes(Int(try reader.integer(UInt32.self))))
        guard reader.isAtEnd else { throw EventLogError.malformedRecord(context: context, detail: "\(reader.remaining) bytes after the event") }
        return Event(kind: kind, step: step, name: name, values: values, data: data)
    }
}

/// Little-endian reads from a byte slice that throw instead of reading past the end.
struct ByteReader {
    let bytes: ArraySlice<UInt8>
    let context: String
    var position: Int

    init(bytes: ArraySlice<UInt8>, context: String) {
        self.bytes = bytes
        self.context = context
        position = bytes.startIndex
    }

    var isAtEnd: Bool { position == bytes.endIndex }
    var remaining: Int { bytes.endIndex - position }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= remaining else {
            throw EventLogError.malformedRecord(context: context, detail: "needs \(n) more bytes at offset \(position - bytes.startIndex), has \(remaining)")
        }
        defer { position += n }
        return bytes[position..<(position + n)]
    }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        let slice = try bytes(MemoryLayout<T>.size)
        return slice.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(as: T.self)) }
    }
}

/// A compact tensor encoding for log records: dtype (its raw string, u8 length), rank (u8), the
/// dimensions (i64 each), then the elements' bytes.
enum TensorBytes {
    static func encode(_ t: Tensor) -> [UInt8] {
        var out: [UInt8] = []
        let code = Array(t.dtype.rawValue.utf8)
        out.append(UInt8(code.count))
        out += code
        out.append(UInt8(t.rank))
        for d in t.shape { withUnsafeBytes(of: Int64(d).littleEndian) { out += $0 } }
        out += UnsafeRawBufferPointer(start: t.rawPointer, count: t.elementCount * t.dtype.byteSize)
        return out
    }

    static func decode(_ bytes: [UInt8], context: String) throws -> Tensor {
        var reader = ByteReader(bytes: bytes[...], context: context)
        let code = String(decoding: try reader.bytes(Int(try reader.integer(UInt8.self))), as: UTF8.self)
        guard let dtype = DType(rawValue: code) else { throw EventLogError.malformedRecord(context: context, detail: "unknown dtype '\(code)'") }
        let rank = Int(try reader.integer(UInt8.self))
        var shape: [Int] = []
        for _ in 0..<rank {
            let d = try reader.integer(Int64.self)
            guard d >= 0, d < 1 << 40 else { throw EventLogError.malformedRecord(context: context, detail: "dimension \(d)") }
            shape.append(Int(d))
        }
        let payload = try reader.bytes(reader.remaining)
        do {
            return try payload.withUnsafeBytes { try Tensor(copyingBytes: $0, shape: shape, dtype: dtype, context: "tensor") }
        } catch {
            throw EventLogError.malformedRecord(context: context, detail: "\(error)")
        }
    }
}
