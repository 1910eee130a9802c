extension Tensor {
    /// Sum over `axes` (all axes when empty); pairwise and deterministic.
    public func sum(axes: [Int] = [], keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.sum, .reduction(axes: axes, keepDims: keepDims), [self])
    }
    public func mean(axes: [Int] = [], keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.mean, .reduction(axes: axes, keepDims: keepDims), [self])
    }
    public func max(axes: [Int] = [], keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.max, .reduction(axes: axes, keepDims: keepDims), [self])
    }
    public func min(axes: [Int] = [], keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.min, .reduction(axes: axes, keepDims: keepDims), [self])
    }
    /// `log Σ exp(x)` over `axes`, shifted by the maximum (finite for finite inputs).
    public func logsumexp(axes: [Int] = [], keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.logsumexp, .reduction(axes: axes, keepDims: keepDims), [self])
    }
    /// Index (i64) of the first maximum along `axis`.
    public func argmax(axis: Int, keepDims: Bool = false) throws -> Tensor {
        try dispatch1(.argmax, .axisKeepDims(axis: axis, keepDims: keepDims), [self])
    }
}

extension Tensor {
    /// `softmax` along `axis` (max-shifted).
    public func softmax(axis: Int = -1) throws -> Tensor { try dispatch1(.softmax, .axis(axis), [self]) }
    /// `log(softmax)` along `axis`, computed as `x - logsumexp(x)`.
    public func logSoftmax(axis: Int = -1) throws -> Tensor { try dispatch1(.logSoftmax, .axis(axis), [self]) }

    /// Per-example cross-entropy of `logits` (classes on the last axis) against integer `labels`.
    public func crossEntropy(labels: Tensor) throws -> Tensor {
        try dispatch1(.crossEntropyWithLogits, .none, [self, labels])
    }

    /// `mean((self - target)²)`; shapes must be equal.
    public func meanSquaredError(_ target: Tensor) throws -> Tensor {
        try dispatch1(.meanSquaredError, .none, [self, target])
    }
}
