import AdjointTensor
import AdjointIR

extension Tensor {
    /// A tensor of `shape` and `dtype` holding a copy of `bytes` — the one way a tensor is made
    /// from bytes read from a file or a record. The shape's element and byte counts are computed
    /// with overflow checks and must match `bytes.count` exactly; a `bool` tensor's bytes must each
    /// be 0 or 1 (any other bit pattern is not a valid `Bool`).
    ///
    /// - Throws: `TensorError.invalidValue(op:detail:)` naming `context`, the shape and, for a
    ///   bad bool, the byte's index and value.
    public init(copyingBytes bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType, context: String) throws {
        guard let count = ValueType(dtype: dtype, shape: shape).checkedByteCount else {
            throw TensorError.invalidValue(op: context, detail: "shape \(shape) has a negative dimension or a size that overflows")
        }
        guard count == bytes.count else {
            throw TensorError.invalidValue(op: context, detail: "a \(dtype) tensor of shape \(shape) needs \(count) bytes, got \(bytes.count)")
        }
        if dtype == .bool, let bad = bytes.firstIndex(where: { $0 > 1 }) {
            throw TensorError.invalidValue(op: context, detail: "bool element \(bad) is the byte \(bytes[bad]); a bool must be 0 or 1")
        }
        self.init(uninitialized: shape, dtype: dtype)
        if count > 0 { rawPointer.copyMemory(from: bytes.baseAddress!, byteCount: count) }
    }
}
