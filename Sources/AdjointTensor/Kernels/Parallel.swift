import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Deterministic data parallelism for the CPU kernels.
///
/// Work is cut into chunks whose boundaries depend only on the problem size, never on the number of
/// threads; each chunk's result is computed the same way whichever thread runs it, and partial
/// results are combined in a fixed order by the caller. So every kernel gives bitwise-identical
/// results with 1, 2, 3 or 8 threads.
public enum Parallelism {
    private static let threads = ThreadSetting(default: Swift.max(1, ProcessInfoShim.activeProcessorCount))

    /// Worker threads used by the kernels dispatched from the calling thread (GEMM included:
    /// OpenBLAS itself runs single-threaded inside Adjoint's fixed row blocks).
    ///
    /// Reading gives the calling thread's override (``withThreadCount(_:_:)``) or else the process
    /// default; setting changes the process default, which starts as the number of active cores.
    public static var threadCount: Int {
        get { threads.value }
        set { threads.defaultValue = Swift.max(1, newValue) }
    }

    /// Runs `body` with `count` worker threads for the kernels it dispatches from this thread.
    public static func withThreadCount<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        try threads.with(Swift.max(1, count), body)
    }

    /// Elements per chunk for elementwise kernels.
    public static let elementChunk = 1 << 15

    /// Elements per chunk for light, memory-bound elementwise loops (an addition, a select, a
    /// cast): below this a loop runs on the calling thread. Waking a second worker costs ≈ 20 µs
    /// on the development VM, more than such a loop over 2^17 elements takes alone (`TimeBenchmarks
    /// micro`: a float32 multiply of 131,072 elements, 19 µs on one thread, 37 µs on two).
    /// Elementwise results do not depend on the chunking.
    package static let lightChunk = 1 << 18

    /// Runs `body(chunkIndex)` for every chunk in `0 ..< chunks`, on up to ``threadCount`` workers.
    /// `body` must write only to memory owned by its chunk.
    @inlinable
    package static func forEachChunk(_ chunks: Int, _ body: (Int) -> Void) {
        let workers = Swift.min(threadCount, chunks)
        if workers <= 1 {
            for c in 0..<chunks { body(c) }
            return
        }
        withoutActuallyEscaping(body) { body in
            let next = Atomic<Int>(0)
            let shared = ChunkBody(body)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                while true {
                    let c = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    if c >= chunks { break }
                    shared.body(c)
                }
            }
        }
    }

    /// Splits `0 ..< count` into chunks of `chunkSize` and runs `body(range)` for each.
    @inlinable
    package static func forEachRange(_ count: Int, chunkSize: Int = elementChunk, _ body: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        let size = Swift.max(1, chunkSize)
        let chunks = (count + size - 1) / size
        forEachChunk(chunks) { c in
            let lo = c * size
            body(lo ..< Swift.min(count, lo + size))
        }
    }
}

/// Reads the core count without Foundation.
@usableFromInline
enum ProcessInfoShim {
    static var activeProcessorCount: Int {
        #if canImport(Glibc)
        return Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        #else
        return 1
        #endif
    }
}
#if canImport(Glibc)
import Glibc
#endif

/// The body of ``Parallelism/forEachChunk(_:_:)``, handed to its worker threads.
///
/// `@unchecked Sendable`: `concurrentPerform` returns only after every worker finished, so the
/// closure does not outlive the call, and the contract of `forEachChunk` is that each chunk writes
/// only memory it owns (the ThreadSanitizer step of `.ci/run` checks the kernels that use it).
@usableFromInline
struct ChunkBody: @unchecked Sendable {
    @usableFromInline let body: (Int) -> Void
    @inlinable init(_ body: @escaping (Int) -> Void) { self.body = body }
}
