extension Kernels {
    static func indexing(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        switch (op, attributes) {
        case let (.gather, .axis(axis)): return try gather(inputs[0], inputs[1], axis: axis)
        case let (.scatterAdd, .axis(axis)): return try scatterAdd(inputs[0], inputs[1], inputs[2], axis: axis)
        case let (.oneHot, .oneHot(depth, dtype)): return try oneHot(inputs[0], depth: depth, dtype: dtype)
        default: throw badAttributes(op, attributes)
        }
    }

    /// Reads integer indices as `Int`, checking each against `bound`.
    static func readIndices(_ indices: Tensor, bound: Int, op: OpCode, axis: Int) throws -> [Int] {
        var out = [Int](repeating: 0, count: indices.elementCount)
        switch indices.dtype {
        case .int32: let p = indices.elements(Int32.self); for i in out.indices { out[i] = Int(p[i]) }
        case .int64: let p = indices.elements(Int64.self); for i in out.indices { out[i] = Int(p[i]) }
        default:
            throw TensorError.dtypeMismatch(op: op.rawValue, detail: "indices must be i32 or i64, got \(indices.dtype)")
        }
        for (i, v) in out.enumerated() where v < 0 || v >= bound {
            throw TensorError.indexOutOfRange(op: op.rawValue, index: v, bound: bound, position: "indices element \(i) (axis \(axis))")
        }
        return out
    }

    /// `take(x, indices, axis)`: out shape = x.shape[..<axis] + indices.shape + x.shape[(axis+1)...].
    static func gather(_ x: Tensor, _ indices: Tensor, axis rawAxis: Int) throws -> Tensor {
        let axis = try ShapeRules.axis(rawAxis, rank: x.rank, op: OpCode.gather.rawValue)
        let index = try readIndices(indices, bound: x.shape[axis], op: .gather, axis: axis)
        let (outer, extent, inner) = ShapeRules.split(x.shape, at: axis)
        let shape = Array(x.shape[..<axis]) + indices.shape + Array(x.shape[(axis + 1)...])
        let out = Tensor(uninitialized: shape, dtype: x.dtype)
        let width = inner * x.dtype.byteSize
        let src = x.hostRawPointer, dst = out.hostRawPointer
        for o in 0..<outer {
            for (j, r) in index.enumerated() {
                (dst + (o * index.count + j) * width).copyMemory(from: src + (o * extent + r) * width, byteCount: width)
            }
        }
        return out
    }

    /// `base` with `updates` added at `indices` along `axis` (repeated indices accumulate, in order).
    static func scatterAdd(_ base: Tensor, _ indices: Tensor, _ updates: Tensor, axis rawAxis: Int) throws -> Tensor {
        let op = OpCode.scatterAdd
        let axis = try ShapeRules.axis(rawAxis, rank: base.rank, op: op.rawValue)
        try requireFloat(base, op: op, role: "base")
        try requireSameDType(base, updates, op: op)
        let expected = Array(base.shape[..<axis]) + indices.shape + Array(base.shape[(axis + 1)...])
        guard updates.shape == expected else {
            throw TensorError.shapeMismatch(op: op.rawValue, detail: "updates have shape \(shapeText(updates.shape)); base \(shapeText(base.shape)) with indices \(shapeText(indices.shape)) along axis \(axis) needs \(shapeText(expected))")
        }
        let index = try readIndices(indices, bound: base.shape[axis], op: op, axis: axis)
        let (outer, extent, inner) = ShapeRules.split(base.shape, at: axis)
        let out = try contiguousCopy(base)
        func run<T: KernelFloat>(_: T.Type) {
            let y = out.elements(T.self), u = updates.elements(T.self)
            for o in 0..<outer {
                for (j, r) in index.enumerated() {
                    let d = y + (o * extent + r) * inner, s = u + (o * index.count + j) * inner
                    for i in 0..<inner { d[i] += s[i] }
                }
            }
        }
        if base.dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return out
    }

    static func oneHot(_ indices: Tensor, depth: Int, dtype: DType) throws -> Tensor {
        guard depth > 0 else { throw TensorError.invalidArgument(op: OpCode.oneHot.rawValue, detail: "depth must be positive, got \(depth)") }
        let index = try readIndices(indices, bound: depth, op: .oneHot, axis: indices.rank)
        let out = try full(indices.shape + [depth], 0, dtype)
        let width = dtype.byteSize
        let one = try full([], 1, dtype)
        for (i, r) in index.enumerated() {
            (out.hostRawPointer + (i * depth + r) * width).copyMemory(from: one.hostRawPointer, byteCount: width)
        }
        return out
    }
}
