import CZlib
import CZstd
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Bytes from a file, possibly through a decompressor; `read` returns 0 at the end.
protocol ByteStream: AnyObject {
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Bytes of the underlying file consumed so far (for error offsets).
    var fileOffset: Int { get }
}

final class FileStream: ByteStream {
    let path: String
    private let fd: Int32
    private(set) var fileOffset = 0

    init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw TraceError.io(path: path, detail: "cannot open: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if n < 0 {
                if errno == EINTR { continue }
                throw TraceError.io(path: path, detail: "read failed: \(String(cString: strerror(errno)))")
            }
            fileOffset += n
            return n
        }
    }
}

/// Zstandard frames, decompressed as they stream.
final class ZstdStream: ByteStream {
    private let source: FileStream
    private let context: OpaquePointer
    private var input = [UInt8](repeating: 0, count: 1 << 17)
    private var inputPosition = 0, inputCount = 0
    private var sawData = false, frameDone = true

    var fileOffset: Int { source.fileOffset - (inputCount - inputPosition) }

    init(_ source: FileStream) throws {
        self.source = source
        guard let context = ZSTD_createDCtx() else { throw TraceError.io(path: source.path, detail: "cannot create a zstd context") }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var output = ZSTD_outBuffer(dst: buffer.baseAddress, size: buffer.count, pos: 0)
        while output.pos == 0 {
            if inputPosition == inputCount {
                inputCount = try input.withUnsafeMutableBytes { try source.read(into: $0) }
                inputPosition = 0
                if inputCount == 0 {
                    if !frameDone { throw TraceError.decompression(path: source.path, offset: source.fileOffset, detail: "the zstd stream ends inside a frame") }
                    if !sawData { throw TraceError.decompression(path: source.path, offset: 0, detail: "empty file") }
                    return 0
                }
                sawData = true
            }
            let result = input.withUnsafeBytes { raw -> Int in
                var inBuffer = ZSTD_inBuffer(src: raw.baseAddress, size: inputCount, pos: inputPosition)
                let r = ZSTD_decompressStream(context, &output, &inBuffer)
                inputPosition = inBuffer.pos
                return r
            }
            if ZSTD_isError(result) != 0 {
                throw TraceError.decompression(path: source.path, offset: fileOffset, detail: String(cString: ZSTD_getErrorName(result)))
            }
            frameDone = result == 0
        }
        return output.pos
    }
}

/// gzip (RFC 1952) members, inflated as they stream.
final class GzipStream: ByteStream {
    private let source: FileStream
    private var stream = z_stream()
    private let inputCapacity = 1 << 16
    private let input: UnsafeMutablePointer<UInt8>
    private var finished = false

    var fileOffset: Int { source.fileOffset - Int(stream.avail_in) }

    init(_ source: FileStream) throws {
        self.source = source
        input = .allocate(capacity: inputCapacity)
        let status = inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard status == Z_OK else { throw TraceError.io(path: source.path, detail: "cannot initialise zlib (\(status))") }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if finished { return 0 }
        stream.next_out = buffer.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(buffer.count)
        while stream.avail_out == uInt(buffer.count) {
            if stream.avail_in == 0 {
                let n = try source.read(into: UnsafeMutableRawBufferPointer(start: input, count: inputCapacity))
                if n == 0 { throw TraceError.decompression(path: source.path, offset: source.fileOffset, detail: "the gzip stream ends early") }
                stream.next_in = input
                stream.avail_in = uInt(n)
            }
            let status = inflate(&stream, Z_NO_FLUSH)
            if status == Z_STREAM_END {
                finished = true
                break
            }
            guard status == Z_OK || status == Z_BUF_ERROR else {
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                throw TraceError.decompression(path: source.path, offset: fileOffset, detail: message)
            }
        }
        return buffer.count - Int(stream.avail_out)
    }
}

/// Buffered reads of exact byte counts and of lines.
final class BufferedBytes {
    let stream: ByteStream
    private var buffer = [UInt8](repeating: 0, count: 1 << 20)
    private var position = 0, count = 0
    /// Bytes handed out so far (the decompressed offset).
    private(set) var consumed = 0

    init(_ stream: ByteStream) { self.stream = stream }

    private func refill() throws -> Bool {
        if position < count {
            buffer.withUnsafeMutableBytes { raw in
                raw.baseAddress!.copyMemory(from: raw.baseAddress! + position, byteCount: count - position)
            }
        }
        count -= position
        position = 0
        let n = try buffer.withUnsafeMutableBytes { try stream.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[count...])) }
        count += n
        return n > 0
    }

    /// Calls `body` with exactly `n` bytes, or returns nil at a clean end; throws `short(k)` via
    /// the returned count when the data ends after `k > 0` bytes.
    func withBytes<R>(_ n: Int, _ body: (UnsafeRawBufferPointer) throws -> R) throws -> (R?, available: Int) {
        while count - position < n {
            if try !refill() { return (nil, count - position) }
        }
        defer { position += n; consumed += n }
        return (try buffer.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[position..<(position + n)])) }, n)
    }

    enum LineTooLong: Error { case tooLong }

    /// The next line without its terminator (`\n` or `\r\n`), or nil at the end; throws
    /// `LineTooLong.tooLong` once a line passes `maxBytes` (so a file without line breaks does not
    /// grow the buffer without bound).
    func readLine(maxBytes: Int = .max) throws -> Substring? {
        while true {
            if let newline = buffer[position..<count].firstIndex(of: 0x0A) {
                var end = newline
                if end > position, buffer[end - 1] == 0x0D { end -= 1 }
                let line = String(decoding: buffer[position..<end], as: UTF8.self)
                consumed += newline + 1 - position
                position = newline + 1
                return Substring(line)
            }
            if count - position > maxBytes { throw LineTooLong.tooLong }
            if count - position == buffer.count { buffer += [UInt8](repeating: 0, count: buffer.count) }   // a very long line
            if try !refill() {
                guard position < count else { return nil }
                let line = String(decoding: buffer[position..<count], as: UTF8.self)
                consumed += count - position
                position = count
                return Substring(line)
            }
        }
    }
}
