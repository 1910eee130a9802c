extension Kernels {
    static func compare(_ op: OpCode, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireSameDType(a, b, op: op)
        let shape = try ShapeRules.broadcast(a.shape, b.shape, op: op.rawValue)
        switch a.dtype {
        case .float64: return compareTyped(op, a, b, shape, Double.self)
        case .float32: return compareTyped(op, a, b, shape, Float.self)
        case .int32: return compareTyped(op, a, b, shape, Int32.self)
        case .int64: return compareTyped(op, a, b, shape, Int64.self)
        case .bool:
            guard op == .equal || op == .notEqual else {
                throw TensorError.unsupportedDType(op: op.rawValue, dtype: .bool, detail: "bool tensors compare only for (in)equality")
            }
            return compareTyped(op, a, b, shape, UInt8.self)
        case .float16, .bfloat16:
            throw TensorError.unsupportedDType(op: op.rawValue, dtype: a.dtype, detail: "cast f16/bf16 storage to f32 to compare")
        }
    }

    private static func compareTyped<T: Comparable>(_ op: OpCode, _ a: Tensor, _ b: Tensor, _ shape: [Int], _: T.Type) -> Tensor {
        let out = Tensor(uninitialized: shape, dtype: .bool)
        let y = out.elements(Bool.self), pa = a.elements(T.self), pb = b.elements(T.self)
        let predicate: (T, T) -> Bool
        switch op {
        case .equal: predicate = { $0 == $1 }
        case .notEqual: predicate = { $0 != $1 }
        case .less: predicate = { $0 < $1 }
        case .lessEqual: predicate = { $0 <= $1 }
        case .greater: predicate = { $0 > $1 }
        default: predicate = { $0 >= $1 }
        }
        let n = out.elementCount
        // Fast paths: equal shapes, or one side a single element (relu's backward, masks).
        if a.elementCount == n && b.elementCount == 1 {
            // Against one value (relu's backward, masks): a plain loop the compiler vectorizes.
            let s = pb[0]
            switch op {
            case .greater: for i in 0..<n { y[i] = pa[i] > s }
            case .less: for i in 0..<n { y[i] = pa[i] < s }
            case .equal: for i in 0..<n { y[i] = pa[i] == s }
            default: for i in 0..<n { y[i] = predicate(pa[i], s) }
            }
            return out
        }
        if a.elementCount == n && b.elementCount == n {
            switch op {
            case .greater: for i in 0..<n { y[i] = pa[i] > pb[i] }
            case .less: for i in 0..<n { y[i] = pa[i] < pb[i] }
            case .equal: for i in 0..<n { y[i] = pa[i] == pb[i] }
            default: for i in 0..<n { y[i] = predicate(pa[i], pb[i]) }
            }
            return out
        }
        let rows = BroadcastRows(shape: shape, operandStrides: [
            ShapeRules.broadcastStrides(a.shape, to: shape), ShapeRules.broadcastStrides(b.shape, to: shape),
        ])
        let len = rows.rowLength, sa = rows.innerStride(0), sb = rows.innerStride(1)
        rows.forEachRow { row, o in
            for i in 0..<len { y[row * len + i] = predicate(pa[o[0] + i * sa], pb[o[1] + i * sb]) }
        }
        return out
    }

    /// `where(condition, a, b)`: elements of `a` where `condition` holds, of `b` elsewhere.
    static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        guard condition.dtype == .bool else {
            throw TensorError.dtypeMismatch(op: OpCode.select.rawValue, detail: "condition must be bool, got \(condition.dtype)")
        }
        try requireSameDType(a, b, op: .select)
        let shape = try ShapeRules.broadcast(condition.shape, try ShapeRules.broadcast(a.shape, b.shape, op: OpCode.select.rawValue),
                                             op: OpCode.select.rawValue)
        let out = Tensor(uninitialized: shape, dtype: a.dtype)
        let n = out.elementCount
        if condition.elementCount == n && [a.elementCount, b.elementCount].allSatisfy({ $0 == n || $0 == 1 }) {
            switch a.dtype.byteSize {
            case 8: selectContiguous(condition, a, b, out, UInt64.self)
            case 4: selectContiguous(condition, a, b, out, UInt32.self)
            case 2: selectContiguous(condition, a, b, out, UInt16.self)
            default: selectContiguous(condition, a, b, out, UInt8.self)
            }
            return out
        }
        let rows = BroadcastRows(shape: shape, operandStrides: [
            ShapeRules.broadcastStrides(condition.shape, to: shape),
            ShapeRules.broadcastStrides(a.shape, to: shape), ShapeRules.broadcastStrides(b.shape, to: shape),
        ])
        let len = rows.rowLength, sc = rows.innerStride(0), sa = rows.innerStride(1), sb = rows.innerStride(2)
        let pc = condition.elements(Bool.self), width = a.dtype.byteSize
        let pa = a.hostRawPointer, pb = b.hostRawPointer, py = out.hostRawPointer
        rows.forEachRow { row, o in
            for i in 0..<len {
                let src = pc[o[0] + i * sc] ? pa + (o[1] + i * sa) * width : pb + (o[2] + i * sb) * width
                (py + (row * len + i) * width).copyMemory(from: src, byteCount: width)
            }
        }
        return out
    }

    /// `where` when the condition covers the output and each branch is full-size or one element.
    /// Branch-free (a mask from the condition byte blends the two words): the condition of a ReLU
    /// derivative is close to random, and a branch per element mispredicts half the time.
    @_specialize(where E == UInt64)
    @_specialize(where E == UInt32)
    @_specialize(where E == UInt16)
    @_specialize(where E == UInt8)
    private static func selectContiguous<E: FixedWidthInteger & UnsignedInteger>(_ condition: Tensor, _ a: Tensor, _ b: Tensor, _ out: Tensor, _: E.Type) {
        // The elements are blended as unsigned words of their width: their memory is rebound to
        // `E` (and the condition's bools to bytes) for the duration of the loop.
        condition.hostRawPointer.withMemoryRebound(to: UInt8.self, capacity: condition.elementCount) { pc in
            a.hostRawPointer.withMemoryRebound(to: E.self, capacity: a.elementCount) { pa in
                b.hostRawPointer.withMemoryRebound(to: E.self, capacity: b.elementCount) { pb in
                    out.hostRawPointer.withMemoryRebound(to: E.self, capacity: out.elementCount) { py in
                        selectWords(n: out.elementCount, pc, pa, fullA: a.elementCount == out.elementCount,
                                    pb, fullB: b.elementCount == out.elementCount, py)
                    }
                }
            }
        }
    }

    @inline(__always)
    private static func selectWords<E: FixedWidthInteger & UnsignedInteger>(
        n: Int, _ pc: UnsafeMutablePointer<UInt8>, _ pa: UnsafeMutablePointer<E>, fullA: Bool,
        _ pb: UnsafeMutablePointer<E>, fullB: Bool, _ py: UnsafeMutablePointer<E>
    ) {
        // One loop per broadcast case, so each is a plain stride-1 loop the compiler vectorizes.
        Parallelism.forEachRange(n, chunkSize: Parallelism.lightChunk) { r in
            switch (fullA, fullB) {
            case (true, true):
                for i in r { let m = E(0) &- E(truncatingIfNeeded: pc[i] & 1); py[i] = (pa[i] & m) | (pb[i] & ~m) }
            case (true, false):
                let vb = pb[0]
                for i in r { let m = E(0) &- E(truncatingIfNeeded: pc[i] & 1); py[i] = (pa[i] & m) | (vb & ~m) }
            case (false, true):
                let va = pa[0]
                for i in r { let m = E(0) &- E(truncatingIfNeeded: pc[i] & 1); py[i] = (va & m) | (pb[i] & ~m) }
            case (false, false):
                let va = pa[0], vb = pb[0]
                for i in r { let m = E(0) &- E(truncatingIfNeeded: pc[i] & 1); py[i] = (va & m) | (vb & ~m) }
            }
        }
    }
}
