import AdjointTensor
import Foundation

/// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
/// mapping each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` plus an optional
/// `"__metadata__"` string map, then the tensors' little-endian row-major bytes with no holes.
/// Files written here load in Python's `safetensors`, and files it writes load here.
public enum SafeTensors {
    static let codes: [(DType, String)] = [
        (.float64, "F64"), (.float32, "F32"), (.float16, "F16"), (.bfloat16, "BF16"),
        (.int64, "I64"), (.int32, "I32"), (.bool, "BOOL"),
    ]

    /// The safetensors dtype code of `dtype` ("F32", "BF16", …), if it has one.
    public static func code(for dtype: DType) -> String? { codes.first { $0.0 == dtype }?.1 }

    /// Serializes `tensors` (written in name order, so equal inputs give equal bytes) and `metadata`.
    /// The header is padded with spaces to a multiple of 8 bytes.
    public static func encode(_ tensors: [String: Tensor], metadata: [String: String] = [:]) throws -> [UInt8] {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var body: [UInt8] = []
        for name in tensors.keys.sorted() {
            let t = tensors[name]!   // tensors are contiguous by construction
            guard let code = codes.first(where: { $0.0 == t.dtype })?.1 else {
                throw PersistenceError.unsupportedDType(path: "<memory>", tensor: name, dtype: "\(t.dtype)")
            }
            let bytes = t.elementCount * t.dtype.byteSize
            header[name] = ["dtype": code, "shape": t.shape, "data_offsets": [body.count, body.count + bytes]] as [String: Any]
            body.append(contentsOf: UnsafeRawBufferPointer(start: t.rawPointer, count: bytes))
        }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count + body.count)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out += json
        out += body
        return out
    }

    /// Parses a safetensors byte image; `path` names the source in errors.
    ///
    /// - Throws: ``PersistenceError`` naming the file and the byte offset for a short file, a
    ///   header that is not the documented JSON, an unknown dtype, offsets outside the data, holes
    ///   or overlaps, or a shape that does not match its byte count.
    public static func decode(_ bytes: [UInt8], path: String = "<memory>") throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        guard bytes.count >= 8 else { throw PersistenceError.truncated(path: path, detail: "\(bytes.count) bytes, shorter than the 8-byte header length") }
        let headerLength = bytes[0..<8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(bytes.count - 8) else {
            throw PersistenceError.truncated(path: path, detail: "the header declares \(headerLength) bytes but only \(bytes.count - 8) follow")
        }
        let dataStart = 8 + Int(headerLength)
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])), let header = object as? [String: Any] else {
            throw PersistenceError.corrupt(path: path, offset: 8, detail: "the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        if let meta = header["__metadata__"] {
            guard let map = meta as? [String: String] else { throw PersistenceError.corrupt(path: path, offset: 8, detail: "__metadata__ is not a map of strings") }
            metadata = map
        }
        let dataLength = bytes.count - dataStart
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let code = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw PersistenceError.corrupt(path: path, offset: 8, detail: "entry '\(name)' lacks dtype, shape or two data_offsets")
            }
            guard let dtype = codes.first(where: { $0.1 == code })?.0 else { throw PersistenceError.unsupportedDType(path: path, tensor: name, dtype: code) }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], offsets[1] <= dataLength else {
                throw PersistenceError.corrupt(path: path, offset: dataStart + max(0, offsets[0]),
                                               detail: "tensor '\(name)' has offsets \(offsets) outside the \(dataLength) data bytes or a negative extent")
            }
            guard let expected = ValueType(dtype: dtype, shape: shape).checkedByteCount else {
                throw PersistenceError.corrupt(path: path, offset: 8, detail: "tensor '\(name)' has shape \(shape), whose size overflows")
            }
            guard offsets[1] - offsets[0] == expected else {
                throw PersistenceError.corrupt(path: path, offset: dataStart + offsets[0],
                                               detail: "tensor '\(name)' of shape \(shape) \(code) needs \(expected) bytes, its offsets span \(offsets[1] - offsets[0])")
            }
            entries.append((name, dtype, shape, offsets[0], offsets[1]))
        }
        // The data must be covered exactly: no holes, no overlaps.
        var position = 0
        for entry in entries.sorted(by: { ($0.begin, $0.end) < ($1.begin, $1.end) }) {
            guard entry.begin == position else {
                throw PersistenceError.corrupt(path: path, offset: dataStart + position,
                                               detail: entry.begin > position ? "a hole before tensor '\(entry.name)'" : "tensor '\(entry.name)' overlaps the previous one")
            }
            position = entry.end
        }
        guard position == dataLength else {
            throw PersistenceError.corrupt(path: path, offset: dataStart + position, detail: "\(dataLength - position) bytes after the last tensor")
        }
        var tensors: [String: Tensor] = [:]
        for entry in entries {
            do {
                tensors[entry.name] = try bytes.withUnsafeBytes { raw in
                    try Tensor(copyingBytes: UnsafeRawBufferPointer(rebasing: raw[(dataStart + entry.begin)..<(dataStart + entry.end)]),
                               shape: entry.shape, dtype: entry.dtype, context: "tensor '\(entry.name)'")
                }
            } catch let error as TensorError {
                throw PersistenceError.corrupt(path: path, offset: dataStart + entry.begin, detail: "\(error)")
            }
        }
        return (tensors, metadata)
    }

    /// Writes `tensors` to `path` atomically (see ``AtomicFile/write(_:to:)``).
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        try AtomicFile.write(encode(tensors, metadata: metadata), to: path)
    }

    /// Reads a safetensors file.
    public static func read(_ path: String) throws -> (tensors: [String: Tensor], metadata: [String: String]) {
        try decode(AtomicFile.read(path), path: path)
    }
}
