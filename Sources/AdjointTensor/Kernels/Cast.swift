extension Kernels {
    /// Converts every element to the target dtype.
    ///
    /// Floats narrow with round-to-nearest-even (f64 → bf16 rounds through f32); float → integer
    /// truncates toward zero and throws for NaN, infinities and out-of-range values; anything → bool
    /// is `x != 0`.
    static func cast(_ x: Tensor, _ attributes: Attributes) throws -> Tensor {
        guard case let .dtype(target) = attributes else { throw badAttributes(.cast, attributes) }
        if target == x.dtype { return x.withShape(x.shape) }
        let out = Tensor(uninitialized: x.shape, dtype: target)
        let n = x.elementCount
        // Fast paths between the float types.
        switch (x.dtype, target) {
        case (.float32, .float64): convert(x.elements(Float.self), out.elements(Double.self), n) { Double($0) }; return out
        case (.float64, .float32): convert(x.elements(Double.self), out.elements(Float.self), n) { Float($0) }; return out
        case (.float32, .float16): convert(x.elements(Float.self), out.elements(Float16.self), n) { Float16($0) }; return out
        case (.float16, .float32): convert(x.elements(Float16.self), out.elements(Float.self), n) { Float($0) }; return out
        case (.float32, .bfloat16): convert(x.elements(Float.self), out.elements(BFloat16.self), n) { BFloat16($0) }; return out
        case (.bfloat16, .float32): convert(x.elements(BFloat16.self), out.elements(Float.self), n) { $0.float }; return out
        default: break
        }
        var values = [Double](repeating: 0, count: n)
        switch x.dtype {
        case .float64: let p = x.elements(Double.self); for i in 0..<n { values[i] = p[i] }
        case .float32: let p = x.elements(Float.self); for i in 0..<n { values[i] = Double(p[i]) }
        case .float16: let p = x.elements(Float16.self); for i in 0..<n { values[i] = Double(Float(p[i])) }
        case .bfloat16: let p = x.elements(BFloat16.self); for i in 0..<n { values[i] = Double(p[i].float) }
        case .int32: let p = x.elements(Int32.self); for i in 0..<n { values[i] = Double(p[i]) }
        case .int64:
            let p = x.elements(Int64.self)
            if target == .int32 {
                let q = out.elements(Int32.self)
                for i in 0..<n {
                    guard let v = Int32(exactly: p[i]) else {
                        throw TensorError.invalidValue(op: OpCode.cast.rawValue, detail: "element \(i) = \(p[i]) does not fit i32")
                    }
                    q[i] = v
                }
                return out
            }
            for i in 0..<n { values[i] = Double(p[i]) }
        case .bool: let p = x.elements(Bool.self); for i in 0..<n { values[i] = p[i] ? 1 : 0 }
        }
        if target.isInteger {
            for i in 0..<n {
                let t = values[i].rounded(.towardZero)
                do { try checkRepresentable(t, target, op: OpCode.cast.rawValue) } catch {
                    throw TensorError.invalidValue(op: OpCode.cast.rawValue, detail: "element \(i) = \(values[i]) cannot convert to \(target)")
                }
                values[i] = t
            }
        }
        if target == .bfloat16 && x.dtype == .float64 {
            let q = out.elements(BFloat16.self)
            for i in 0..<n { q[i] = BFloat16(Float(values[i])) }
            return out
        }
        fill(out, count: n) { values[$0] }
        return out
    }

    @inline(__always)
    static func convert<S, D>(_ src: UnsafeMutablePointer<S>, _ dst: UnsafeMutablePointer<D>, _ n: Int, _ f: (S) -> D) {
        Parallelism.forEachRange(n, chunkSize: Parallelism.lightChunk) { r in for i in r { dst[i] = f(src[i]) } }
    }
}
