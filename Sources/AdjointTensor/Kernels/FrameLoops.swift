import AdjointIR

/// The element loops a compiled program (AdjointCompiler) runs over its frame, for its two float
/// types. Each conformance below is compiled inside this module with its element type known, so
/// the kernels' generic loops are specialised here, and a caller in another module pays one witness
/// call per loop rather than one generic call per element.
package protocol FrameFloat: KernelFloat {
    /// `y[k] = f(x[k])` for the unary operator `op`; false when `op` has no elementwise loop.
    static func mapLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Self>, _ y: UnsafeMutablePointer<Self>, _ n: Int) -> Bool
    /// `y[k] = f(a[k], b[k])` (a single-element operand read throughout); false when `op` has no loop.
    static func zipLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Self>, _ a: UnsafeMutablePointer<Self>, aScalar: Bool,
                        _ b: UnsafeMutablePointer<Self>, bScalar: Bool, _ n: Int) -> Bool
    /// `y[k] = f(frame[ta[k]], frame[tb[k]])`, a negative index reading 0 (a folded gather's padding).
    static func zipTableLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Self>, frame: UnsafeMutablePointer<Self>,
                             _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ n: Int) -> Bool
    /// `y[k] = a[k]·b[k] + c[k]`, rounded as `multiplyAdd`'s kernel rounds it (product, then sum).
    static func multiplyAddLoop(_ y: UnsafeMutablePointer<Self>, _ a: UnsafeMutablePointer<Self>, _ b: UnsafeMutablePointer<Self>,
                                _ c: UnsafeMutablePointer<Self>, _ n: Int)
    /// ``multiplyAddLoop(_:_:_:_:_:)`` with its operands read through index tables into `frame`.
    static func multiplyAddTableLoop(_ y: UnsafeMutablePointer<Self>, frame: UnsafeMutablePointer<Self>,
                                     _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ tc: UnsafePointer<Int>, _ n: Int)
    /// The reduction `op` over the middle axis of an `outer × extent × inner` block.
    static func reduceLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Self>, _ outer: Int, _ extent: Int, _ inner: Int,
                           _ y: UnsafeMutablePointer<Self>, _ policy: KernelPolicy)
}

extension Double: FrameFloat {
    package static func mapLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int) -> Bool {
        Kernels.frameMap(op, x, y, n)
    }
    package static func zipLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Double>, _ a: UnsafeMutablePointer<Double>, aScalar: Bool,
                                _ b: UnsafeMutablePointer<Double>, bScalar: Bool, _ n: Int) -> Bool {
        Kernels.frameZip(op, y, a, aScalar: aScalar, b, bScalar: bScalar, n)
    }
    package static func zipTableLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Double>, frame: UnsafeMutablePointer<Double>,
                                     _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ n: Int) -> Bool {
        Kernels.frameZipTable(op, y, frame, ta, tb, n)
    }
    package static func multiplyAddLoop(_ y: UnsafeMutablePointer<Double>, _ a: UnsafeMutablePointer<Double>, _ b: UnsafeMutablePointer<Double>,
                                        _ c: UnsafeMutablePointer<Double>, _ n: Int) {
        Kernels.frameMultiplyAdd(y, a, b, c, n)
    }
    package static func multiplyAddTableLoop(_ y: UnsafeMutablePointer<Double>, frame: UnsafeMutablePointer<Double>,
                                             _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ tc: UnsafePointer<Int>, _ n: Int) {
        Kernels.frameMultiplyAddTable(y, frame, ta, tb, tc, n)
    }
    package static func reduceLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Double>, _ outer: Int, _ extent: Int, _ inner: Int,
                                   _ y: UnsafeMutablePointer<Double>, _ policy: KernelPolicy) {
        Kernels.reduceTyped(op, x, outer, extent, inner, y, policy)
    }
}

extension Float: FrameFloat {
    package static func mapLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Bool {
        Kernels.frameMap(op, x, y, n)
    }
    package static func zipLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Float>, aScalar: Bool,
                                _ b: UnsafeMutablePointer<Float>, bScalar: Bool, _ n: Int) -> Bool {
        Kernels.frameZip(op, y, a, aScalar: aScalar, b, bScalar: bScalar, n)
    }
    package static func zipTableLoop(_ op: OpCode, _ y: UnsafeMutablePointer<Float>, frame: UnsafeMutablePointer<Float>,
                                     _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ n: Int) -> Bool {
        Kernels.frameZipTable(op, y, frame, ta, tb, n)
    }
    package static func multiplyAddLoop(_ y: UnsafeMutablePointer<Float>, _ a: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>,
                                        _ c: UnsafeMutablePointer<Float>, _ n: Int) {
        Kernels.frameMultiplyAdd(y, a, b, c, n)
    }
    package static func multiplyAddTableLoop(_ y: UnsafeMutablePointer<Float>, frame: UnsafeMutablePointer<Float>,
                                             _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ tc: UnsafePointer<Int>, _ n: Int) {
        Kernels.frameMultiplyAddTable(y, frame, ta, tb, tc, n)
    }
    package static func reduceLoop(_ op: OpCode, _ x: UnsafeMutablePointer<Float>, _ outer: Int, _ extent: Int, _ inner: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ policy: KernelPolicy) {
        Kernels.reduceTyped(op, x, outer, extent, inner, y, policy)
    }
}

extension Kernels {
    @inline(__always)
    static func frameMap<T: KernelFloat>(_ op: OpCode, _ x: UnsafeMutablePointer<T>, _ y: UnsafeMutablePointer<T>, _ n: Int) -> Bool {
        withUnaryFunction(op, MapBody(x: x, y: y, n: n))
    }

    @inline(__always)
    static func frameZip<T: KernelFloat>(_ op: OpCode, _ y: UnsafeMutablePointer<T>, _ a: UnsafeMutablePointer<T>, aScalar: Bool,
                                         _ b: UnsafeMutablePointer<T>, bScalar: Bool, _ n: Int) -> Bool {
        withBinaryFunction(op, FlatBody(y: y, a: a, aScalar: aScalar, b: b, bScalar: bScalar, n: n))
    }

    @inline(__always)
    static func frameZipTable<T: KernelFloat>(_ op: OpCode, _ y: UnsafeMutablePointer<T>, _ frame: UnsafeMutablePointer<T>,
                                              _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ n: Int) -> Bool {
        withBinaryFunction(op, TableBody(y: y, frame: frame, ta: ta, tb: tb, n: n))
    }

    @inline(__always)
    static func frameMultiplyAdd<T: KernelFloat>(_ y: UnsafeMutablePointer<T>, _ a: UnsafeMutablePointer<T>, _ b: UnsafeMutablePointer<T>,
                                                 _ c: UnsafeMutablePointer<T>, _ n: Int) {
        for k in 0..<n { y[k] = productSum(a[k], b[k], c[k]) }
    }

    @inline(__always)
    static func frameMultiplyAddTable<T: KernelFloat>(_ y: UnsafeMutablePointer<T>, _ frame: UnsafeMutablePointer<T>,
                                                      _ ta: UnsafePointer<Int>, _ tb: UnsafePointer<Int>, _ tc: UnsafePointer<Int>, _ n: Int) {
        for k in 0..<n { y[k] = productSum(frame[ta[k]], frame[tb[k]], frame[tc[k]]) }
    }

    /// A binary function over flat operands (a single-element operand read throughout).
    private struct FlatBody<T: KernelFloat>: BinaryKernelBody {
        let y: UnsafeMutablePointer<T>, a: UnsafeMutablePointer<T>, aScalar: Bool, b: UnsafeMutablePointer<T>, bScalar: Bool, n: Int
        @inline(__always) func run<F: BinaryFunction>(_: F.Type) { Kernels.zipFlat(y, a, aScalar: aScalar, b, bScalar: bScalar, n, F.self) }
    }

    /// A binary function over operands read through index tables of absolute element offsets in
    /// the frame (-1: a zero from a folded gather's padding).
    private struct TableBody<T: KernelFloat>: BinaryKernelBody {
        let y: UnsafeMutablePointer<T>, frame: UnsafeMutablePointer<T>, ta: UnsafePointer<Int>, tb: UnsafePointer<Int>, n: Int
        @inline(__always) func run<F: BinaryFunction>(_: F.Type) {
            for k in 0..<n {
                let i = ta[k], j = tb[k]
                y[k] = F.apply(i >= 0 ? frame[i] : 0, j >= 0 ? frame[j] : 0)
            }
        }
    }
}
