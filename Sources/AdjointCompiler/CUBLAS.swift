import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why cuBLAS could not be used.
package enum CUBLASError: Error, Equatable, CustomStringConvertible {
    /// No `libcublas.so` was found: the names tried.
    case unavailable(searched: [String])
    /// The library lacks a function this wrapper calls.
    case missingSymbol(library: String, symbol: String)
    /// A cuBLAS call returned an error status.
    case callFailed(call: String, status: Int32)

    package var description: String {
        switch self {
        case let .unavailable(searched): return "cuBLAS not found (tried \(searched.joined(separator: ", "))); set ADJOINT_CUBLAS to libcublas.so's path"
        case let .missingSymbol(library, symbol): return "\(library) has no \(symbol)"
        case let .callFailed(call, status): return "\(call) failed with status \(status)"
        }
    }
}

/// One matrix product, or a batch of them of one shape, in BLAS's column-major convention as
/// cuBLAS takes it: `C = op(A) · op(B)` (α 1, β 0), `m × n` over `k`, each matrix at a device
/// address with its leading dimension. What a ``KernelDevice`` runs with ``KernelDevice/gemm(_:on:)``.
package struct GEMM: Equatable, Sendable {
    package var float64: Bool
    package var transposeA: Bool, transposeB: Bool
    package var m: Int, n: Int, k: Int
    package var lda: Int, ldb: Int, ldc: Int
    /// The operands of a single product (`batch` 1).
    package var a: UInt64, b: UInt64, c: UInt64
    /// Products in the batch; more than one reads the operands' addresses from `arrays`.
    package var batch: Int
    /// With a batch: device memory holding `batch` addresses of A, then of B, then of C (64-bit each).
    package var arrays: UInt64

    /// The problem's dimensions against BLAS's rules (what cuBLAS refuses with
    /// CUBLAS_STATUS_INVALID_VALUE), or nil where they hold.
    package var invalidity: String? {
        if m < 0 || n < 0 || k < 0 || batch < 1 { return "m \(m), n \(n), k \(k), batch \(batch): must be non-negative (batch ≥ 1)" }
        let rowsA = transposeA ? k : m, rowsB = transposeB ? n : k
        if lda < Swift.max(1, rowsA) { return "lda \(lda) < \(Swift.max(1, rowsA))" }
        if ldb < Swift.max(1, rowsB) { return "ldb \(ldb) < \(Swift.max(1, rowsB))" }
        if ldc < Swift.max(1, m) { return "ldc \(ldc) < \(Swift.max(1, m))" }
        if [m, n, k, lda, ldb, ldc, batch].contains(where: { $0 > Int(Int32.max) }) { return "a dimension exceeds 32 bits" }
        return nil
    }
}

/// The calls of cuBLAS (`libcublas.so`, loaded with `dlopen`) a device program's matrix products
/// take: a handle on the driver's primary context, its stream set per call, single and batched
/// GEMM in float32 and float64. cuBLAS is found at `ADJOINT_CUBLAS`, else by the dynamic loader.
///
/// One handle serves every stream: setting the stream and workspace and enqueueing the product
/// happen under a lock, so calls from several threads do not interleave. Each stream brings a
/// workspace of its own (``gemm(_:stream:workspace:)``): `cublasSetStream` puts the handle back on
/// cuBLAS's default workspace, which products running at once on two streams would share — a
/// race, and results that depend on the streams' timing. A handle used on one stream after
/// another computes each product with the algorithm cuBLAS picks for its shape; its default math
/// mode (no TF32 or reduced precision) is kept.
package final class CUBLAS: @unchecked Sendable {
    private typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    private typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
    private typealias SetStream = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    private typealias SetWorkspace = @convention(c) (OpaquePointer?, UInt64, Int) -> Int32
    private typealias Sgemm = @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, UInt64, Int32,
                                              UInt64, Int32, UnsafePointer<Float>, UInt64, Int32) -> Int32
    private typealias Dgemm = @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Double>, UInt64, Int32,
                                              UInt64, Int32, UnsafePointer<Double>, UInt64, Int32) -> Int32
    private typealias SgemmBatched = @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Float>, UInt64, Int32,
                                                     UInt64, Int32, UnsafePointer<Float>, UInt64, Int32, Int32) -> Int32
    private typealias DgemmBatched = @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32, UnsafePointer<Double>, UInt64, Int32,
                                                     UInt64, Int32, UnsafePointer<Double>, UInt64, Int32, Int32) -> Int32

    private let library: UnsafeMutableRawPointer
    private let destroy: Destroy, setStream: SetStream, setWorkspace: SetWorkspace
    private let sgemm: Sgemm, dgemm: Dgemm, sgemmBatched: SgemmBatched, dgemmBatched: DgemmBatched
    private let handle: OpaquePointer?
    /// Held while a call sets the handle's stream and enqueues.
    private let lock = NSLock()
    /// The library loaded.
    package let path: String

    /// Where ``load()`` looks.
    package static var candidates: [String] { libraryCandidates("ADJOINT_CUBLAS", "libcublas") }

    /// Loads cuBLAS from `path`, or the first of ``candidates`` that loads, and creates a handle
    /// (on the calling thread's current context: the driver's primary one, made current by
    /// ``CUDADriver``).
    ///
    /// - Throws: ``CUBLASError``: no library, a missing function, a failed `cublasCreate`.
    package static func load(path: String? = nil) throws -> CUBLAS {
        let searched = path.map { [$0] } ?? candidates
        guard let (library, name) = firstLoadable(searched) else { throw CUBLASError.unavailable(searched: searched) }
        return try CUBLAS(library: library, path: name)
    }

    private init(library: UnsafeMutableRawPointer, path: String) throws {
        func symbol<F>(_ name: String, _: F.Type) throws -> F {
            try loadedSymbol(library, name) { CUBLASError.missingSymbol(library: path, symbol: $0) }
        }
        let create = try symbol("cublasCreate_v2", Create.self)
        destroy = try symbol("cublasDestroy_v2", Destroy.self)
        setStream = try symbol("cublasSetStream_v2", SetStream.self)
        setWorkspace = try symbol("cublasSetWorkspace_v2", SetWorkspace.self)
        sgemm = try symbol("cublasSgemm_v2", Sgemm.self)
        dgemm = try symbol("cublasDgemm_v2", Dgemm.self)
        sgemmBatched = try symbol("cublasSgemmBatched", SgemmBatched.self)
        dgemmBatched = try symbol("cublasDgemmBatched", DgemmBatched.self)
        var made: OpaquePointer?
        let status = create(&made)
        guard status == 0 else {
            dlclose(library)
            throw CUBLASError.callFailed(call: "cublasCreate", status: status)
        }
        self.library = library
        self.path = path
        handle = made
    }

    deinit {
        _ = destroy(handle)
        dlclose(library)
    }

    /// The workspace a stream gives its products on a device of compute capability `major`:
    /// what cuBLAS's documentation recommends, 32 MiB on Hopper and later, 4 MiB before.
    package static func workspaceBytes(computeCapability major: Int) -> Int { major >= 9 ? 32 << 20 : 4 << 20 }

    /// Enqueues `g` on `stream` (a driver stream handle; nil: the default stream), with
    /// `workspace` (device memory only work on `stream` uses; nil: cuBLAS's default workspace,
    /// for the default stream).
    ///
    /// - Throws: ``CUBLASError/callFailed(call:status:)`` (invalid dimensions are status 7).
    package func gemm(_ g: GEMM, stream: OpaquePointer?, workspace: (address: UInt64, bytes: Int)?) throws {
        let transA: Int32 = g.transposeA ? 1 : 0, transB: Int32 = g.transposeB ? 1 : 0   // CUBLAS_OP_T, CUBLAS_OP_N
        let (m, n, k) = (Int32(truncatingIfNeeded: g.m), Int32(truncatingIfNeeded: g.n), Int32(truncatingIfNeeded: g.k))
        let (lda, ldb, ldc) = (Int32(truncatingIfNeeded: g.lda), Int32(truncatingIfNeeded: g.ldb), Int32(truncatingIfNeeded: g.ldc))
        let count = UInt64(g.batch) * 8
        let h = handle
        let (call, status): (String, Int32) = lock.withLock {
            let set = setStream(h, stream)
            guard set == 0 else { return ("cublasSetStream", set) }
            if let workspace {
                let given = setWorkspace(h, workspace.address, workspace.bytes)
                guard given == 0 else { return ("cublasSetWorkspace", given) }
            }
            // α and β are read from host memory (the handle's default pointer mode) before the call returns.
            switch (g.float64, g.batch > 1) {
            case (true, false):
                var (alpha, beta) = (1.0, 0.0)
                return ("cublasDgemm", dgemm(h, transA, transB, m, n, k, &alpha, g.a, lda, g.b, ldb, &beta, g.c, ldc))
            case (false, false):
                var (alpha, beta): (Float, Float) = (1, 0)
                return ("cublasSgemm", sgemm(h, transA, transB, m, n, k, &alpha, g.a, lda, g.b, ldb, &beta, g.c, ldc))
            case (true, true):
                var (alpha, beta) = (1.0, 0.0)
                return ("cublasDgemmBatched", dgemmBatched(h, transA, transB, m, n, k, &alpha, g.arrays, lda, g.arrays + count, ldb,
                                                          &beta, g.arrays + 2 * count, ldc, Int32(truncatingIfNeeded: g.batch)))
            case (false, true):
                var (alpha, beta): (Float, Float) = (1, 0)
                return ("cublasSgemmBatched", sgemmBatched(h, transA, transB, m, n, k, &alpha, g.arrays, lda, g.arrays + count, ldb,
                                                          &beta, g.arrays + 2 * count, ldc, Int32(truncatingIfNeeded: g.batch)))
            }
        }
        guard status == 0 else { throw CUBLASError.callFailed(call: call, status: status) }
    }
}
