import RealModule

/// An elementwise function of two floats.
protocol BinaryFunction {
    static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T
    /// A few instructions per element: loops over it are memory-bound (see ``Parallelism/lightChunk``).
    static var isLight: Bool { get }
}

extension BinaryFunction { static var isLight: Bool { false } }

/// The kernels' elementwise functions of two floats: each evaluates its ``Pointwise`` formula.
enum AddFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.add(a, b) }
}
enum SubFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.sub(a, b) }
}
enum MulFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.mul(a, b) }
}
enum DivFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.div(a, b) }
}
enum PowFn: BinaryFunction {
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.pow(a, b) }
}
enum MaxFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.maximum(a, b) }
}
enum MinFn: BinaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ a: T, _ b: T) -> T { Pointwise.minimum(a, b) }
}

/// Work parameterised by an elementwise function of two floats (see ``Kernels/withBinaryFunction(_:_:)``).
protocol BinaryKernelBody { func run<F: BinaryFunction>(_: F.Type) }

extension Kernels {
    static func binary(_ op: OpCode, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try requireFloat(a, op: op, role: "left operand")
        try requireFloat(b, op: op, role: "right operand")
        try requireSameDType(a, b, op: op)
        if a.shape.isEmpty, b.shape.isEmpty {
            // Two scalars: no broadcasting to work out and one element to compute.
            let out = Tensor(uninitialized: [], dtype: a.dtype)
            let found = a.dtype == .float64
                ? withBinaryFunction(op, ScalarBody(y: out.elements(Double.self), a: a.elements(Double.self), b: b.elements(Double.self)))
                : withBinaryFunction(op, ScalarBody(y: out.elements(Float.self), a: a.elements(Float.self), b: b.elements(Float.self)))
            guard found else { throw badAttributes(op, .none) }
            return out
        }
        let shape = try ShapeRules.broadcast(a.shape, b.shape, op: op.rawValue)
        let out = Tensor(uninitialized: shape, dtype: a.dtype)
        let found = a.dtype == .float64
            ? withBinaryFunction(op, ZipBody(y: out.elements(Double.self), shape: shape, a: a, pa: a.elements(Double.self), b: b, pb: b.elements(Double.self)))
            : withBinaryFunction(op, ZipBody(y: out.elements(Float.self), shape: shape, a: a, pa: a.elements(Float.self), b: b, pb: b.elements(Float.self)))
        guard found else { throw badAttributes(op, .none) }
        return out
    }

    /// Runs `body` with the function of binary operator `op`; false when `op` is not one.
    @inline(__always)
    static func withBinaryFunction<B: BinaryKernelBody>(_ op: OpCode, _ body: B) -> Bool {
        switch op {
        case .add: body.run(AddFn.self)
        case .sub: body.run(SubFn.self)
        case .mul: body.run(MulFn.self)
        case .div: body.run(DivFn.self)
        case .pow: body.run(PowFn.self)
        case .maximum: body.run(MaxFn.self)
        case .minimum: body.run(MinFn.self)
        default: return false
        }
        return true
    }

    struct ScalarBody<T: KernelFloat>: BinaryKernelBody {
        let y: UnsafeMutablePointer<T>, a: UnsafeMutablePointer<T>, b: UnsafeMutablePointer<T>
        @inline(__always) func run<F: BinaryFunction>(_: F.Type) { y.pointee = F.apply(a.pointee, b.pointee) }
    }

    struct ZipBody<T: KernelFloat>: BinaryKernelBody {
        let y: UnsafeMutablePointer<T>, shape: [Int], a: Tensor, pa: UnsafeMutablePointer<T>, b: Tensor, pb: UnsafeMutablePointer<T>
        @inline(__always) func run<F: BinaryFunction>(_: F.Type) { zipInto(y, shape, a, pa, b, pb, F.self) }
    }

    /// `y[i] = F(a[i], b[i])` for `i < n` where a scalar operand is read at index 0 throughout
    /// (`aScalar`/`bScalar`); parallel above one chunk.
    @inline(__always)
    static func zipFlat<T: KernelFloat, F: BinaryFunction>(_ y: UnsafeMutablePointer<T>, _ pa: UnsafeMutablePointer<T>, aScalar: Bool,
                                                            _ pb: UnsafeMutablePointer<T>, bScalar: Bool, _ n: Int, _: F.Type) {
        let chunk = F.isLight ? Parallelism.lightChunk : Parallelism.elementChunk
        if !aScalar && !bScalar {
            if n < chunk { for i in 0..<n { y[i] = F.apply(pa[i], pb[i]) }; return }
            Parallelism.forEachRange(n, chunkSize: chunk) { r in for i in r { y[i] = F.apply(pa[i], pb[i]) } }
        } else if bScalar && !aScalar {
            let s = pb[0]
            if n < chunk { for i in 0..<n { y[i] = F.apply(pa[i], s) }; return }
            Parallelism.forEachRange(n, chunkSize: chunk) { r in for i in r { y[i] = F.apply(pa[i], s) } }
        } else if aScalar && !bScalar {
            let s = pa[0]
            if n < chunk { for i in 0..<n { y[i] = F.apply(s, pb[i]) }; return }
            Parallelism.forEachRange(n, chunkSize: chunk) { r in for i in r { y[i] = F.apply(s, pb[i]) } }
        } else {
            let v = F.apply(pa[0], pb[0])
            for i in 0..<n { y[i] = v }
        }
    }

    /// `out[i] = F(a[i], b[i])` over the broadcast `shape` (out contiguous; may alias a).
    static func zipInto<T: KernelFloat, F: BinaryFunction>(
        _ y: UnsafeMutablePointer<T>, _ shape: [Int],
        _ a: Tensor, _ pa: UnsafeMutablePointer<T>, _ b: Tensor, _ pb: UnsafeMutablePointer<T>, _: F.Type
    ) {
        let n = shape.reduce(1, *)
        let na = a.elementCount, nb = b.elementCount
        if na == n && nb == n {
            zipFlat(y, pa, aScalar: false, pb, bScalar: false, n, F.self)
        } else if nb == 1 && na == n {
            zipFlat(y, pa, aScalar: false, pb, bScalar: true, n, F.self)
        } else if na == 1 && nb == n {
            zipFlat(y, pa, aScalar: true, pb, bScalar: false, n, F.self)
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
            multiplyAddInto(out.elements(Double.self), shape, a, a.elements(Double.self), b, b.elements(Double.self), c, c.elements(Double.self))
        } else {
            multiplyAddInto(out.elements(Float.self), shape, a, a.elements(Float.self), b, b.elements(Float.self), c, c.elements(Float.self))
        }
        return out
    }

    /// `x·y + z` rounded after the product and after the sum (no fused multiply-add).
    @inline(__always)
    static func productSum<T: KernelFloat>(_ x: T, _ y: T, _ z: T) -> T { let p = x * y; return p + z }

    static func multiplyAddInto<T: KernelFloat>(
        _ y: UnsafeMutablePointer<T>, _ shape: [Int],
        _ a: Tensor, _ pa: UnsafeMutablePointer<T>, _ b: Tensor, _ pb: UnsafeMutablePointer<T>, _ c: Tensor, _ pc: UnsafeMutablePointer<T>
    ) {
        let n = shape.reduce(1, *)
        if a.elementCount == n && b.elementCount == n && c.elementCount == n {
            Parallelism.forEachRange(n, chunkSize: Parallelism.lightChunk) { r in for i in r { y[i] = productSum(pa[i], pb[i], pc[i]) } }
            return
        }
        if c.elementCount == n && (a.elementCount == 1 || b.elementCount == 1) && a.elementCount * b.elementCount == n {
            // A scalar factor (an optimizer's learning rate): one stride-1 loop.
            let (s, pv) = a.elementCount == 1 ? (pa[0], pb) : (pb[0], pa)
            let scalarFirst = a.elementCount == 1
            Parallelism.forEachRange(n, chunkSize: Parallelism.lightChunk) { r in
                if scalarFirst { for i in r { y[i] = productSum(s, pv[i], pc[i]) } } else { for i in r { y[i] = productSum(pv[i], s, pc[i]) } }
            }
            return
        }
        let rows = BroadcastRows(shape: shape, operandStrides: [
            ShapeRules.broadcastStrides(a.shape, to: shape), ShapeRules.broadcastStrides(b.shape, to: shape),
            ShapeRules.broadcastStrides(c.shape, to: shape),
        ])
        let len = rows.rowLength, sa = rows.innerStride(0), sb = rows.innerStride(1), sc = rows.innerStride(2)
        rows.forEachRow { row, offsets in
            let pa = pa + offsets[0], pb = pb + offsets[1], pc = pc + offsets[2], py = y + row * len
            for i in 0..<len { py[i] = productSum(pa[i * sa], pb[i * sb], pc[i * sc]) }
        }
    }
}

extension Kernels {
    /// `sum[i] = sum[i] + g[i]` for `i < count`, the `add` kernel's function in place (the packed
    /// unroll's gradient accumulation: `add_` on its raw buffers). Non-generic entry points, so a
    /// caller in another module runs the loop specialised here.
    package static func accumulate(_ sum: UnsafeMutablePointer<Double>, _ g: UnsafePointer<Double>, count: Int) {
        for i in 0..<count { sum[i] = AddFn.apply(sum[i], g[i]) }
    }

    /// The float32 form of ``accumulate(_:_:count:)-(UnsafeMutablePointer<Double>,_,_)``.
    package static func accumulate(_ sum: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { sum[i] = AddFn.apply(sum[i], g[i]) }
    }
}
