import AdjointTensor
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Errors reading or writing checkpoint files.
public enum PersistenceError: Error, Equatable, CustomStringConvertible {
    /// A system call failed (`errno` and its text).
    case io(path: String, operation: String, errno: Int32, message: String)
    /// The file ends before the structure it declares.
    case truncated(path: String, detail: String)
    /// The file is not what it claims to be, at a byte offset.
    case corrupt(path: String, offset: Int, detail: String)
    /// A tensor's element type has no safetensors code (or the file uses one Adjoint cannot hold).
    case unsupportedDType(path: String, tensor: String, dtype: String)

    public var description: String {
        switch self {
        case let .io(path, operation, errno, message): return "\(path): \(operation) failed: \(message) (errno \(errno))"
        case let .truncated(path, detail): return "\(path): truncated: \(detail)"
        case let .corrupt(path, offset, detail): return "\(path): corrupt at byte \(offset): \(detail)"
        case let .unsupportedDType(path, tensor, dtype): return "\(path): tensor '\(tensor)' has unsupported dtype \(dtype)"
        }
    }
}

/// Writes files so that a crash at any moment leaves either the old file or the new one, complete.
public enum AtomicFile {
    /// Writes `data` to a temporary file beside `path`, flushes it to disk (`fsync`), renames it over
    /// `path`, and flushes the directory so the rename itself is durable.
    public static func write(_ data: [UInt8], to path: String) throws {
        try write(to: path) { try $0(data) }
    }

    /// Streams a file into place atomically: `body` calls the writer it is given with successive
    /// chunks; they go to a temporary file beside `path`, which is flushed (`fsync`) and renamed over
    /// `path` (the directory flushed too) only when `body` returns. When `body` or a write throws,
    /// the temporary file is removed and `path` is untouched.
    public static func write(to path: String, _ body: (_ write: ([UInt8]) throws -> Void) throws -> Void) throws {
        let directory = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        let temporary = "\(path).tmp-\(getpid())"
        func fail(_ operation: String, _ file: String = path) -> PersistenceError {
            let code = errno
            return .io(path: file, operation: operation, errno: code, message: String(cString: strerror(code)))
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("open", temporary) }
        do {
            try body { chunk in
                var written = 0
                let ok: Bool = chunk.withUnsafeBytes { raw in
                    while written < raw.count {
                        let n = Glibc.write(fd, raw.baseAddress! + written, raw.count - written)
                        if n < 0 { if errno == EINTR { continue }; return false }
                        written += n
                    }
                    return true
                }
                guard ok else { throw fail("write", temporary) }
            }
            guard fsync(fd) == 0 else { throw fail("fsync", temporary) }
        } catch {
            close(fd); unlink(temporary)
            throw error
        }
        guard close(fd) == 0 else { let e = fail("close", temporary); unlink(temporary); throw e }
        guard rename(temporary, path) == 0 else { let e = fail("rename"); unlink(temporary); throw e }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw fail("open directory", directory) }
        defer { close(dfd) }
        guard fsync(dfd) == 0 else { throw fail("fsync directory", directory) }
    }

    /// The whole file.
    public static func read(_ path: String) throws -> [UInt8] {
        func fail(_ operation: String) -> PersistenceError {
            let code = errno
            return .io(path: path, operation: operation, errno: code, message: String(cString: strerror(code)))
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open") }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress!, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw fail("read") }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }
}
