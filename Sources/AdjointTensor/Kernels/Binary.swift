import RealModule

/// An elementwise function of two floats.
protocol BinaryFunction { static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T }

enum AddFn: BinaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a + b } }
enum SubFn: BinaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a - b } }
enum MulFn: BinaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a * b } }
enum DivFn: BinaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a / b } }
enum PowFn: BinaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { T.cPow(a, b) } }
/// NaN-propagating maximum.
enum MaxFn: BinaryFunction {
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a.isNaN || a >= b ? a : b }
}
/// NaN-propagating minimum.
enum MinFn: BinaryFunction {
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { a.isNaN || a <= b ? a : b }
}

extension Kernels {
    static func binary(_ op: OpCode, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireFloat(a, op: op, role: "left operand")
        try requireFloat(b, op: op, role: "right operand")
        try requireSameDType(a, b, op: op)
        let shape = try ShapeRules.broadcast(a.shape, b.shape, op: op.rawValue)
        switch op {
        case .add: return zipMap(a, b, shape, AddFn.self)
        case .sub: return zipMap(a, b, shape, SubFn.self)
        case .mul: return zipMap(a, b, shape, MulFn.self)
        case .div: return zipMap(a, b, shape, DivFn.self)
        case .pow: return zipMap(a, b, shape, PowFn.self)
        case .maximum: return zipMap(a, b, shape, MaxFn.self)
        case .minimum: return zipMap(a, b, shape, MinFn.self)
        default: throw badAttributes(op, .none)
        }
    }

    static func zipMap<F: BinaryFunction>(_ a: Tensor, _ b: Tensor, _ shape: [Int], _: F.Type) -> Tensor {
        let out = Tensor(uninitialized: shape, dtype: a.dtype)
        if a.dtype == .float64 {
            zipInto(out.pointer(Double.self), shape, a, a.pointer(Double.self), b, b.pointer(Double.self), F.self)
        } else {
            zipInto(out.pointer(Float.self), shape, a, a.pointer(Float.self), b, b.pointer(Float.self), F.self)
        }
        return out
    }

    /// `out[i] = F(a[i], b[i])` over the broadcast `shape` (out contiguous; may alias a).
    static func zipInto<T: KernelFloat, F: BinaryFunction>(
        _ y: UnsafeMutablePointer<T>, _ shape: [Int],
        _ a: Tensor, _ pa: UnsafeMutablePointer<T>, _ b: Tensor, _ pb: UnsafeMutablePointer<T>, _: F.Type
    ) {
        let n = shape.reduce(1, *)
        let na = a.elementCount, nb = b.elementCount
        if na == n && nb == n {
            if n < Parallelism.elementChunk { for i in 0..<n { y[i] = F.apply(pa[i], pb[i]) }; return }
            Parallelism.forEachRange(n) { r in for i in r { y[i] = F.apply(pa[i], pb[i]) } }
        } else if nb == 1 && na == n {
            let s = pb[0]
            if n < Parallelism.elementChunk { for i in 0..<n { y[i] = F.apply(pa[i], s) }; return }
            Parallelism.forEachRange(n) { r in for i in r { y[i] = F.apply(pa[i], s) } }
        } else if na == 1 && nb == n {
            let s = pa[0]
            if n < Parallelism.elementChunk { for i in 0..<n { y[i] = F.apply(s, pb[i]) }; return }
            Parallelism.forEachRange(n) { r in for i in r { y[i] = F.apply(s, pb[i]) } }
        } else {
            let rows = BroadcastRows(shape: shape, operandStrides: [
                ShapeRules.broadcastStrides(a.shape, to: shape), ShapeRules.broadcastStrides(b.shape, to: shape),
            ])
            let len = rows.rowLength, sa = rows.innerStride(0), sb = rows.innerStride(1)
            rows.forEachRow { row, offsets in
                let pa = pa + offsets[0], pb = pb + offsets[1], py = y + row * len
                if sa == 1 && sb == 1 { for i in 0..<len { py[i] = F.apply(pa[i], pb[i]) } }
                else if sa == 1 && sb == 0 { let s = pb[0]; for i in 0..<len { py[i] = F.apply(pa[i], s) } }
                else if sa == 0 && sb == 1 { let s = pa[0]; for i in 0..<len { py[i] = F.apply(s, pb[i]) } }
                else { for i in 0..<len { py[i] = F.apply(pa[i * sa], pb[i * sb]) } }
            }
        }
    }
}

extension Kernels {
    /// `a·b + c` over the broadcast shape of all three, rounded after the product and after the sum
    /// (so it equals `a * b + c` bit for bit, in one pass over memory instead of two).
    static func multiplyAdd(_ a: Tensor, _ b: Tensor, _ c: Tensor) throws -> Tensor {
        let op = OpCode.multiplyAdd
        for (t, role) in [(a, "first operand"), (b, "second operand"), (c, "addend")] { try requireFloat(t, op: op, role: role) }
        try requireSameDType(a, b, op: op)
        try requireSameDType(a, c, op: op)
        let shape = try ShapeRules.broadcast(ShapeRules.broadcast(a.shape, b.shape, op: op.rawValue), c.shape, op: op.rawValue)
        let out = Tensor(uninitialized: shape, dtype: a.dtype)
        if a.dtype == .float64 {
            multiplyAddInto(out.pointer(Double.self), shape, a, a.pointer(Double.self), b, b.pointer(Double.self), c, c.pointer(Double.self))
        } else {
            multiplyAddInto(out.pointer(Float.self), shape, a, a.pointer(Float.self), b, b.pointer(Float.self), c, c.pointer(Float.self))
        }
        return out
    }

    static func multiplyAddInto<T: KernelFloat>(
        _ y: UnsafeMutablePointer<T>, _ shape: [Int],
        _ a: Tensor, _ pa: UnsafeMutablePointer<T>, _ b: Tensor, _ pb: UnsafeMutablePointer<T>, _ c: Tensor, _ pc: UnsafeMutablePointer<T>
    ) {
        let n = shape.reduce(1, *)
        @inline(__always) func fma(_ x: T, _ y: T, _ z: T) -> T { let p = x * y; return p + z }
        if a.elementCount == n && b.elementCount == n && c.elementCount == n {
            Parallelism.forEachRange(n) { r in for i in r { y[i] = fma(pa[i], pb[i], pc[i]) } }
            return
        }
        let rows = BroadcastRows(shape: shape, operandStrides: [
            ShapeRules.broadcastStrides(a.shape, to: shape), ShapeRules.broadcastStrides(b.shape, to: shape),
            ShapeRules.broadcastStrides(c.shape, to: shape),
        ])
        let len = rows.rowLength, sa = rows.innerStride(0), sb = rows.innerStride(1), sc = rows.innerStride(2)
        rows.forEachRow { row, offsets in
            let pa = pa + offsets[0], pb = pb + offsets[1], pc = pc + offsets[2], py = y + row * len
            for i in 0..<len { py[i] = fma(pa[i * sa], pb[i * sb], pc[i * sc]) }
        }
    }
}
