/// The element types a tensor can hold.
///
/// `float64` and `float32` are compute types; `float16` and `bfloat16` are storage types that kernels
/// convert through `float32`; `int32`, `int64` and `bool` hold indices, labels and masks.
public enum DType: String, Codable, CaseIterable, Sendable, Hashable, CustomStringConvertible {
    case float64 = "f64"
    case float32 = "f32"
    case float16 = "f16"
    case bfloat16 = "bf16"
    case int32 = "i32"
    case int64 = "i64"
    case bool = "bool"

    /// Bytes per element.
    @inlinable
    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16: return 2
        case .bool: return 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float64, .float32, .float16, .bfloat16: return true
        default: return false
        }
    }

    public var isInteger: Bool { self == .int32 || self == .int64 }

    public var description: String { rawValue }
}

/// The static type of a value in a graph: element type and shape.
public struct ValueType: Hashable, Codable, Sendable, CustomStringConvertible {
    public var dtype: DType
    public var shape: [Int]

    public init(dtype: DType, shape: [Int]) {
        self.dtype = dtype
        self.shape = shape
    }

    public var description: String {
        "\(dtype)[\(shape.map(String.init).joined(separator: ","))]"
    }

    /// Elements of a value of this type.
    @inlinable public var elementCount: Int { shape.reduce(1, *) }

    /// Bytes of a contiguous value of this type, or `nil` when a dimension is negative or the
    /// element or byte count does not fit in an `Int` (a shape read from a file, not yet trusted).
    public var checkedByteCount: Int? {
        var count = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { return nil }
            count = product
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        return overflow ? nil : bytes
    }
    /// Bytes of a contiguous value of this type.
    @inlinable public var byteCount: Int { elementCount * dtype.byteSize }
}
