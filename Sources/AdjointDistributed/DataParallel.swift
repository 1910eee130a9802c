import AdjointAutodiff
import AdjointPolicies
import AdjointTensor

/// How gradients are summed across examples and ranks.
public enum GradientSummation: String, Sendable, CaseIterable {
    /// Per-example gradients added in order on each rank, then MPI's all-reduce: fast, but the last
    /// bits depend on the number of ranks.
    case plain
    /// Every per-example gradient goes into a ``ReproducibleSum`` across all ranks: the result is
    /// bitwise the same for any number of ranks.
    case reproducible
}

extension Communicator {
    /// `root`'s parameters on every rank (every rank passes a collection of the same structure).
    public func broadcast<P: ParameterCollection>(parameters: P, root: Int = 0) throws -> P {
        try parameters.mapTensors { try broadcast($0, root: root) }
    }

    /// This rank's share of `batch`: a contiguous slice, `⌊r·n/size⌋ ..< ⌊(r+1)·n/size⌋`.
    public func shard<C: RandomAccessCollection>(_ batch: C) -> C.SubSequence where C.Index == Int {
        let n = batch.count
        let lower = batch.startIndex + rank * n / size, upper = batch.startIndex + (rank + 1) * n / size
        return batch[lower..<upper]
    }

    /// The mean loss and mean gradient over a global `batch` of examples, on every rank: each rank
    /// differentiates `loss(model, example)` for the examples of its ``shard(_:)``, one example at a
    /// time, and the per-example values are summed across all ranks as `summation` says, then
    /// divided by the batch size. With ``GradientSummation/reproducible`` the result is bitwise the
    /// same for any number of ranks, provided `loss` depends only on the model and the example (give
    /// each example its own random stream).
    ///
    /// - Throws: ``DistributedError/unsupportedDType(collective:dtype:)`` for a parameter that is
    ///   not float32 or float64; an empty batch is ``DistributedError/invalidArgument(field:value:limit:)``;
    ///   errors of `loss`, of differentiation, and of the collectives.
    public func meanGradient<P: ParameterCollection>(
        of model: P, batch: [Int], summation: GradientSummation = .reproducible, loss: (P, Int) throws -> Tensor
    ) throws -> (loss: Double, gradient: P) {
        guard !batch.isEmpty else { throw DistributedError.invalidArgument(field: "batch", value: "empty", limit: "needs at least one example") }
        let parameters = model.tensors
        for tensor in parameters where tensor.dtype != .float32 && tensor.dtype != .float64 {
            throw DistributedError.unsupportedDType(collective: "meanGradient", dtype: "\(tensor.dtype)")
        }
        var losses: [Tensor] = [], gradients: [[Tensor]] = []
        for example in shard(batch) {
            let (value, gradient) = try valueWithGradient(at: model) { try loss($0, example) }
            losses.append(Tensor([try value.item()]))
            gradients.append(gradient.tensors)
        }
        let count = Double(batch.count)
        let totalLoss = try sum(losses, shape: [1], dtype: .float64, summation: summation).doubles[0] / count
        let total = try sumTensorLists(gradients, like: parameters, summation: summation, dividedBy: count)
        return (totalLoss, model.replacingTensors(with: total))
    }

    /// The elementwise sum over every rank's `lists` (each list holds tensors shaped like
    /// `template`; a rank may have none), divided by `divisor`, on every rank: one sum per dtype,
    /// over the lists' tensors of that dtype packed into one vector.
    func sumTensorLists(_ lists: [[Tensor]], like template: [Tensor], summation: GradientSummation, dividedBy divisor: Double = 1) throws -> [Tensor] {
        var result = template
        let groups = Dictionary(grouping: template.indices, by: { template[$0].dtype }).sorted { $0.key.rawValue < $1.key.rawValue }
        for (dtype, members) in groups {
            let shapes = members.map { template[$0].shape }
            let flat = lists.map { list in FlatTensors.flatten(members.map { list[$0] }, shapes: shapes, dtype: dtype) }
            let total = try sum(flat, shape: [shapes.reduce(0) { $0 + $1.reduce(1, *) }], dtype: dtype, summation: summation)
            var offset = 0
            for (member, shape) in zip(members, shapes) {
                result[member] = FlatTensors.slice(total, offset: offset, shape: shape, dividedBy: divisor)
                offset += shape.reduce(1, *)
            }
        }
        return result
    }

    private func sum(_ contributions: [Tensor], shape: [Int], dtype: DType, summation: GradientSummation) throws -> Tensor {
        switch summation {
        case .reproducible:
            return try reproducibleSum(contributions, shape: shape, dtype: dtype)
        case .plain:
            let local = Tensor(uninitialized: shape, dtype: dtype)
            local.rawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: local.elementCount * dtype.byteSize)
            for contribution in contributions {
                if dtype == .float32 { Self.addInPlace(local.pointer(Float.self), contribution.pointer(Float.self), local.elementCount) }
                else { Self.addInPlace(local.pointer(Double.self), contribution.pointer(Double.self), local.elementCount) }
            }
            return try allReduce(local, .sum)
        }
    }

    private static func addInPlace<T: BinaryFloatingPoint>(_ target: UnsafeMutablePointer<T>, _ source: UnsafeMutablePointer<T>, _ count: Int) {
        for index in 0..<count { target[index] += source[index] }
    }
}

/// Gradients packed into one 1-D tensor per group and back: the unit of an all-reduce.
enum FlatTensors {
    /// The tensors' elements one after another (zeros for a `nil` of `shapes[i]`), in `dtype`.
    static func flatten(_ tensors: [Tensor?], shapes: [[Int]], dtype: DType) -> Tensor {
        let result = Tensor(uninitialized: [shapes.reduce(0) { $0 + $1.reduce(1, *) }], dtype: dtype)
        var offset = 0
        for (tensor, shape) in zip(tensors, shapes) {
            let bytes = shape.reduce(1, *) * dtype.byteSize
            if let tensor {
                (result.rawPointer + offset).copyMemory(from: tensor.rawPointer, byteCount: bytes)
            } else {
                (result.rawPointer + offset).initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            }
            offset += bytes
        }
        return result
    }

    /// `shape`'s worth of `flat` from element `offset`, each element divided by `divisor` (in the
    /// tensor's dtype).
    static func slice(_ flat: Tensor, offset: Int, shape: [Int], dividedBy divisor: Double) -> Tensor {
        let result = Tensor(uninitialized: shape, dtype: flat.dtype)
        if flat.dtype == .float32 {
            let source = flat.pointer(Float.self) + offset, target = result.pointer(Float.self), d = Float(divisor)
            for index in 0..<result.elementCount { target[index] = source[index] / d }
        } else {
            let source = flat.pointer(Double.self) + offset, target = result.pointer(Double.self)
            for index in 0..<result.elementCount { target[index] = source[index] / divisor }
        }
        return result
    }
}

extension CacheTrainingParallelism {
    /// Data-parallel cache training over `communicator`'s ranks: sums through
    /// ``Communicator/reproducibleSum(_:shape:dtype:)`` (one per dtype per step), so every rank
    /// takes bitwise the same optimizer step.
    public init(communicator: Communicator) {
        self.init(rank: communicator.rank, size: communicator.size) { tensors in
            try communicator.sumTensorLists([tensors], like: tensors, summation: .reproducible)
        }
    }
}
