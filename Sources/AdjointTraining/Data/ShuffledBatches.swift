import AdjointTensor

/// Where a pass over shuffled data stands: the epoch and the next batch within it.
public struct DataPosition: Codable, Hashable, Sendable, CustomStringConvertible {
    public var epoch: Int
    public var batch: Int

    public init(epoch: Int = 0, batch: Int = 0) {
        self.epoch = epoch
        self.batch = batch
    }

    public var description: String { "epoch \(epoch), batch \(batch)" }
}

/// Mini-batches of example indices, reshuffled every epoch by a keyed permutation.
///
/// Epoch `e` visits the examples in the order of a Fisher–Yates shuffle driven by Philox under
/// `key.fold(in: e)`: a pure function of the key and the epoch, so restoring ``position`` from a
/// checkpoint resumes the exact sequence of batches. The last `count % batchSize` examples of each
/// epoch's order are dropped (every batch is full).
public struct ShuffledBatches: Sendable {
    public let count: Int
    public let batchSize: Int
    public let key: RandomKey
    /// The next batch to hand out.
    public private(set) var position: DataPosition
    private var order: [Int32]

    /// - Throws: ``TrainingError/invalidOption(name:value:expected:)`` when `batchSize` is not in
    ///   `1...count` or the position lies outside the epoch.
    public init(count: Int, batchSize: Int, key: RandomKey, position: DataPosition = DataPosition()) throws {
        guard count > 0, count <= Int(Int32.max) else {
            throw TrainingError.invalidOption(name: "example count", value: "\(count)", expected: "1 … \(Int32.max)")
        }
        guard batchSize > 0, batchSize <= count else {
            throw TrainingError.invalidOption(name: "batch size", value: "\(batchSize)", expected: "1 … \(count) (the example count)")
        }
        guard position.epoch >= 0, position.batch >= 0, position.batch < count / batchSize else {
            throw TrainingError.invalidOption(name: "data position", value: "\(position)", expected: "epoch ≥ 0 and batch in 0 ..< \(count / batchSize)")
        }
        self.count = count
        self.batchSize = batchSize
        self.key = key
        self.position = position
        self.order = ShuffledBatches.permutation(count, key: key.fold(in: UInt64(position.epoch)))
    }

    /// Full batches per epoch.
    public var batchesPerEpoch: Int { count / batchSize }

    /// The next batch's example indices (int64, shape `[batchSize]`); advances ``position``.
    public mutating func next() throws -> Tensor {
        let start = position.batch * batchSize
        let indices = try Tensor(order[start..<(start + batchSize)].map { Double($0) }, shape: [batchSize]).cast(to: .int64)
        position.batch += 1
        if position.batch == batchesPerEpoch {
            position = DataPosition(epoch: position.epoch + 1, batch: 0)
            order = ShuffledBatches.permutation(count, key: key.fold(in: UInt64(position.epoch)))
        }
        return indices
    }

    /// Fisher–Yates: for i = n−1 … 1, swap i with ⌊u·(i+1)⌋ where u is the 32-bit word of block i.
    static func permutation(_ n: Int, key: RandomKey) -> [Int32] {
        var order = (0..<Int32(n)).map { $0 }
        var i = n - 1
        while i > 0 {
            let word = key.bits(block: UInt64(i)).0
            let j = Int((UInt64(word) * UInt64(i + 1)) >> 32)
            order.swapAt(i, j)
            i -= 1
        }
        return order
    }
}
