extension Kernels {
    /// Copies a `shape`-shaped block, reading `src` at element strides `srcStrides` from `srcOffset`
    /// and writing `dst` at `dstStrides` from `dstOffset`. Strides may be 0 (broadcast).
    /// The elements are moved as unsigned words of their width: both storages' memory is rebound
    /// to that word type for the copy (`src` and `dst` hold the same element type).
    static func stridedCopy(from src: TensorStorage, _ srcOffset: Int, _ srcStrides: [Int],
                            to dst: TensorStorage, _ dstOffset: Int, _ dstStrides: [Int], shape: [Int]) {
        guard shape.reduce(1, *) > 0 else { return }
        switch src.dtype.byteSize {
        case 8: stridedCopyTyped(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, UInt64.self)
        case 4: stridedCopyTyped(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, UInt32.self)
        case 2: stridedCopyTyped(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, UInt16.self)
        default: stridedCopyTyped(src, srcOffset, srcStrides, dst, dstOffset, dstStrides, shape, UInt8.self)
        }
    }

    private static func stridedCopyTyped<E>(_ src: TensorStorage, _ srcOffset: Int, _ srcStrides: [Int],
                                            _ dst: TensorStorage, _ dstOffset: Int, _ dstStrides: [Int],
                                            _ shape: [Int], _: E.Type) {
        src.pointer.withMemoryRebound(to: E.self, capacity: src.capacity / MemoryLayout<E>.stride) { ps in
            dst.pointer.withMemoryRebound(to: E.self, capacity: dst.capacity / MemoryLayout<E>.stride) { pd in
                stridedCopyWords(ps + srcOffset, srcStrides, pd + dstOffset, dstStrides, shape)
            }
        }
    }

    private static func stridedCopyWords<E>(_ ps: UnsafeMutablePointer<E>, _ srcStrides: [Int],
                                            _ pd: UnsafeMutablePointer<E>, _ dstStrides: [Int], _ shape: [Int]) {
        let rows = BroadcastRows(shape: shape, operandStrides: [srcStrides, dstStrides])
        let len = rows.rowLength, ss = rows.innerStride(0), ds = rows.innerStride(1)
        func copyRow(_ s: UnsafeMutablePointer<E>, _ d: UnsafeMutablePointer<E>, _ range: Range<Int>) {
            if ss == 1 && ds == 1 { (d + range.lowerBound).update(from: s + range.lowerBound, count: range.count) }
            else if ss == 0 && ds == 1 { (d + range.lowerBound).update(repeating: s[0], count: range.count) }
            else if ss == 0 { let v = s[0]; for i in range { d[i * ds] = v } }
            else { for i in range { d[i * ds] = s[i * ss] } }
        }
        if rows.rowCount == 1 && !(ss == 1 && ds == 1) {
            // One long strided row (a broadcast scalar, say): split the row itself. A contiguous
            // row stays one memmove: glibc copies large blocks with streaming stores, while cut
            // into chunks it falls back to `rep movsb`, which is several times slower on AMD when
            // source and destination are misaligned relative to each other (as in a 1-D pad).
            Parallelism.forEachRange(len) { range in copyRow(ps, pd, range) }
            return
        }
        rows.forEachRow { _, o in copyRow(ps + o[0], pd + o[1], 0..<len) }
    }

    package static func layout(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        switch (op, attributes) {
        case let (.reshape, .shape(shape)): return try reshape(inputs[0], shape)
        case let (.transpose, .permutation(p)): return try permute(inputs[0], p)
        case let (.broadcastTo, .shape(shape)): return try broadcast(inputs[0], to: shape)
        case let (.slice, .region(starts, ends)): return try slice(inputs[0], starts: starts, ends: ends)
        case let (.concat, .axis(axis)): return try concat(inputs, axis: axis, op: .concat)
        case let (.stack, .axis(axis)): return try stack(inputs, axis: axis)
        case let (.pad, .pad(low, high, value)): return try pad(inputs[0], low: low, high: high, value: value)
        default: throw badAttributes(op, attributes)
        }
    }

    /// Same elements, new shape; shares storage (one dimension may be -1).
    static func reshape(_ x: Tensor, _ requested: [Int]) throws -> Tensor {
        let op = OpCode.reshape.rawValue
        var shape = requested
        let inferred = shape.indices.filter { shape[$0] == -1 }
        guard inferred.count <= 1 else { throw TensorError.invalidArgument(op: op, detail: "at most one dimension may be -1 in \(shapeText(requested))") }
        try ShapeRules.checkShape(shape.filter { $0 != -1 }, op: op)
        if let i = inferred.first {
            let known = shape.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, x.elementCount % known == 0 else {
                throw TensorError.shapeMismatch(op: op, detail: "cannot reshape \(shapeText(x.shape)) (\(x.elementCount) elements) to \(shapeText(requested))")
            }
            shape[i] = x.elementCount / known
        }
        guard shape.reduce(1, *) == x.elementCount else {
            throw TensorError.shapeMismatch(op: op, detail: "cannot reshape \(shapeText(x.shape)) (\(x.elementCount) elements) to \(shapeText(requested)) (\(shape.reduce(1, *)) elements)")
        }
        return x.withShape(shape)
    }

    static func permute(_ x: Tensor, _ permutation: [Int]) throws -> Tensor {
        let op = OpCode.transpose.rawValue
        guard permutation.count == x.rank, Set(permutation) == Set(0..<x.rank) else {
            throw TensorError.invalidArgument(op: op, detail: "\(permutation) is not a permutation of the \(x.rank) axes of \(shapeText(x.shape))")
        }
        if permutation == Array(0..<x.rank) { return x.withShape(x.shape) }
        let strides = ShapeRules.contiguousStrides(x.shape)
        let shape = permutation.map { x.shape[$0] }
        let out = Tensor(uninitialized: shape, dtype: x.dtype)
        stridedCopy(from: x.storage, x.offset, permutation.map { strides[$0] },
                    to: out.storage, 0, ShapeRules.contiguousStrides(shape), shape: shape)
        return out
    }

    static func broadcast(_ x: Tensor, to shape: [Int]) throws -> Tensor {
        let op = OpCode.broadcastTo.rawValue
        try ShapeRules.checkShape(shape, op: op)
        let full = try ShapeRules.broadcast(x.shape, shape, op: op)
        guard full == shape else {
            throw TensorError.shapeMismatch(op: op, detail: "\(shapeText(x.shape)) does not broadcast to \(shapeText(shape))")
        }
        if x.shape == shape { return x.withShape(shape) }
        let out = Tensor(uninitialized: shape, dtype: x.dtype)
        stridedCopy(from: x.storage, x.offset, ShapeRules.broadcastStrides(x.shape, to: shape),
                    to: out.storage, 0, ShapeRules.contiguousStrides(shape), shape: shape)
        return out
    }

    /// Validates a per-axis half-open region of `shape`.
    static func checkRegion(_ shape: [Int], starts: [Int], ends: [Int], op: String) throws {
        guard starts.count == shape.count, ends.count == shape.count else {
            throw TensorError.invalidArgument(op: op, detail: "region has \(starts.count) starts and \(ends.count) ends for a tensor of rank \(shape.count)")
        }
        for axis in 0..<shape.count {
            guard 0 <= starts[axis], starts[axis] <= ends[axis], ends[axis] <= shape[axis] else {
                throw TensorError.sliceOutOfBounds(op: op, shape: shape, axis: axis, requested: "\(starts[axis])..<\(ends[axis])")
            }
        }
    }

    /// A block of `x`; a view sharing storage when the block is contiguous.
    static func slice(_ x: Tensor, starts: [Int], ends: [Int]) throws -> Tensor {
        try checkRegion(x.shape, starts: starts, ends: ends, op: OpCode.slice.rawValue)
        let shape = zip(starts, ends).map { $1 - $0 }
        let strides = ShapeRules.contiguousStrides(x.shape)
        let start = zip(starts, strides).reduce(0) { $0 + $1.0 * $1.1 }
        // Contiguous when every axis after the first partial one is whole and earlier ones are single.
        var contiguous = true
        if let first = (0..<x.rank).first(where: { shape[$0] != 1 }) {
            for axis in (first + 1)..<x.rank where shape[axis] != x.shape[axis] { contiguous = false }
        }
        if contiguous { return x.leadingView(elementOffset: start, shape: shape) }
        let out = Tensor(uninitialized: shape, dtype: x.dtype)
        stridedCopy(from: x.storage, x.offset + start, strides,
                    to: out.storage, 0, ShapeRules.contiguousStrides(shape), shape: shape)
        return out
    }

    static func concat(_ inputs: [Tensor], axis rawAxis: Int, op: OpCode) throws -> Tensor {
        guard let first = inputs.first else { throw TensorError.invalidArgument(op: op.rawValue, detail: "needs at least one input") }
        if op == .concat, first.rank == 0 {
            throw TensorError.invalidArgument(op: op.rawValue, detail: "rank-0 tensors have no axis to join along; use stack to make a vector of them")
        }
        let axis = try ShapeRules.axis(rawAxis, rank: first.rank, op: op.rawValue)
        var total = 0
        for (i, t) in inputs.enumerated() {
            guard t.dtype == first.dtype else {
                throw TensorError.dtypeMismatch(op: op.rawValue, detail: "input \(i) is \(t.dtype), input 0 is \(first.dtype)")
            }
            guard t.rank == first.rank, (0..<t.rank).allSatisfy({ $0 == axis || t.shape[$0] == first.shape[$0] }) else {
                throw TensorError.shapeMismatch(op: op.rawValue, detail: "input \(i) has shape \(shapeText(t.shape)); input 0 has \(shapeText(first.shape)) (only axis \(axis) may differ)")
            }
            total += t.shape[axis]
        }
        var shape = first.shape
        shape[axis] = total
        let out = Tensor(uninitialized: shape, dtype: first.dtype)
        let outStrides = ShapeRules.contiguousStrides(shape)
        var position = 0
        for t in inputs {
            stridedCopy(from: t.storage, t.offset, ShapeRules.contiguousStrides(t.shape),
                        to: out.storage, position * outStrides[axis], outStrides, shape: t.shape)
            position += t.shape[axis]
        }
        return out
    }

    static func stack(_ inputs: [Tensor], axis rawAxis: Int) throws -> Tensor {
        guard let first = inputs.first else { throw TensorError.invalidArgument(op: OpCode.stack.rawValue, detail: "needs at least one input") }
        let axis = try ShapeRules.axis(rawAxis, rank: first.rank + 1, op: OpCode.stack.rawValue)
        for (i, t) in inputs.enumerated() where t.shape != first.shape {
            throw TensorError.shapeMismatch(op: OpCode.stack.rawValue, detail: "input \(i) has shape \(shapeText(t.shape)); input 0 has \(shapeText(first.shape))")
        }
        var expanded = first.shape
        expanded.insert(1, at: axis)
        return try concat(inputs.map { $0.withShape(expanded) }, axis: axis, op: .stack)
    }

    static func pad(_ x: Tensor, low: [Int], high: [Int], value: Double) throws -> Tensor {
        let op = OpCode.pad.rawValue
        guard low.count == x.rank, high.count == x.rank else {
            throw TensorError.invalidArgument(op: op, detail: "padding has \(low.count) low and \(high.count) high entries for rank \(x.rank)")
        }
        guard !(low + high).contains(where: { $0 < 0 }) else {
            throw TensorError.invalidArgument(op: op, detail: "negative padding \(low) / \(high); use slice to crop")
        }
        let shape = (0..<x.rank).map { low[$0] + x.shape[$0] + high[$0] }
        let out = try full(shape, value, x.dtype)
        let strides = ShapeRules.contiguousStrides(shape)
        let start = zip(low, strides).reduce(0) { $0 + $1.0 * $1.1 }
        stridedCopy(from: x.storage, x.offset, ShapeRules.contiguousStrides(x.shape),
                    to: out.storage, start, strides, shape: x.shape)
        return out
    }
}
