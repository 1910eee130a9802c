/// Brain floating point: the upper 16 bits of an IEEE binary32. Storage only; convert through `Float`.
public struct BFloat16: Hashable, Sendable, CustomStringConvertible {
    public var bitPattern: UInt16
    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds to nearest, ties to even; NaN stays NaN.
    @inlinable
    public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN { bitPattern = UInt16(truncatingIfNeeded: bits >> 16) | 0x0040; return }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
    public var description: String { float.description }
}

/// Swift types that can be the elements of a tensor.
public protocol TensorScalar {
    static var dtype: DType { get }
    /// Exact or nearest conversion to `Double`.
    var doubleValue: Double { get }
    /// Conversion from `Double`: rounding for floats; for integers truncation toward zero that
    /// saturates at the type's bounds, with NaN giving 0 (never a trap); `x != 0` for bools.
    init(fromDouble value: Double)
}

extension Double: TensorScalar {
    public static var dtype: DType { .float64 }
    public var doubleValue: Double { self }
    public init(fromDouble value: Double) { self = value }
}
extension Float: TensorScalar {
    public static var dtype: DType { .float32 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble value: Double) { self = Float(value) }
}
extension Float16: TensorScalar {
    public static var dtype: DType { .float16 }
    public var doubleValue: Double { Double(Float(self)) }
    public init(fromDouble value: Double) { self = Float16(Float(value)) }
}
extension BFloat16: TensorScalar {
    public static var dtype: DType { .bfloat16 }
    public var doubleValue: Double { Double(float) }
    public init(fromDouble value: Double) { self = BFloat16(Float(value)) }
}
extension Int32: TensorScalar {
    public static var dtype: DType { .int32 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble value: Double) {
        self = value.isNaN ? 0 : value <= Double(Int32.min) ? .min : value >= Double(Int32.max) ? .max : Int32(value)
    }
}
extension Int64: TensorScalar {
    public static var dtype: DType { .int64 }
    public var doubleValue: Double { Double(self) }
    public init(fromDouble value: Double) {
        // 2^63 is the first double above Int64.max.
        self = value.isNaN ? 0 : value < -0x1p63 ? .min : value >= 0x1p63 ? .max : Int64(value)
    }
}
extension Bool: TensorScalar {
    public static var dtype: DType { .bool }
    public var doubleValue: Double { self ? 1 : 0 }
    public init(fromDouble value: Double) { self = value != 0 }
}
