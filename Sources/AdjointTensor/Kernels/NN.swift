import RealModule

extension Kernels {
    static func nn(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        switch (op, attributes) {
        case let (.softmax, .axis(axis)): return try softmax(inputs[0], axis: axis, log: false)
        case let (.logSoftmax, .axis(axis)): return try softmax(inputs[0], axis: axis, log: true)
        case (.crossEntropyWithLogits, .none): return try crossEntropy(inputs[0], inputs[1])
        case (.meanSquaredError, .none): return try meanSquaredError(inputs[0], inputs[1])
        default: throw badAttributes(op, attributes)
        }
    }

    /// softmax / log-softmax along `axis`, shifted by the maximum: finite for any finite input.
    static func softmax(_ x: Tensor, axis rawAxis: Int, log: Bool) throws -> Tensor {
        let op: OpCode = log ? .logSoftmax : .softmax
        try requireFloat(x, op: op)
        let axis = try ShapeRules.axis(rawAxis, rank: x.rank, op: op.rawValue)
        let (outer, extent, inner) = ShapeRules.split(x.shape, at: axis)
        let y = Tensor(uninitialized: x.shape, dtype: x.dtype)
        func run<T: KernelFloat>(_: T.Type) {
            let px = x.elements(T.self), py = y.elements(T.self)
            let lines = outer * inner
            let perChunk = Swift.max(1, Parallelism.elementChunk / Swift.max(1, extent))
            Parallelism.forEachRange(lines, chunkSize: perChunk) { range in
                for line in range {
                    let o = line / inner, i = line % inner
                    let base = o * extent * inner + i
                    var m = -T.infinity
                    for r in 0..<extent { m = MaxFn.apply(m, px[base + r * inner]) }
                    if !m.isFinite { m = m.isNaN ? m : 0 }
                    var s: T = 0
                    for r in 0..<extent {
                        let e = T.exp(px[base + r * inner] - m)
                        py[base + r * inner] = e
                        s += e
                    }
                    if log {
                        let ls = m + T.log(s)
                        for r in 0..<extent { py[base + r * inner] = px[base + r * inner] - ls }
                    } else {
                        let inv = 1 / s
                        for r in 0..<extent { py[base + r * inner] *= inv }
                    }
                }
            }
        }
        if x.dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return y
    }

    /// Per-example loss `logsumexp(logits[..., :]) - logits[..., label]`; classes on the last axis.
    static func crossEntropy(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        let op = OpCode.crossEntropyWithLogits
        try requireFloat(logits, op: op, role: "logits")
        guard logits.rank >= 1 else {
            throw TensorError.shapeMismatch(op: op.rawValue, detail: "logits need a class axis, got a scalar")
        }
        let batch = Array(logits.shape.dropLast())
        guard labels.shape == batch else {
            throw TensorError.shapeMismatch(op: op.rawValue, detail: "labels have shape \(shapeText(labels.shape)); logits \(shapeText(logits.shape)) need \(shapeText(batch))")
        }
        let classes = logits.shape.last!
        let index = try readIndices(labels, bound: classes, op: op, axis: logits.rank - 1)
        let lse = try reduction(.logsumexp, .reduction(axes: [logits.rank - 1], keepDims: false), logits)
        let out = Tensor(uninitialized: batch, dtype: logits.dtype)
        func run<T: KernelFloat>(_: T.Type) {
            let pl = logits.elements(T.self), pz = lse.elements(T.self), py = out.elements(T.self)
            for (i, c) in index.enumerated() { py[i] = pz[i] - pl[i * classes + c] }
        }
        if logits.dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return out
    }

    /// mean((a - b)²) over every element; shapes must be equal.
    static func meanSquaredError(_ a: Tensor, _ b: Tensor) throws -> Tensor {
        let op = OpCode.meanSquaredError
        try requireFloat(a, op: op, role: "prediction")
        try requireSameDType(a, b, op: op)
        guard a.shape == b.shape else {
            throw TensorError.shapeMismatch(op: op.rawValue, detail: "prediction \(shapeText(a.shape)) and target \(shapeText(b.shape)) must have equal shapes")
        }
        let n = a.elementCount
        let out = Tensor(uninitialized: [], dtype: a.dtype)
        let policy = KernelPolicy.current
        func run<T: KernelFloat>(_: T.Type) {
            let pa = a.elements(T.self), pb = b.elements(T.self)
            let sq = UnsafeMutablePointer<T>.allocate(capacity: Swift.max(n, 1))
            defer { sq.deallocate() }
            Parallelism.forEachRange(n) { r in for i in r { let d = pa[i] - pb[i]; sq[i] = d * d } }
            out.elements(T.self)[0] = n == 0 ? T.nan : Summation.sum(sq, n, policy: policy.determinism, threads: policy.threads) / T(n)
        }
        if a.dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return out
    }
}
