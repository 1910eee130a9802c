import AdjointAutodiff
import AdjointTensor
import Foundation

/// Data-parallel gradients with communication overlapped with the backward pass, like PyTorch's
/// `DistributedDataParallel`: each rank differentiates the loss of its own micro-batch, and the
/// gradients are averaged over the ranks by all-reduces of *buckets* (1 MiB of parameters by default
/// each) that start as soon as every gradient in the bucket is final — while the backward pass is
/// still computing the gradients of earlier layers.
///
/// ```swift
/// let communicator = try Communicator.world()
/// var model = try communicator.broadcast(parameters: initialModel)     // rank 0's parameters everywhere
/// let parallel = try DataParallel(communicator: communicator, parameters: model)
/// for step in steps {
///     for micro in microBatches.dropLast() { try parallel.accumulate(model) { try loss($0, micro) } }  // no communication
///     let (loss, gradient) = try parallel.synchronize(model) { try loss($0, microBatches.last!) }
///     try optimizer.update(&model, along: gradient)                      // the same update on every rank
/// }
/// ```
///
/// The gradient is the mean over ranks and micro-batches, summed by MPI in its own order: it can
/// differ in the last bits between rank counts. For a gradient that is bitwise the same for any
/// number of ranks use ``Communicator/meanGradient(of:batch:summation:loss:)`` with
/// ``GradientSummation/reproducible``.
public final class DataParallel<P: ParameterCollection> {
    public let communicator: Communicator
    /// Parameter indices (in the collection's visiting order) of each bucket, in the order the
    /// buckets are reduced: the last parameters first, as the backward pass finishes them.
    public let buckets: [[Int]]
    /// Whether buckets start during the backward pass (`false`: all after it, to measure what the
    /// overlap hides).
    public let overlap: Bool
    /// What the last ``synchronize(_:loss:)`` measured.
    public private(set) var statistics = Statistics()

    public struct Statistics: Sendable {
        /// Seconds from the start of the backward pass to its end.
        public var backwardSeconds = 0.0
        /// Seconds spent after the backward pass waiting for the buckets' all-reduces.
        public var waitSeconds = 0.0
        /// Buckets whose all-reduce started before the backward pass ended.
        public var bucketsStartedDuringBackward = 0
        /// Bytes all-reduced per synchronization.
        public var bytes = 0
    }

    private let shapes: [[Int]]
    private let dtypes: [DType]
    private let bucketOf: [Int]
    /// Gradients summed over the micro-batches since the last synchronization (nil: zero).
    private var accumulated: [Tensor?]
    private var microBatches = 0
    private var lossSum = 0.0

    /// Lays out the buckets and checks, across ranks, that every rank has the same parameters
    /// (count, dtypes, shapes).
    ///
    /// - Parameters:
    ///   - communicator: the ranks that share the work.
    ///   - parameters: a collection of the model's structure (its values are not kept).
    ///   - bucketBytes: the size a bucket grows to before the next starts (1 KiB ... 1 GiB).
    ///   - overlap: start each bucket's all-reduce as soon as it is final (the default), or only
    ///     after the backward pass.
    /// - Throws: ``DistributedError/mismatch(collective:field:values:)`` when the ranks' parameters
    ///   differ; ``DistributedError/unsupportedDType(collective:dtype:)`` for a parameter that is
    ///   not float32 or float64; ``DistributedError/invalidArgument(field:value:limit:)``.
    public init(communicator: Communicator, parameters: P, bucketBytes: Int = 1 << 20, overlap: Bool = true) throws {
        guard (1024...(1 << 30)).contains(bucketBytes) else {
            throw DistributedError.invalidArgument(field: "bucketBytes", value: "\(bucketBytes)", limit: "must be in 1024...\(1 << 30)")
        }
        let tensors = parameters.tensors
        for tensor in tensors where tensor.dtype != .float32 && tensor.dtype != .float64 {
            throw DistributedError.unsupportedDType(collective: "DataParallel", dtype: "\(tensor.dtype)")
        }
        self.communicator = communicator
        self.overlap = overlap
        shapes = tensors.map(\.shape)
        dtypes = tensors.map(\.dtype)
        accumulated = Array(repeating: nil, count: tensors.count)
        // Structure fingerprint: every rank must reduce the same buckets in the same order.
        var hash: UInt64 = 14_695_981_039_346_656_037
        for tensor in tensors {
            for word in [Int64(tensor.dtype == .float32 ? 32 : 64), Int64(tensor.rank)] + tensor.shape.map(Int64.init) {
                hash = (hash ^ UInt64(bitPattern: word)) &* 1_099_511_628_211
            }
        }
        let fingerprint = try communicator.allGather(Tensor([Int64(tensors.count), Int64(bitPattern: hash), Int64(bucketBytes)]))
            .scalars(as: Int64.self)
        let rows = (0..<communicator.size).map { Array(fingerprint[(3 * $0)..<(3 * $0 + 3)]) }
        for (column, field) in ["parameter count", "parameter shapes and dtypes", "bucketBytes"].enumerated()
        where rows.contains(where: { $0[column] != rows[0][column] }) {
            throw DistributedError.mismatch(collective: "DataParallel", field: field,
                                            values: rows.map { column == 1 ? String(UInt64(bitPattern: $0[column]), radix: 16) : "\($0[column])" })
        }
        // Buckets in reverse visiting order, one dtype each.
        var buckets: [[Int]] = [], current: [Int] = [], bytes = 0
        for index in tensors.indices.reversed() {
            let size = tensors[index].elementCount * tensors[index].dtype.byteSize
            if !current.isEmpty, bytes + size > bucketBytes || tensors[current[0]].dtype != tensors[index].dtype {
                buckets.append(current)
                (current, bytes) = ([], 0)
            }
            current.append(index)
            bytes += size
        }
        if !current.isEmpty { buckets.append(current) }
        self.buckets = buckets
        var bucketOf = Array(repeating: 0, count: tensors.count)
        for (bucket, members) in buckets.enumerated() { for member in members { bucketOf[member] = bucket } }
        self.bucketOf = bucketOf
    }

    /// Differentiates `loss` at `parameters` (this rank's micro-batch) and adds the gradient to the
    /// local sum, without communicating (PyTorch's `no_sync`). Returns the local loss.
    @discardableResult
    public func accumulate(_ parameters: P, loss: (P) throws -> Tensor) throws -> Double {
        try checkStructure(parameters)
        let (value, gradient) = try valueWithGradient(at: parameters, of: loss)
        for (index, tensor) in gradient.tensors.enumerated() { try add(tensor, at: index) }
        microBatches += 1
        let local = try value.item()
        lossSum += local
        return local
    }

    /// The last micro-batch of a step: differentiates `loss` at `parameters`, all-reducing each
    /// bucket as soon as its gradients are final, and returns the loss and gradient averaged over
    /// all the ranks' micro-batches since the last synchronization. Every rank must call it the
    /// same number of times (``accumulate(_:loss:)`` as often as each likes).
    public func synchronize(_ parameters: P, loss: (P) throws -> Tensor) throws -> (loss: Double, gradient: P) {
        try checkStructure(parameters)
        var remaining = buckets.map(\.count)
        var pending: [Communicator.PendingAllReduce?] = Array(repeating: nil, count: buckets.count)
        var nextToStart = 0
        var startedDuringBackward = 0
        // Buckets start strictly in order (the same order on every rank), each once all its members are final.
        func startReadyBuckets() throws {
            while nextToStart < buckets.count, remaining[nextToStart] == 0 {
                pending[nextToStart] = try communicator.startAllReduce(flatten(bucket: nextToStart))
                nextToStart += 1
            }
        }
        let began = DispatchTime.now().uptimeNanoseconds
        let (value, _) = try valueWithGradient(at: parameters, of: loss) { index, gradient in
            if let gradient { try add(gradient, at: index) }
            remaining[bucketOf[index]] -= 1
            guard overlap else { return }
            try startReadyBuckets()
            startedDuringBackward = nextToStart
            for request in pending.prefix(nextToStart) { _ = try request?.test() }  // MPI moves only when called
        }
        try startReadyBuckets()
        let ended = DispatchTime.now().uptimeNanoseconds
        microBatches += 1
        lossSum += try value.item()
        let totalLoss = try communicator.allReduce(Tensor([lossSum, Double(microBatches)]), .sum).doubles
        let divisor = totalLoss[1]   // micro-batches over all ranks (a rank may have accumulated more)
        var averaged = Array(repeating: Tensor?.none, count: shapes.count)
        for (bucket, members) in buckets.enumerated() {
            let reduced = try pending[bucket]!.wait()
            var offset = 0
            for member in members {
                averaged[member] = FlatTensors.slice(reduced, offset: offset, shape: shapes[member], dividedBy: divisor)
                offset += shapes[member].reduce(1, *)
            }
        }
        statistics = Statistics(backwardSeconds: Double(ended - began) / 1e9, waitSeconds: Double(DispatchTime.now().uptimeNanoseconds - ended) / 1e9,
                                bucketsStartedDuringBackward: startedDuringBackward,
                                bytes: zip(shapes, dtypes).reduce(0) { $0 + $1.0.reduce(1, *) * $1.1.byteSize })
        accumulated = Array(repeating: nil, count: shapes.count)
        microBatches = 0
        lossSum = 0
        return (totalLoss[0] / totalLoss[1], parameters.replacingTensors(with: averaged.map { $0! }))
    }

    private func checkStructure(_ parameters: P) throws {
        let tensors = parameters.tensors
        guard tensors.map(\.shape) == shapes, tensors.map(\.dtype) == dtypes else {
            throw DistributedError.invalidArgument(field: "parameters", value: "\(tensors.count) tensors \(tensors.map(\.shape))",
                                                   limit: "must have the structure DataParallel was made with (\(shapes.count) tensors \(shapes))")
        }
    }

    private func add(_ gradient: Tensor, at index: Int) throws {
        accumulated[index] = try accumulated[index].map { try $0 + gradient } ?? gradient
    }

    /// The bucket's accumulated gradients, one after another (zeros where none).
    private func flatten(bucket: Int) -> Tensor {
        let members = buckets[bucket]
        return FlatTensors.flatten(members.map { accumulated[$0] }, shapes: members.map { shapes[$0] }, dtype: dtypes[members[0]])
    }
}
