/// The CPU kernels behind ``dispatch(_:_:_:)``: one file per operator family.
package enum Kernels {
    /// Validates and runs `op`; returns its output (every operator has one today). Where an
    /// operand is on a device, its ``DeviceBackend`` runs the operator there instead.
    ///
    /// Under ``ExecutionPolicy/float64Debug`` an arithmetic operator whose floating-point inputs are
    /// all float32 runs on float64 copies and its float result is rounded to float32 once.
    package static func execute(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        if let backend = Tensor.deviceBackend(inputs) {
            // A custom operator's forward is Swift code over tensors: it runs on the device's
            // tensors as written, each of its operators where its operands are; a result it makes
            // on the CPU (raw loops, reading the operands' host copies) goes to their device.
            if op == .customCall { return try CustomKernels.execute(attributes, inputs).resident(on: backend.device, for: op.rawValue) }
            return try backend.execute(op, attributes, inputs)
        }
        let settings = NumericSettings.current
        if let low = settings.lowPrecision, op.family.computesArithmetic,
           inputs.contains(where: { $0.dtype == .float32 }), !inputs.contains(where: { $0.dtype.isFloatingPoint && $0.dtype != .float32 }) {
            // Mixed precision: GEMM inputs rounded to the storage precision, float32 arithmetic,
            // the float result stored in the low precision.
            func round(_ t: Tensor) throws -> Tensor { try cast(try cast(t, .dtype(low)), .dtype(.float32)) }
            let operands = op == .matmul ? try inputs.map(round) : inputs
            let output = try run(op, attributes, operands)
            return output.dtype == .float32 ? try round(output) : output
        }
        if settings.policy.float64Debug, op.family.computesArithmetic,
           inputs.contains(where: { $0.dtype == .float32 }), !inputs.contains(where: { $0.dtype.isFloatingPoint && $0.dtype != .float32 }) {
            let promoted = try inputs.map { $0.dtype == .float32 ? try cast($0, .dtype(.float64)) : $0 }
            let output = try run(op, attributes, promoted)
            return output.dtype == .float64 ? try cast(output, .dtype(.float32)) : output
        }
        return try run(op, attributes, inputs)
    }

    private static func run(_ op: OpCode, _ attributes: Attributes, _ inputs: [Tensor]) throws -> Tensor {
        switch op.family {
        case .creation: return try creation(op, attributes)
        case .unary: return try unary(op, inputs[0])
        case .binary:
            return op == .multiplyAdd ? try multiplyAdd(inputs[0], inputs[1], inputs[2]) : try binary(op, inputs[0], inputs[1])
        case .comparison:
            return op == .select ? try select(inputs[0], inputs[1], inputs[2]) : try compare(op, inputs[0], inputs[1])
        case .reduction: return try reduction(op, attributes, inputs[0])
        case .linalg: return try matmul(attributes, inputs[0], inputs[1])
        case .layout: return try layout(op, attributes, inputs)
        case .indexing: return try indexing(op, attributes, inputs)
        case .nn: return try nn(op, attributes, inputs)
        case .conversion: return try cast(inputs[0], attributes)
        case .inPlace:
            throw TensorError.invalidArgument(op: op.rawValue, detail: "in-place operators go through dispatchInPlace")
        case .custom: return try CustomKernels.execute(attributes, inputs)
        }
    }

    /// Checks an element type is a compute float type.
    static func requireFloat(_ t: Tensor, op: OpCode, role: String = "input") throws {
        guard t.dtype == .float64 || t.dtype == .float32 else {
            throw TensorError.unsupportedDType(
                op: op.rawValue, dtype: t.dtype,
                detail: "\(role) must be f64 or f32" + (t.dtype.isFloatingPoint ? " (cast f16/bf16 storage to f32 to compute)" : ""))
        }
    }

    static func requireSameDType(_ a: Tensor, _ b: Tensor, op: OpCode) throws {
        guard a.dtype == b.dtype else {
            throw TensorError.dtypeMismatch(op: op.rawValue, detail: "\(a.dtype) and \(b.dtype); cast one of them first")
        }
    }

    /// Attributes of the wrong case for an operator (only reachable through hand-built calls).
    static func badAttributes(_ op: OpCode, _ attributes: Attributes) -> TensorError {
        .invalidArgument(op: op.rawValue, detail: "attributes \(attributes) do not fit this operator")
    }

    /// A contiguous copy with fresh storage.
    static func contiguousCopy(_ t: Tensor) throws -> Tensor {
        let out = Tensor(uninitialized: t.shape, dtype: t.dtype)
        out.hostRawPointer.copyMemory(from: t.hostRawPointer, byteCount: t.elementCount * t.dtype.byteSize)
        return out
    }
}

extension OpFamily {
    /// Families whose float32 results depend on the precision they compute in (the float64 debug
    /// policy promotes these; layout, indexing, creation and casts only move or convert values).
    var computesArithmetic: Bool {
        switch self {
        case .unary, .binary, .comparison, .reduction, .linalg, .nn: return true
        case .creation, .layout, .indexing, .conversion, .inPlace, .custom: return false
        }
    }
}
