import RealModule

extension Kernels {
    static func creation(_ op: OpCode, _ attributes: Attributes) throws -> Tensor {
        switch (op, attributes) {
        case let (.full, .fill(shape, value, dtype)): return try full(shape, value, dtype)
        case let (.arange, .range(start, end, step, dtype)): return try arange(start, end, step, dtype)
        case let (.linspace, .linspace(start, end, count, dtype)): return try linspace(start, end, count, dtype)
        case let (.randomUniform, .random(shape, dtype, seed, stream, counter, low, high)):
            return try random(shape, dtype, RandomKey(seed: seed, stream: stream), counter, normal: false, low, high)
        case let (.randomNormal, .random(shape, dtype, seed, stream, counter, mean, std)):
            return try random(shape, dtype, RandomKey(seed: seed, stream: stream), counter, normal: true, mean, std)
        default: throw badAttributes(op, attributes)
        }
    }

    /// Writes `values[i]` converted to `dtype` into element `i` of `out` (integer/bool targets must be
    /// representable; the caller checks ranges).
    static func fill(_ out: Tensor, count: Int, _ value: (Int) -> Double) {
        let p = out.hostRawPointer
        switch out.dtype {
        case .float64: let q = p.assumingMemoryBound(to: Double.self); for i in 0..<count { q[i] = value(i) }
        case .float32: let q = p.assumingMemoryBound(to: Float.self); for i in 0..<count { q[i] = Float(value(i)) }
        case .float16: let q = p.assumingMemoryBound(to: Float16.self); for i in 0..<count { q[i] = Float16(value(i)) }
        case .bfloat16: let q = p.assumingMemoryBound(to: BFloat16.self); for i in 0..<count { q[i] = BFloat16(Float(value(i))) }
        case .int32: let q = p.assumingMemoryBound(to: Int32.self); for i in 0..<count { q[i] = Int32(value(i)) }
        case .int64: let q = p.assumingMemoryBound(to: Int64.self); for i in 0..<count { q[i] = Int64(value(i)) }
        case .bool: let q = p.assumingMemoryBound(to: Bool.self); for i in 0..<count { q[i] = value(i) != 0 }
        }
    }

    /// Checks that `value` fits `dtype` (integers: finite, integral, in range).
    static func checkRepresentable(_ value: Double, _ dtype: DType, op: String) throws {
        let bounds: (Double, Double)
        switch dtype {
        case .int32: bounds = (Double(Int32.min), Double(Int32.max))
        case .int64: bounds = (-9.223372036854775808e18, 9.223372036854774784e18)
        default: return
        }
        guard value.isFinite, value.rounded(.towardZero) == value, value >= bounds.0, value <= bounds.1 else {
            throw TensorError.invalidValue(op: op, detail: "\(value) is not representable as \(dtype)")
        }
    }

    static func full(_ shape: [Int], _ value: Double, _ dtype: DType) throws -> Tensor {
        try ShapeRules.checkShape(shape, op: OpCode.full.rawValue)
        try checkRepresentable(value, dtype, op: OpCode.full.rawValue)
        let out = Tensor(uninitialized: shape, dtype: dtype)
        let n = out.elementCount
        if value == 0 && value.sign == .plus {
            out.hostRawPointer.initializeMemory(as: UInt8.self, repeating: 0, count: n * dtype.byteSize)
        } else {
            fill(out, count: n) { _ in value }
        }
        return out
    }

    static func arange(_ start: Double, _ end: Double, _ step: Double, _ dtype: DType) throws -> Tensor {
        let op = OpCode.arange.rawValue
        guard step != 0, step.isFinite, start.isFinite, end.isFinite else {
            throw TensorError.invalidArgument(op: op, detail: "start \(start), end \(end) and step \(step) must be finite, step non-zero")
        }
        let count = Swift.max(0, Int(((end - start) / step).rounded(.up)))
        try checkRepresentable(start, dtype, op: op)
        try checkRepresentable(start + Double(Swift.max(count - 1, 0)) * step, dtype, op: op)
        let out = Tensor(uninitialized: [count], dtype: dtype)
        fill(out, count: count) { start + Double($0) * step }
        return out
    }

    static func linspace(_ start: Double, _ end: Double, _ count: Int, _ dtype: DType) throws -> Tensor {
        let op = OpCode.linspace.rawValue
        guard count >= 0, start.isFinite, end.isFinite else {
            throw TensorError.invalidArgument(op: op, detail: "count \(count) must be ≥ 0 and the ends finite")
        }
        guard dtype.isFloatingPoint else { throw TensorError.unsupportedDType(op: op, dtype: dtype, detail: "linspace produces floats") }
        let out = Tensor(uninitialized: [count], dtype: dtype)
        let step = count > 1 ? (end - start) / Double(count - 1) : 0
        fill(out, count: count) { i in i == count - 1 && count > 1 ? end : start + Double(i) * step }
        return out
    }

    /// Uniform numbers in [low, high) or normal numbers (mean, std) from Philox blocks.
    ///
    /// Element `i` of a float32 uniform tensor uses 32-bit word `i` of the stream (four per block);
    /// float64 uses two words per element. Normals use Box–Muller on two uniforms, two normals per
    /// pair. The mapping depends only on the element index and `counter`, never on threads.
    static func random(_ shape: [Int], _ dtype: DType, _ key: RandomKey, _ counter: UInt64, normal: Bool,
                       _ a: Double, _ b: Double) throws -> Tensor {
        let op = normal ? OpCode.randomNormal.rawValue : OpCode.randomUniform.rawValue
        try ShapeRules.checkShape(shape, op: op)
        guard dtype == .float64 || dtype == .float32 else {
            throw TensorError.unsupportedDType(op: op, dtype: dtype, detail: "random numbers are drawn as f64 or f32 (cast afterwards)")
        }
        guard a.isFinite, b.isFinite, normal ? b >= 0 : a <= b else {
            throw TensorError.invalidArgument(op: op, detail: normal ? "mean \(a) and std \(b) must be finite, std ≥ 0" : "bounds [\(a), \(b)) must be finite and ordered")
        }
        let out = Tensor(uninitialized: shape, dtype: dtype)
        let n = out.elementCount
        // Each element consumes one word (f32) or two (f64); normals consume two uniforms each.
        let wordsPerUniform = dtype == .float64 ? 2 : 1
        let uniformsPerBlock = 4 / wordsPerUniform
        @inline(__always) func uniform(_ u: Int) -> Double {
            let blockIndex = counter &+ UInt64(u / uniformsPerBlock)
            let r = key.bits(block: blockIndex)
            let slot = u % uniformsPerBlock
            if wordsPerUniform == 2 {
                let (hi, lo) = slot == 0 ? (r.0, r.1) : (r.2, r.3)
                return Double((UInt64(hi) << 32 | UInt64(lo)) >> 11) * 0x1p-53
            }
            let word = slot == 0 ? r.0 : slot == 1 ? r.1 : slot == 2 ? r.2 : r.3
            return Double(word >> 8) * 0x1p-24
        }
        func run<T: KernelFloat>(_: T.Type) {
            let p = out.elements(T.self)
            Parallelism.forEachRange(n, chunkSize: 1 << 12) { r in
                for i in r {
                    if normal {
                        let pair = i / 2
                        let u1 = uniform(2 * pair), u2 = uniform(2 * pair + 1)
                        let radius = (-2 * Double.log(1 - u1)).squareRoot()
                        let angle = 2 * Double.pi * u2
                        let z = i % 2 == 0 ? radius * Double.cos(angle) : radius * Double.sin(angle)
                        p[i] = T(a + b * z)
                    } else {
                        let v = T(a + (b - a) * uniform(i))
                        p[i] = v < T(b) || a == b ? v : T(a)
                    }
                }
            }
        }
        if dtype == .float64 { run(Double.self) } else { run(Float.self) }
        return out
    }
}
