import RealModule

/// An elementwise function of one float.
protocol UnaryFunction {
    static func apply<T: KernelFloat>(_ x: T) -> T
    /// A few instructions per element: loops over it are memory-bound (see ``Parallelism/lightChunk``).
    static var isLight: Bool { get }
}

extension UnaryFunction { static var isLight: Bool { false } }

/// The kernels' elementwise functions: each evaluates its ``Pointwise`` formula over one float.
enum NegFn: UnaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.neg(x) }
}
enum AbsFn: UnaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.abs(x) }
}
enum SignFn: UnaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.sign(x) }
}
enum ExpFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.exp(x) } }
enum Expm1Fn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.expm1(x) } }
enum LogFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.log(x) } }
enum Log1pFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.log1p(x) } }
enum SqrtFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.sqrt(x) } }
enum RsqrtFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.rsqrt(x) } }
enum SinFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.sin(x) } }
enum CosFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.cos(x) } }
enum TanhFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.tanh(x) } }
enum SigmoidFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.sigmoid(x) } }
enum ReluFn: UnaryFunction {
    static var isLight: Bool { true }
    @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.relu(x) }
}
enum SoftplusFn: UnaryFunction { @inline(__always) static func apply<T: KernelFloat>(_ x: T) -> T { Pointwise.softplus(x) } }

/// Work parameterised by an elementwise function of one float (``Kernels/withUnaryFunction(_:_:)``
/// picks the function for an operator once; the kernel loop is specialised for it).
protocol UnaryKernelBody { func run<F: UnaryFunction>(_: F.Type) }

extension Kernels {
    static func unary(_ op: OpCode, _ x: Tensor) throws -> Tensor {
        try requireFloat(x, op: op)
        if op == .sqrt { return squareRoot(x) }
        let y = Tensor(uninitialized: x.shape, dtype: x.dtype)
        let found = x.dtype == .float64
            ? withUnaryFunction(op, MapBody(x: x.elements(Double.self), y: y.elements(Double.self), n: x.elementCount))
            : withUnaryFunction(op, MapBody(x: x.elements(Float.self), y: y.elements(Float.self), n: x.elementCount))
        guard found else { throw badAttributes(op, .none) }
        return y
    }

    /// Runs `body` with the function of elementwise operator `op`; false when `op` is not one.
    @inline(__always)
    static func withUnaryFunction<B: UnaryKernelBody>(_ op: OpCode, _ body: B) -> Bool {
        switch op {
        case .neg: body.run(NegFn.self)
        case .abs: body.run(AbsFn.self)
        case .sign: body.run(SignFn.self)
        case .exp: body.run(ExpFn.self)
        case .expm1: body.run(Expm1Fn.self)
        case .log: body.run(LogFn.self)
        case .log1p: body.run(Log1pFn.self)
        case .sqrt: body.run(SqrtFn.self)
        case .rsqrt: body.run(RsqrtFn.self)
        case .sin: body.run(SinFn.self)
        case .cos: body.run(CosFn.self)
        case .tanh: body.run(TanhFn.self)
        case .sigmoid: body.run(SigmoidFn.self)
        case .relu: body.run(ReluFn.self)
        case .softplus: body.run(SoftplusFn.self)
        default: return false
        }
        return true
    }

    /// `y[i] = F(x[i])` for `i < n`.
    struct MapBody<T: KernelFloat>: UnaryKernelBody {
        let x: UnsafeMutablePointer<T>, y: UnsafeMutablePointer<T>, n: Int
        @inline(__always) func run<F: UnaryFunction>(_: F.Type) { mapLoop(x, y, n, F.self) }
    }

    /// √x in 8-wide SIMD (`SIMD8.squareRoot()` lowers to the vector instruction; the scalar
    /// `squareRoot()` is a libm call per element on Linux).
    static func squareRoot(_ x: Tensor) -> Tensor {
        let y = Tensor(uninitialized: x.shape, dtype: x.dtype)
        func run<T: KernelFloat & SIMDScalar>(_: T.Type) where T.SIMD8Storage.Scalar == T {
            let px = x.elements(T.self), py = y.elements(T.self)
            Parallelism.forEachRange(x.elementCount) { r in
                var i = r.lowerBound
                let raw = UnsafeMutableRawPointer(py), src = UnsafeRawPointer(px)
                while i + 8 <= r.upperBound {
                    let v = src.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.stride, as: SIMD8<T>.self)
                    raw.storeBytes(of: v.squareRoot(), toByteOffset: i * MemoryLayout<T>.stride, as: SIMD8<T>.self)
                    i += 8
                }
                while i < r.upperBound { py[i] = T.hardwareSquareRoot(px[i]); i += 1 }
            }
        }
        if x.dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return y
    }

    @inline(__always)
    static func mapLoop<T: KernelFloat, F: UnaryFunction>(_ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int, _: F.Type) {
        let chunk = F.isLight ? Parallelism.lightChunk : Parallelism.elementChunk
        if n < chunk {
            for i in 0..<n { y[i] = F.apply(x[i]) }
            return
        }
        Parallelism.forEachRange(n, chunkSize: chunk) { r in
            for i in r { y[i] = F.apply(x[i]) }
        }
    }
}
