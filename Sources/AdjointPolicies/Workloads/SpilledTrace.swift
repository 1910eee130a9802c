import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A workload read once from its source into an unlinked temporary file, with every request's next
/// access filled in by a backward pass over that file, then read any number of times — each pass
/// in constant memory (``makeSource()``).
///
/// Memory is proportional to the workload's distinct objects (the footprint and the next-access
/// pass keep one entry per object), never to its length: a trace of billions of requests costs 32
/// bytes of temporary disk per request. The file is unlinked as soon as it is created, so nothing
/// is left behind, even after a kill.
// @unchecked Sendable: after the initializer the file is only read (pread), from any thread.
public final class SpilledTrace: @unchecked Sendable {
    public let name: String
    /// Requests in the trace.
    public let count: Int
    /// Distinct objects, and the sum of their (last seen) sizes.
    public let distinctObjects: Int
    public let distinctBytes: Int64
    /// The mean size of a request (what sizes an admission gate's sketches in a byte-sized cache).
    public let meanRequestSize: Double
    private let fd: Int32

    static let recordSize = 32               // i64 time, u64 id, i64 size, i64 next access
    static let chunk = 1 << 15               // requests per read or write

    /// Reads `source` (at most `limit` requests) into a temporary file in `directory`.
    ///
    /// - Throws: ``TraceError/io(path:detail:)`` when the temporary file cannot be made or written;
    ///   ``TraceError/empty(path:)`` for a source without requests; errors of `source`.
    public init<S: RequestSource>(_ source: inout S, name: String, limit: Int = .max,
                                  directory: String = NSTemporaryDirectory()) throws {
        self.name = name
        var template = Array(((directory as NSString).appendingPathComponent("adjoint-trace-XXXXXX")).utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard fd >= 0 else { throw TraceError.io(path: path, detail: "cannot create a temporary file: \(String(cString: strerror(errno)))") }
        unlink(path)   // nothing to clean up, whatever happens next
        self.fd = fd
        var sizes: [UInt64: Int64] = [:]
        var buffer = [UInt8](repeating: 0, count: Self.chunk * Self.recordSize)
        var count = 0, pending = 0, requestedBytes = 0.0
        func flush() throws {
            try Self.write(fd, buffer, count: pending * Self.recordSize, at: (count - pending) * Self.recordSize, path: name)
            pending = 0
        }
        do {
            while count < limit, let r = try source.next() {
                sizes[r.id] = r.size
                requestedBytes += Double(r.size)
                buffer.withUnsafeMutableBytes { raw in
                    let base = pending * Self.recordSize
                    raw.storeBytes(of: r.time.littleEndian, toByteOffset: base, as: Int64.self)
                    raw.storeBytes(of: r.id.littleEndian, toByteOffset: base + 8, as: UInt64.self)
                    raw.storeBytes(of: r.size.littleEndian, toByteOffset: base + 16, as: Int64.self)
                    raw.storeBytes(of: Int64.max.littleEndian, toByteOffset: base + 24, as: Int64.self)
                }
                count += 1
                pending += 1
                if pending == Self.chunk { try flush() }
            }
            try flush()
        } catch {
            close(fd)
            throw error
        }
        guard count > 0 else { close(fd); throw TraceError.empty(path: name) }
        self.count = count
        distinctObjects = sizes.count
        distinctBytes = sizes.values.reduce(0, +)
        meanRequestSize = requestedBytes / Double(count)
        try annotateNextAccesses()
    }

    deinit { close(fd) }

    /// Distinct objects (``SizeMode/unit``) or their bytes: what cache-size percentages refer to.
    public func footprint(_ mode: SizeMode) -> Int64 { mode == .unit ? Int64(distinctObjects) : distinctBytes }

    /// Fills in next accesses chunk by chunk from the end, as ``NextAccess/annotate(_:)`` does.
    private func annotateNextAccesses() throws {
        var next: [UInt64: Int64] = [:]
        next.reserveCapacity(distinctObjects)
        var buffer = [UInt8](repeating: 0, count: Self.chunk * Self.recordSize)
        var end = count
        while end > 0 {
            let start = Swift.max(0, end - Self.chunk), n = end - start
            try Self.read(fd, into: &buffer, count: n * Self.recordSize, at: start * Self.recordSize, path: name)
            buffer.withUnsafeMutableBytes { raw in
                for i in stride(from: n - 1, through: 0, by: -1) {
                    let base = i * Self.recordSize
                    let id = UInt64(littleEndian: raw.load(fromByteOffset: base + 8, as: UInt64.self))
                    raw.storeBytes(of: (next[id] ?? .max).littleEndian, toByteOffset: base + 24, as: Int64.self)
                    next[id] = Int64(start + i)
                }
            }
            try Self.write(fd, buffer, count: n * Self.recordSize, at: start * Self.recordSize, path: name)
            end = start
        }
    }

    /// A pass over the trace from its first request, in constant memory.
    public func makeSource() -> Reader { Reader(trace: self) }

    /// The first `n` requests in memory (for training, which samples windows of them).
    public func requests(prefix n: Int) throws -> [CacheRequest] {
        var reader = makeSource()
        return try reader.readAll(limit: n)
    }

    /// Reads a ``SpilledTrace`` chunk by chunk.
    public struct Reader: RequestSource {
        let trace: SpilledTrace
        var buffer = [UInt8](repeating: 0, count: SpilledTrace.chunk * SpilledTrace.recordSize)
        var index = 0, bufferStart = 0, bufferCount = 0

        public var name: String { trace.name }

        public mutating func next() throws -> CacheRequest? {
            guard index < trace.count else { return nil }
            if index >= bufferStart + bufferCount {
                bufferStart = index
                bufferCount = Swift.min(SpilledTrace.chunk, trace.count - index)
                try SpilledTrace.read(trace.fd, into: &buffer, count: bufferCount * SpilledTrace.recordSize,
                                      at: index * SpilledTrace.recordSize, path: trace.name)
            }
            let base = (index - bufferStart) * SpilledTrace.recordSize
            index += 1
            return buffer.withUnsafeBytes { raw in
                CacheRequest(time: Int64(littleEndian: raw.load(fromByteOffset: base, as: Int64.self)),
                             id: UInt64(littleEndian: raw.load(fromByteOffset: base + 8, as: UInt64.self)),
                             size: Int64(littleEndian: raw.load(fromByteOffset: base + 16, as: Int64.self)),
                             nextAccess: Int64(littleEndian: raw.load(fromByteOffset: base + 24, as: Int64.self)))
            }
        }
    }

    static func write(_ fd: Int32, _ bytes: [UInt8], count: Int, at offset: Int, path: String) throws {
        var done = 0
        try bytes.withUnsafeBytes { raw in
            while done < count {
                let n = pwrite(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw TraceError.io(path: path, detail: "writing the temporary copy: \(String(cString: strerror(errno)))") }
                done += n
            }
        }
    }

    static func read(_ fd: Int32, into bytes: inout [UInt8], count: Int, at offset: Int, path: String) throws {
        var done = 0
        try bytes.withUnsafeMutableBytes { raw in
            while done < count {
                let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
                if n < 0 { if errno == EINTR { continue }; throw TraceError.io(path: path, detail: "reading the temporary copy: \(String(cString: strerror(errno)))") }
                if n == 0 { throw TraceError.io(path: path, detail: "the temporary copy ended early") }
                done += n
            }
        }
    }
}
