import CMPI
import Foundation

/// The process's MPI library: initialized once (thread level `MPI_THREAD_SERIALIZED`: any thread may
/// call, one at a time, which ``Communicator`` ensures with its lock), errors returned rather than
/// aborting, and finalized at exit — or aborted, when a collective timed out and the job cannot end
/// cleanly.
enum MPIRuntime {
    struct Handles {
        /// `MPI_Op` combining the reproducible sum's bounds (`ReproducibleSum.combineBounds`).
        var boundsCombine: MPI_Op?
    }

    // Written under `lock` only; `broken` is read without it at exit, when no other thread runs MPI.
    nonisolated(unsafe) private static var handles: Handles?
    nonisolated(unsafe) private(set) static var broken = false
    private static let lock = NSLock()

    /// Initializes MPI on first use; returns the custom operators.
    static func start() throws -> Handles {
        lock.lock()
        defer { lock.unlock() }
        if let handles { return handles }
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        if finalized != 0 { throw DistributedError.communicatorUnusable(reason: "MPI was finalized in this process") }
        var initialized: Int32 = 0
        MPI_Initialized(&initialized)
        if initialized == 0 {
            // Nonblocking all-reduce by ring unless the user chose: libnbc's default choice for large
            // buffers is several times slower than the blocking MPI_Allreduce (Documentation/Distributed.md).
            setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "1", 0)
            var provided: Int32 = 0
            let code = MPI_Init_thread(nil, nil, Int32(MPI_THREAD_SERIALIZED), &provided)
            guard code == MPI_SUCCESS else { throw DistributedError.mpi(function: "MPI_Init_thread", code: code, message: errorText(code)) }
            guard provided >= Int32(MPI_THREAD_SERIALIZED) else {
                throw DistributedError.mpi(function: "MPI_Init_thread", code: provided,
                                           message: "the MPI library offers thread level \(provided), below MPI_THREAD_SERIALIZED")
            }
            atexit { MPIRuntime.finish() }
        }
        try check(MPI_Comm_set_errhandler(adjoint_mpi_comm_world(), adjoint_mpi_errors_return()), "MPI_Comm_set_errhandler")
        var made = Handles()
        try check(MPI_Op_create(boundsCombineFunction, 1, &made.boundsCombine), "MPI_Op_create")
        handles = made
        return made
    }

    /// Marks the job as unable to finalize (an outstanding collective cannot be cancelled).
    static func markBroken() {
        lock.lock()
        broken = true
        lock.unlock()
    }

    /// At exit: `MPI_Finalize`, or `MPI_Abort` after a timed-out collective (finalizing would wait
    /// for it forever).
    static func finish() {
        var finalized: Int32 = 0
        MPI_Finalized(&finalized)
        guard finalized == 0 else { return }
        if broken {
            MPI_Abort(adjoint_mpi_comm_world(), 70)
        } else {
            MPI_Finalize()
        }
    }

    static func check(_ code: Int32, _ function: String) throws {
        guard code == MPI_SUCCESS else { throw DistributedError.mpi(function: function, code: code, message: errorText(code)) }
    }

    static func errorText(_ code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == MPI_SUCCESS else { return "unknown error" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `inout[i] = combineBounds(in[i], inout[i])` on the reproducible sum's 16-bit bounds.
private let boundsCombineFunction: @convention(c) (UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, UnsafeMutablePointer<Int32>?,
                                                   UnsafeMutablePointer<MPI_Datatype?>?) -> Void = { input, output, length, _ in
    guard let input, let output, let length else { return }
    let a = input.assumingMemoryBound(to: Int16.self), b = output.assumingMemoryBound(to: Int16.self)
    for index in 0..<Int(length.pointee) { b[index] = ReproducibleSum.combineBounds(a[index], b[index]) }
}
