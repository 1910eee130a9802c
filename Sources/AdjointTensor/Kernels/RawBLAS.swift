import CBLAS

/// Direct OpenBLAS calls for benchmarks that measure the hardware ceiling. Not API.
public enum _RawBLAS {
    /// `c = a · b` (row-major float32, M×K · K×N) with OpenBLAS's own threading on `threads`
    /// threads; restores the single-threaded setting Adjoint's kernels rely on.
    public static func sgemm(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                             c: UnsafeMutablePointer<Float>, threads: Int) {
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                    a, Int32(k), b, Int32(n), 0, c, Int32(n))
    }
}

/// What the kernels run on, for run manifests.
package enum BLASLibrary {
    /// OpenBLAS's build configuration (`openblas_get_config`), e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH …".
    package static var configuration: String { String(cString: openblas_get_config()) }
    /// The CPU kernel set OpenBLAS selected at run time (`openblas_get_corename`).
    package static var coreName: String { String(cString: openblas_get_corename()) }
    /// OpenBLAS's own thread count as the kernels use it: 1, because Adjoint calls it inside its
    /// own fixed blocks (see `Kernels.gemmChunked`).
    package static var threadCount: Int {
        _ = Kernels.blasSingleThreaded
        return Int(openblas_get_num_threads())
    }
}
