/// A key and a counter: a stream of random tensors whose position is explicit state.
///
/// Each draw reads Philox blocks starting at ``counter`` and then moves the counter past them (one
/// block per element reserved, more than any draw uses), so consecutive draws never overlap and a
/// stream restored from a checkpoint continues with exactly the numbers the original would have drawn.
public struct RandomStream: Codable, Hashable, Sendable {
    public var key: RandomKey
    /// The next Philox block this stream will read.
    public private(set) var counter: UInt64

    public init(key: RandomKey, counter: UInt64 = 0) {
        self.key = key
        self.counter = counter
    }

    /// Uniform numbers in `[low, high)`.
    public mutating func uniform(_ shape: [Int], low: Double = 0, high: Double = 1, dtype: DType = .float64) throws -> Tensor {
        let t = try Tensor.uniform(shape, key: key, counter: counter, low: low, high: high, dtype: dtype)
        counter &+= UInt64(Swift.max(1, t.elementCount))
        return t
    }

    /// Normal numbers with `mean` and standard deviation `std`.
    public mutating func normal(_ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float64) throws -> Tensor {
        let t = try Tensor.normal(shape, key: key, counter: counter, mean: mean, std: std, dtype: dtype)
        counter &+= UInt64(Swift.max(1, t.elementCount))
        return t
    }
}
