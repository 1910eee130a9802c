import AdjointTensor
import CZstd
import Foundation
import AdjointIO

/// Writes requests in libCacheSim's oracleGeneral format (with their next-access indices), raw or
/// Zstandard-compressed (`.zst`), atomically — to export synthetic or converted workloads that
/// libCacheSim and Adjoint both read.
public enum OracleGeneralWriter {
    /// - Parameters:
    ///   - requests: the requests, in order, with their next-access indices.
    ///   - path: the file, written atomically.
    ///   - compress: Zstandard level 3 when true (use a `.zst` name).
    public static func write(_ requests: [CacheRequest], to path: String, compress: Bool = false) throws {
        var annotated = requests
        NextAccess.annotate(&annotated)
        var raw = [UInt8]()
        raw.reserveCapacity(24 * annotated.count)
        for r in annotated {
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: r.time).littleEndian) { raw += $0 }
            withUnsafeBytes(of: r.id.littleEndian) { raw += $0 }
            withUnsafeBytes(of: UInt32(truncatingIfNeeded: r.size).littleEndian) { raw += $0 }
            withUnsafeBytes(of: (r.nextAccess == .max ? -1 : r.nextAccess).littleEndian) { raw += $0 }
        }
        guard compress else { return try AtomicFile.write(raw, to: path) }
        var out = [UInt8](repeating: 0, count: ZSTD_compressBound(raw.count))
        let n = raw.withUnsafeBytes { src in out.withUnsafeMutableBytes { dst in
            ZSTD_compress(dst.baseAddress, dst.count, src.baseAddress, src.count, 3)
        } }
        guard ZSTD_isError(n) == 0 else { throw TraceError.io(path: path, detail: "zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        try AtomicFile.write(Array(out[..<n]), to: path)
    }
}
