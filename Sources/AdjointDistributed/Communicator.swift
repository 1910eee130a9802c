import AdjointTensor
import CMPI
import Foundation

/// The ranks of an MPI job and the collectives between them, on tensors.
///
/// Run the program under `mpirun -np N` (or Slurm's `srun`); without a launcher it is a job of one
/// rank. Every collective is *checked*: before any data moves, the ranks exchange what they were
/// called with (which collective, in which order, dtype, shape, root, operator) and fail together
/// with ``DistributedError/mismatch(collective:field:values:)`` when they disagree, instead of
/// reading each other's buffers wrongly or waiting forever. Every collective has a deadline
/// (``timeout``): a dead or stuck peer is ``DistributedError/timeout(collective:sequence:seconds:)``,
/// not a hang; the communicator is unusable afterwards and the process ends the job with
/// `MPI_Abort` at exit.
///
/// Collectives may be called from any thread, one at a time (a lock serializes them); every rank
/// must call the same collectives in the same order.
///
/// `@unchecked Sendable`: every mutable field is read and written under `lock` (the scratch
/// buffers under `scratchLock`); the MPI handles are immutable after `world(timeout:)`.
public final class Communicator: @unchecked Sendable {
    /// This process's rank, `0..<size`.
    public let rank: Int
    /// The number of ranks.
    public let size: Int
    /// Seconds a collective may take before it fails with ``DistributedError/timeout(collective:sequence:seconds:)``
    /// (``setTimeout(_:)`` changes it).
    public var timeout: Double { lock.withLock { deadlineSeconds } }

    /// Sets ``timeout`` for the collectives that start afterwards.
    ///
    /// - Throws: ``DistributedError/invalidArgument(field:value:limit:)`` unless `seconds` is positive and finite.
    public func setTimeout(_ seconds: Double) throws {
        try Self.validate(timeout: seconds)
        lock.withLock { deadlineSeconds = seconds }
    }

    private static func validate(timeout: Double) throws {
        guard timeout.isFinite, timeout > 0 else {
            throw DistributedError.invalidArgument(field: "timeout", value: "\(timeout)", limit: "must be positive and finite (seconds)")
        }
    }

    private let communicator: MPI_Comm?
    private let handles: MPIRuntime.Handles
    private let lock = NSLock()
    private var deadlineSeconds: Double
    private var sequence: Int64 = 0
    private var unusable: String?
    private let scratchLock = NSLock()
    private var scratchBounds: [Int16] = [], scratchTotals: [Int128] = [], scratchLimbs: [Int64] = []

    /// The job's world communicator (every rank), starting MPI if it is not started.
    ///
    /// - Parameter timeout: seconds each collective may take (positive and finite).
    /// - Throws: ``DistributedError/mpi(function:code:message:)`` when MPI cannot start;
    ///   ``DistributedError/invalidArgument(field:value:limit:)`` for a bad timeout.
    public static func world(timeout: Double = 300) throws -> Communicator {
        try validate(timeout: timeout)
        let handles = try MPIRuntime.start()
        var rank: Int32 = 0, size: Int32 = 0
        try MPIRuntime.check(MPI_Comm_rank(adjoint_mpi_comm_world(), &rank), "MPI_Comm_rank")
        try MPIRuntime.check(MPI_Comm_size(adjoint_mpi_comm_world(), &size), "MPI_Comm_size")
        return Communicator(communicator: adjoint_mpi_comm_world(), rank: Int(rank), size: Int(size), handles: handles, timeout: timeout)
    }

    private init(communicator: MPI_Comm?, rank: Int, size: Int, handles: MPIRuntime.Handles, timeout: Double) {
        self.communicator = communicator
        self.rank = rank
        self.size = size
        self.handles = handles
        deadlineSeconds = timeout
    }

    /// How many collectives this communicator has completed or started.
    public var collectiveCount: Int64 { lock.withLock { sequence } }

    /// Elementwise reductions.
    public enum ReductionOperator: Int64, Sendable, CaseIterable {
        case sum = 1, max, min
    }

    // MARK: Collectives

    /// Waits until every rank has called `barrier`.
    public func barrier() throws {
        try collective("barrier", kind: 1, tensor: nil) { comm, request in
            MPI_Ibarrier(comm, request)
        }
    }

    /// `root`'s tensor on every rank. Every rank passes a tensor of the same dtype and shape (the
    /// others' values are ignored).
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws -> Tensor {
        try checkRoot(root, "broadcast")
        let result = copy(of: tensor)
        let type = try datatype(tensor.dtype, "broadcast")
        let count = try elementCount(tensor, "broadcast")
        try collective("broadcast", kind: 2, tensor: tensor, root: Int64(root)) { comm, request in
            MPI_Ibcast(result.rawPointer, count, type, Int32(root), comm, request)
        }
        return result
    }

    /// The elementwise `op` of every rank's tensor (same dtype and shape everywhere), on every rank.
    ///
    /// The sum is MPI's: its rounding depends on the number of ranks and the algorithm. For a sum
    /// that is bitwise the same for any number of ranks use ``reproducibleSum(_:shape:dtype:)``.
    public func allReduce(_ tensor: Tensor, _ op: ReductionOperator = .sum) throws -> Tensor {
        let (result, type, count, mpiOp) = try allReduceArguments(tensor, op, "allReduce")
        try collective("allReduce", kind: 3, tensor: tensor, operation: op.rawValue) { comm, request in
            MPI_Iallreduce(tensor.rawPointer, result.rawPointer, count, type, mpiOp, comm, request)
        }
        return result
    }

    /// Every rank's tensor (same dtype and shape everywhere), concatenated in rank order along a
    /// new leading axis of length ``size``.
    public func allGather(_ tensor: Tensor) throws -> Tensor {
        let result = Tensor(uninitialized: [size] + tensor.shape, dtype: tensor.dtype)
        let type = try datatype(tensor.dtype, "allGather")
        let count = try elementCount(tensor, "allGather")
        try collective("allGather", kind: 4, tensor: tensor) { comm, request in
            MPI_Iallgather(tensor.rawPointer, count, type, result.rawPointer, count, type, comm, request)
        }
        return result
    }

    /// The elementwise `op` of every rank's tensor, split along the leading axis: rank `r` receives
    /// rows `r·n/size ..< (r+1)·n/size`. The leading axis must divide evenly by ``size``.
    public func reduceScatter(_ tensor: Tensor, _ op: ReductionOperator = .sum) throws -> Tensor {
        guard let rows = tensor.shape.first, rows % size == 0 else {
            throw DistributedError.invalidArgument(field: "reduceScatter's leading axis", value: tensor.shape.first.map(String.init) ?? "none (a scalar)",
                                                   limit: "must be divisible by the \(size) ranks")
        }
        let result = Tensor(uninitialized: [rows / size] + tensor.shape.dropFirst(), dtype: tensor.dtype)
        let type = try datatype(tensor.dtype, "reduceScatter")
        let count = try elementCount(result, "reduceScatter")
        let mpiOp = Self.mpiOperator(op)
        try collective("reduceScatter", kind: 5, tensor: tensor, operation: op.rawValue) { comm, request in
            MPI_Ireduce_scatter_block(tensor.rawPointer, result.rawPointer, count, type, mpiOp, comm, request)
        }
        return result
    }

    /// The sum of every rank's `contributions` (each of `shape` and `dtype`, float32 or float64;
    /// a rank may have none), on every rank, bitwise the same for any number of ranks and any
    /// distribution of the contributions among them: see ``ReproducibleSum``. Three collectives
    /// (check, grid, totals); moves 2 + 24 bytes per element besides the check.
    public func reproducibleSum(_ contributions: [Tensor], shape: [Int], dtype: DType) throws -> Tensor {
        guard dtype == .float32 || dtype == .float64 else { throw DistributedError.unsupportedDType(collective: "reproducibleSum", dtype: "\(dtype)") }
        let template = Tensor(uninitialized: shape, dtype: dtype)
        let count = try elementCount(template, "reproducibleSum")
        // Local problems are shared in the check, so every rank fails together rather than some waiting.
        var localProblem: DistributedError?
        do { try ReproducibleSum.validate(contributions, shape: shape, dtype: dtype) } catch let error as DistributedError { localProblem = error }
        let gathered = try check("reproducibleSum", kind: 6, tensor: template, free: [localProblem == nil ? Int64(contributions.count) : -1])
        let counts = gathered.map { $0[0] }
        if let failed = counts.firstIndex(of: -1) {
            throw localProblem ?? DistributedError.invalidContributions(detail: "rank \(failed)'s contributions are invalid")
        }
        guard 3 * template.elementCount <= Int(Int32.max) else {
            throw DistributedError.invalidArgument(field: "reproducibleSum's element count", value: "\(template.elementCount)", limit: "at most \(Int(Int32.max) / 3) (three 64-bit words per element in one MPI call)")
        }
        guard counts.reduce(0, +) <= Int64(ReproducibleSum.maximumContributions) else {
            throw DistributedError.invalidContributions(detail: "\(counts.reduce(0, +)) contributions in all exceed the limit of \(ReproducibleSum.maximumContributions)")
        }
        // The largest sum's buffers are kept for the next (a gradient is summed every step).
        scratchLock.lock()
        defer { scratchLock.unlock() }
        let n = template.elementCount
        if scratchBounds.count < n { scratchBounds = [Int16](repeating: 0, count: n) }
        if scratchTotals.count < n { scratchTotals = [Int128](repeating: 0, count: n) }
        if scratchLimbs.count < 3 * n { scratchLimbs = [Int64](repeating: 0, count: 3 * n) }
        return try scratchBounds.withUnsafeMutableBufferPointer { allBounds in
            try scratchTotals.withUnsafeMutableBufferPointer { allTotals in
                try scratchLimbs.withUnsafeMutableBufferPointer { allLimbs in
                    let bounds = UnsafeMutableBufferPointer(rebasing: allBounds[0..<n]), totals = UnsafeMutableBufferPointer(rebasing: allTotals[0..<n])
                    let limbs = UnsafeMutableBufferPointer(rebasing: allLimbs[0..<(3 * n)])
                    ReproducibleSum.computeBounds(of: contributions, into: bounds)
                    try run("reproducibleSum", sequence: collectiveCount) { comm, request in
                        MPI_Iallreduce(adjoint_mpi_in_place(), bounds.baseAddress, count, adjoint_mpi_int16(), handles.boundsCombine, comm, request)
                    }
                    ReproducibleSum.accumulate(contributions, bounds: UnsafeBufferPointer(bounds), into: totals, startingFromZero: true)
                    // Across ranks the totals travel as three 64-bit limbs added by MPI's own integer sum.
                    ReproducibleSum.split(UnsafeBufferPointer(totals), into: limbs)
                    try run("reproducibleSum", sequence: collectiveCount) { comm, request in
                        MPI_Iallreduce(adjoint_mpi_in_place(), limbs.baseAddress, Int32(3 * n), adjoint_mpi_int64(), adjoint_mpi_sum(), comm, request)
                    }
                    ReproducibleSum.join(UnsafeBufferPointer(limbs), into: totals)
                    return try ReproducibleSum.round(UnsafeBufferPointer(totals), bounds: UnsafeBufferPointer(bounds), dtype: dtype, shape: shape)
                }
            }
        }
    }

    // MARK: Machinery

    /// Checks the call against the other ranks', then starts it with `start` and waits for it.
    private func collective(_ name: String, kind: Int64, tensor: Tensor?, root: Int64 = -1, operation: Int64 = 0,
                            start: (MPI_Comm?, UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        _ = try check(name, kind: kind, tensor: tensor, root: root, operation: operation, free: [])
        try run(name, sequence: sequence, start)
    }

    /// The collectives' names, by the `kind` each passes to ``check(_:kind:tensor:root:operation:free:)``.
    private static let collectiveNames = [1: "barrier", 2: "broadcast", 3: "allReduce", 4: "allGather", 5: "reduceScatter", 6: "reproducibleSum"]
    /// Dimensions of a shape carried in the descriptor itself (a longer shape's rest is hashed).
    private static let describedDimensions = 6

    /// All-gathers the descriptor of this call (and `free` per-rank values) and throws
    /// ``DistributedError/mismatch(collective:field:values:)`` on the first field the ranks
    /// disagree on. Returns every rank's free values.
    private func check(_ name: String, kind: Int64, tensor: Tensor?, root: Int64 = -1, operation: Int64 = 0, free: [Int64]) throws -> [[Int64]] {
        let next = lock.withLock { () -> Int64 in sequence += 1; return sequence }
        let shape = tensor?.shape ?? []
        var tailHash: UInt64 = 14_695_981_039_346_656_037
        for extent in shape.dropFirst(Self.describedDimensions) { tailHash = (tailHash ^ UInt64(truncatingIfNeeded: extent)) &* 1_099_511_628_211 }
        let dimensions = (0..<Self.describedDimensions).map { $0 < shape.count ? Int64(shape[$0]) : -1 }
        // [order, collective, dtype, element count, root, operator, shape rank, dimensions…, tail hash, free…]
        let described: [Int64] = [next, kind, tensor.map { Self.dtypeCode($0.dtype) } ?? 0, Int64(tensor?.elementCount ?? 0), root, operation,
                                  Int64(shape.count)] + dimensions + [Int64(bitPattern: tailHash)]
        let descriptor = described + free
        let width = descriptor.count
        var all = [Int64](repeating: 0, count: width * size)
        try run(name, sequence: next) { comm, request in
            descriptor.withUnsafeBytes { mine in
                all.withUnsafeMutableBytes { MPI_Iallgather(mine.baseAddress, Int32(width), adjoint_mpi_int64(), $0.baseAddress, Int32(width), adjoint_mpi_int64(), comm, request) }
            }
        }
        let rows = (0..<size).map { Array(all[($0 * width)..<(($0 + 1) * width)]) }
        func shapeText(_ row: [Int64]) -> String {
            let rank = Int(row[6])
            let shown = row[7..<(7 + min(rank, Self.describedDimensions))].map(String.init).joined(separator: ", ")
            return "[" + shown + (rank > Self.describedDimensions ? ", … (\(rank) axes, hash \(String(UInt64(bitPattern: row[7 + Self.describedDimensions]), radix: 16)))" : "") + "]"
        }
        // Compared in this order; each field's columns of the descriptor and how a rank's value reads.
        let fields: [(name: String, columns: [Int], text: ([Int64]) -> String)] = [
            ("collective order", [0], { "#\($0[0])" }),
            ("collective", [1], { Self.collectiveNames[Int($0[1])] ?? "\($0[1])" }),
            ("dtype", [2], { row in DType.allCases.first { Self.dtypeCode($0) == row[2] }.map { "\($0)" } ?? "none" }),
            ("shape", [3] + Array(6..<described.count), shapeText),
            ("root", [4], { "\($0[4])" }),
            ("operator", [5], { row in ReductionOperator(rawValue: row[5]).map { "\($0)" } ?? "none" }),
        ]
        for field in fields where rows.contains(where: { row in field.columns.contains { row[$0] != rows[0][$0] } }) {
            throw DistributedError.mismatch(collective: name, field: field.name, values: rows.map(field.text))
        }
        return rows.map { Array($0[described.count...]) }
    }

    /// Starts one nonblocking MPI call and polls it to completion or the deadline.
    private func run(_ name: String, sequence: Int64, _ start: (MPI_Comm?, UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        lock.lock()
        defer { lock.unlock() }
        var request = try begin(name, start)
        try complete(&request, name: name, sequence: sequence, began: DispatchTime.now().uptimeNanoseconds)
    }

    /// Starts a nonblocking call (the lock held).
    private func begin(_ name: String, _ start: (MPI_Comm?, UnsafeMutablePointer<MPI_Request?>) -> Int32) throws -> MPI_Request? {
        if let unusable { throw DistributedError.communicatorUnusable(reason: unusable) }
        var request: MPI_Request? = adjoint_mpi_request_null()
        try MPIRuntime.check(start(communicator, &request), name)
        return request
    }

    /// Polls `request` until it completes or `deadlineSeconds` after `began` (the lock held).
    private func complete(_ request: inout MPI_Request?, name: String, sequence: Int64, began: UInt64) throws {
        if let unusable { throw DistributedError.communicatorUnusable(reason: unusable) }
        let limit = UInt64(min(deadlineSeconds, 1e9) * 1e9)
        var done: Int32 = 0
        var polls = 0
        while true {
            try MPIRuntime.check(MPI_Test(&request, &done, adjoint_mpi_status_ignore()), "MPI_Test (\(name))")
            if done != 0 { return }
            polls += 1
            if polls & 255 == 0 {
                let waited = DispatchTime.now().uptimeNanoseconds - began
                if waited > limit {
                    unusable = "\(name) (collective #\(sequence)) timed out after \(deadlineSeconds) s"
                    MPIRuntime.markBroken()
                    throw DistributedError.timeout(collective: name, sequence: sequence, seconds: deadlineSeconds)
                }
                // Yield the core (with more ranks than cores a spinning rank starves the one it waits
                // for); after a second of waiting, sleep between polls instead of spinning.
                if waited > 1_000_000_000 { usleep(50) } else { sched_yield() }
            }
        }
    }

    /// An all-reduce started by ``startAllReduce(_:_:)`` and not yet waited for.
    ///
    /// `@unchecked Sendable`: `request` and `finished` change only under the communicator's lock.
    public final class PendingAllReduce: @unchecked Sendable {
        private let communicator: Communicator
        private var request: MPI_Request?
        private let result: Tensor
        /// Kept alive until MPI has read it.
        private let source: Tensor
        private let sequence: Int64
        private let began: UInt64
        private var finished = false

        fileprivate init(communicator: Communicator, request: MPI_Request?, source: Tensor, result: Tensor, sequence: Int64) {
            self.communicator = communicator
            self.source = source
            self.request = request
            self.result = result
            self.sequence = sequence
            began = DispatchTime.now().uptimeNanoseconds
        }

        /// Lets MPI move the reduction on; whether it has completed.
        public func test() throws -> Bool {
            try communicator.lock.withLock {
                guard !finished else { return true }
                var done: Int32 = 0
                try MPIRuntime.check(MPI_Test(&request, &done, adjoint_mpi_status_ignore()), "MPI_Test (startAllReduce)")
                finished = done != 0
                return finished
            }
        }

        /// The reduced tensor, once every rank has contributed; fails with
        /// ``DistributedError/timeout(collective:sequence:seconds:)`` when that does not happen
        /// within the communicator's timeout counted from the start.
        public func wait() throws -> Tensor {
            try communicator.lock.withLock {
                if !finished { try communicator.complete(&request, name: "startAllReduce", sequence: sequence, began: began) }
                finished = true
            }
            return result
        }
    }

    /// Starts an all-reduce and returns at once, so that computation can go on while it runs
    /// (call ``PendingAllReduce/test()`` now and then to let MPI progress it, and
    /// ``PendingAllReduce/wait()`` for the result). Unlike the other collectives it is not checked
    /// against the other ranks' calls: every rank must start the same all-reduces, of the same
    /// dtype and shape, in the same order. ``DataParallel`` checks its layout once, then uses this
    /// for every bucket.
    public func startAllReduce(_ tensor: Tensor, _ op: ReductionOperator = .sum) throws -> PendingAllReduce {
        let (result, type, count, mpiOp) = try allReduceArguments(tensor, op, "startAllReduce")
        return try lock.withLock {
            sequence += 1
            let request = try begin("startAllReduce") { comm, request in
                MPI_Iallreduce(tensor.rawPointer, result.rawPointer, count, type, mpiOp, comm, request)
            }
            return PendingAllReduce(communicator: self, request: request, source: tensor, result: result, sequence: sequence)
        }
    }

    /// The result tensor and MPI's datatype, count and operator for an all-reduce of `tensor`.
    private func allReduceArguments(_ tensor: Tensor, _ op: ReductionOperator, _ name: String) throws
        -> (result: Tensor, type: MPI_Datatype?, count: Int32, op: MPI_Op?) {
        (Tensor(uninitialized: tensor.shape, dtype: tensor.dtype), try datatype(tensor.dtype, name), try elementCount(tensor, name), Self.mpiOperator(op))
    }

    private static func mpiOperator(_ op: ReductionOperator) -> MPI_Op? {
        switch op {
        case .sum: return adjoint_mpi_sum()
        case .max: return adjoint_mpi_max()
        case .min: return adjoint_mpi_min()
        }
    }

    private func checkRoot(_ root: Int, _ name: String) throws {
        guard (0..<size).contains(root) else {
            throw DistributedError.invalidArgument(field: "\(name)'s root", value: "\(root)", limit: "must be a rank in 0..<\(size)")
        }
    }

    private func datatype(_ dtype: DType, _ name: String) throws -> MPI_Datatype? {
        switch dtype {
        case .float32: return adjoint_mpi_float()
        case .float64: return adjoint_mpi_double()
        case .int64: return adjoint_mpi_int64()
        case .int32: return adjoint_mpi_int32()
        default: throw DistributedError.unsupportedDType(collective: name, dtype: "\(dtype)")
        }
    }

    private static func dtypeCode(_ dtype: DType) -> Int64 {
        switch dtype {
        case .float64: return 1
        case .float32: return 2
        case .float16: return 3
        case .bfloat16: return 4
        case .int64: return 5
        case .int32: return 6
        case .bool: return 7
        }
    }

    private func elementCount(_ tensor: Tensor, _ name: String) throws -> Int32 {
        guard tensor.elementCount <= Int(Int32.max) else {
            throw DistributedError.invalidArgument(field: "\(name)'s element count", value: "\(tensor.elementCount)", limit: "MPI counts are at most \(Int32.max)")
        }
        return Int32(tensor.elementCount)
    }

    /// The tensor's elements in fresh storage of its own.
    private func copy(of tensor: Tensor) -> Tensor {
        let result = Tensor(uninitialized: tensor.shape, dtype: tensor.dtype)
        result.rawPointer.copyMemory(from: tensor.rawPointer, byteCount: tensor.elementCount * tensor.dtype.byteSize)
        return result
    }
}
