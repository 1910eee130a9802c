import AdjointAutodiff
import AdjointTensor
import Foundation

/// f_θ: a score per object from its normalised features; the lowest-scoring candidate is evicted.
/// Linear (`hidden == 0`: `w·x + b`) or a small MLP (`tanh` hidden layer). Float64.
public struct EvictionScorer: ParameterCollection, Sendable {
    public var hidden: Int
    /// Linear: `w` [d, 1], `b` [1]. MLP: `w1` [d, h], `b1` [h], `w2` [h, 1], `b2` [1].
    public var w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor

    public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        if hidden == 0 {
            try visit("w", &w1); try visit("b", &b1)
        } else {
            try visit("w1", &w1); try visit("b1", &b1); try visit("w2", &w2); try visit("b2", &b2)
        }
    }

    /// A fresh scorer: linear weights start as "evict the least recently used" (score = −recency),
    /// MLP weights small and random from `key`.
    public init(hidden: Int = 0, key: RandomKey = RandomKey(seed: 1)) throws {
        let d = ObjectFeatures.count
        self.hidden = hidden
        if hidden == 0 {
            var w = [Double](repeating: 0, count: d)
            w[0] = -1
            w1 = try Tensor(w, shape: [d, 1]); b1 = try Tensor.zeros([1])
            w2 = try Tensor.zeros([1, 1]); b2 = try Tensor.zeros([1])
        } else {
            let bound1 = (6.0 / Double(d + hidden)).squareRoot(), bound2 = (6.0 / Double(hidden + 1)).squareRoot()
            w1 = try Tensor.uniform([d, hidden], key: key.fold(in: 1), low: -bound1, high: bound1)
            b1 = try Tensor.zeros([hidden])
            w2 = try Tensor.uniform([hidden, 1], key: key.fold(in: 2), low: -bound2, high: bound2)
            b2 = try Tensor.zeros([1])
        }
    }

    /// Scores of feature rows `x` [n, d] → [n] (differentiable).
    public func scores(_ x: Tensor) throws -> Tensor {
        if hidden == 0 { return try (x.matmul(w1) + b1).reshaped([-1]) }
        return try ((x.matmul(w1) + b1).tanh().matmul(w2) + b2).reshaped([-1])
    }

    /// The weights as plain numbers, for scoring inside the hard simulator without tensors.
    public func compiled() -> CompiledScorer { CompiledScorer(self) }
}

/// ``EvictionScorer`` evaluated with scalar loops (no allocation per call): what the hard policy
/// runs per eviction. Agrees with ``EvictionScorer/scores(_:)`` to rounding.
public struct CompiledScorer: Sendable {
    let hidden: Int, d: Int
    let w1: [Double], b1: [Double], w2: [Double], b2: Double

    init(_ s: EvictionScorer) {
        hidden = s.hidden
        d = ObjectFeatures.count
        w1 = s.w1.doubles; b1 = s.b1.doubles; w2 = s.w2.doubles; b2 = s.b2.doubles.first ?? 0
    }

    @inline(__always)
    public func score(_ x: UnsafePointer<Double>) -> Double {
        if hidden == 0 {
            var s = b1[0]
            for j in 0..<d { s += w1[j] * x[j] }
            return s
        }
        var total = b2
        for k in 0..<hidden {
            var a = b1[k]
            for j in 0..<d { a += x[j] * w1[j * hidden + k] }
            total += Foundation.tanh(a) * w2[k]
        }
        return total
    }
}
