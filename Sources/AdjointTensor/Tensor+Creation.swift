extension Tensor {
    /// A tensor holding `scalars` in row-major order.
    ///
    /// - Throws: ``TensorError/shapeMismatch(op:detail:)`` when the count does not match `shape`.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public init<T: TensorScalar>(_ scalars: [T], shape: [Int]) throws {
        try ShapeRules.checkShape(shape, op: "Tensor.init")
        guard shape.reduce(1, *) == scalars.count else {
            throw TensorError.shapeMismatch(op: "Tensor.init", detail: "\(scalars.count) scalars for shape \(shapeText(shape)) (\(shape.reduce(1, *)) elements)")
        }
        self.init(uninitialized: shape, dtype: T.dtype)
        copyElements(scalars)
    }

    /// A 1-D tensor.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public init<T: TensorScalar>(_ scalars: [T]) {
        self.init(uninitialized: [scalars.count], dtype: T.dtype)
        copyElements(scalars)
    }

    /// Copies `scalars` into the (uninitialized, exactly as large) storage: one `memcpy` for the
    /// trivial scalar types (this generic code is not specialized in callers, and the element-wise
    /// generic copy costs several times the allocation).
    private func copyElements<T: TensorScalar>(_ scalars: [T]) {
        scalars.withUnsafeBytes { src in
            guard let base = src.baseAddress else { return }
            if _isPOD(T.self) {
                rawPointer.copyMemory(from: base, byteCount: src.count)
            } else {
                pointer(T.self).update(from: base.assumingMemoryBound(to: T.self), count: scalars.count)
            }
        }
    }

    /// A rank-0 tensor.
    @_specialize(where T == Double)
    @_specialize(where T == Float)
    public init<T: TensorScalar>(_ scalar: T) {
        self.init(uninitialized: [], dtype: T.dtype)
        pointer(T.self).pointee = scalar
    }

    /// A rank-0 tensor of `dtype` holding `value`.
    public init(_ value: Double, dtype: DType) throws {
        self = try Tensor.full([], value, dtype: dtype)
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float64) throws -> Tensor {
        try full(shape, 0, dtype: dtype)
    }

    public static func ones(_ shape: [Int], dtype: DType = .float64) throws -> Tensor {
        try full(shape, 1, dtype: dtype)
    }

    /// Every element `value` (which must be representable in `dtype`).
    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.full, .fill(shape: shape, value: value, dtype: dtype), [])
    }

    /// Zeros (or ones) with this tensor's shape and dtype.
    /// On this tensor's device.
    public func zerosLike() throws -> Tensor { try Tensor.full(shape, 0, dtype: dtype, on: device) }
    public func onesLike() throws -> Tensor { try Tensor.full(shape, 1, dtype: dtype, on: device) }

    /// `start, start + step, …` below `end`.
    public static func arange(_ start: Double = 0, _ end: Double, step: Double = 1, dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.arange, .range(start: start, end: end, step: step, dtype: dtype), [])
    }

    /// `count` evenly spaced values from `start` to `end` inclusive.
    public static func linspace(_ start: Double, _ end: Double, count: Int, dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.linspace, .linspace(start: start, end: end, count: count, dtype: dtype), [])
    }

    /// Uniform numbers in `[low, high)` from `key` (Philox4x32-10), starting at block `counter`.
    public static func uniform(_ shape: [Int], key: RandomKey, counter: UInt64 = 0, low: Double = 0, high: Double = 1,
                               dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.randomUniform, .random(shape: shape, dtype: dtype, seed: key.seed, stream: key.stream,
                                              counter: counter, low: low, high: high), [])
    }

    /// Normal numbers with `mean` and standard deviation `std` from `key` (Box–Muller over Philox).
    public static func normal(_ shape: [Int], key: RandomKey, counter: UInt64 = 0, mean: Double = 0, std: Double = 1,
                              dtype: DType = .float64) throws -> Tensor {
        try dispatch1(.randomNormal, .random(shape: shape, dtype: dtype, seed: key.seed, stream: key.stream,
                                             counter: counter, low: mean, high: std), [])
    }
}

extension Tensor {
    /// The elements converted to `T`, row-major.
    public func scalars<T: TensorScalar>(as _: T.Type) -> [T] {
        if dtype == T.dtype {
            if !traceTags.isEmpty { InterpreterStack.current.reportValueRead(self) }
            return Array(UnsafeBufferPointer(start: pointer(T.self), count: elementCount))
        }
        return doubles.map { T(fromDouble: $0) }
    }

    /// The elements as `Double`, row-major, whatever the dtype.
    public var doubles: [Double] {
        if !traceTags.isEmpty { InterpreterStack.current.reportValueRead(self) }
        let n = elementCount
        switch dtype {
        case .float64: return Array(UnsafeBufferPointer(start: pointer(Double.self), count: n))
        case .float32: return (0..<n).map { Double(pointer(Float.self)[$0]) }
        case .float16: return (0..<n).map { Double(Float(pointer(Float16.self)[$0])) }
        case .bfloat16: return (0..<n).map { Double(pointer(BFloat16.self)[$0].float) }
        case .int32: return (0..<n).map { Double(pointer(Int32.self)[$0]) }
        case .int64: return (0..<n).map { Double(pointer(Int64.self)[$0]) }
        case .bool: return (0..<n).map { pointer(Bool.self)[$0] ? 1 : 0 }
        }
    }

    /// The single element of a one-element tensor, as `Double`.
    public func item() throws -> Double {
        guard elementCount == 1 else {
            throw TensorError.shapeMismatch(op: "Tensor.item", detail: "needs exactly one element, shape is \(shapeText(shape))")
        }
        return doubles[0]
    }
}

extension Tensor: CustomStringConvertible {
    /// `f64[2,3] [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]` (long tensors are elided).
    public var description: String {
        let values = doubles
        func render(_ axis: Int, _ start: Int) -> String {
            if axis == shape.count { return dtype.isFloatingPoint ? "\(values[start])" : "\(Int64(values[start]))" }
            let stride = shape[(axis + 1)...].reduce(1, *)
            let n = shape[axis]
            let shown = n > 8 ? [0, 1, 2, -1, n - 3, n - 2, n - 1] : Array(0..<n)
            return "[" + shown.map { $0 < 0 ? "…" : render(axis + 1, start + $0 * stride) }.joined(separator: ", ") + "]"
        }
        return "\(dtype)\(shapeText(shape))" + (device == .cpu ? " " : " on \(device) ") + (values.isEmpty && !shape.isEmpty ? "[]" : render(0, 0))
    }
}
