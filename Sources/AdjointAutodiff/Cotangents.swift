import AdjointTensor

/// The cotangent of every tape value during a backward pass: nothing (a symbolic zero), a tensor,
/// or — for a float64 or float32 rank-0 value that only the rank-0 rules (``ScalarVJP``) have
/// touched — the number itself, so a chain of scalar operations makes no tensors. A number becomes
/// a rank-0 tensor of the value's dtype when a tensor rule or the caller asks for it.
///
/// A float32 number is kept exactly in a `Double` and all arithmetic on it is done in `Float`.
struct Cotangents {
    private var tensors: [Tensor?]
    private var numbers: [Double]
    private var isNumber: [Bool]

    /// All zero, for `count` values; in the memory of `spare` (an earlier pass's lists) if given.
    init(count: Int, reusing spare: Cotangents? = nil) {
        (tensors, numbers, isNumber) = spare.map { ($0.tensors, $0.numbers, $0.isNumber) } ?? ([], [], [])
        clear()
        tensors.append(contentsOf: repeatElement(nil, count: count))
        numbers.append(contentsOf: repeatElement(0, count: count))
        isNumber.append(contentsOf: repeatElement(false, count: count))
    }

    /// The lists' memory in bytes.
    var capacityBytes: Int {
        tensors.capacity * MemoryLayout<Tensor?>.stride + numbers.capacity * 8 + isNumber.capacity
    }

    /// Drops every cotangent, keeping the lists' memory.
    mutating func clear() {
        tensors.removeAll(keepingCapacity: true)
        numbers.removeAll(keepingCapacity: true)
        isNumber.removeAll(keepingCapacity: true)
    }

    /// Whether value `id` has a (non-zero) cotangent.
    func contains(_ id: Int) -> Bool { isNumber[id] || tensors[id] != nil }

    /// Moves the cotangent of `id` out as a tensor of `dtype` (the value's), leaving a zero.
    mutating func takeTensor(_ id: Int, dtype: DType) throws -> Tensor? {
        if isNumber[id] {
            isNumber[id] = false
            return try numberAsTensor(id, dtype: dtype)
        }
        return tensors[id].take()
    }

    /// Moves the cotangent of rank-0 value `id` out as a number of type `T` (its dtype's).
    mutating func takeNumber<T: BinaryFloatingPoint & TensorScalar>(_ id: Int, as _: T.Type) -> T? {
        if isNumber[id] {
            isNumber[id] = false
            return T(numbers[id])
        }
        guard let tensor = tensors[id].take() else { return nil }
        return tensor.elements(T.self).pointee
    }

    /// Adds `new` to the cotangent of `id` (fan-out: a value read several times).
    mutating func add(_ new: Tensor, to id: Int) throws {
        if isNumber[id] {
            isNumber[id] = false
            tensors[id] = try numberAsTensor(id, dtype: new.dtype) + new
            return
        }
        guard let existing = tensors[id].take() else { tensors[id] = new; return }
        tensors[id] = try existing + new
    }

    /// The number of `id` as a rank-0 tensor of `dtype`.
    private func numberAsTensor(_ id: Int, dtype: DType) throws -> Tensor {
        dtype == .float32 ? Tensor(Float(numbers[id])) : try Tensor(numbers[id], dtype: dtype)
    }

    /// Adds the number `new` to the cotangent of rank-0 value `id` of `new`'s type, in that type
    /// (`existing + new`, the order of ``add(_:to:)``).
    mutating func add<T: BinaryFloatingPoint & TensorScalar>(_ new: T, to id: Int) {
        if isNumber[id] {
            numbers[id] = Double(T(numbers[id]) + new)
        } else if let existing = tensors[id].take() {
            numbers[id] = Double(existing.elements(T.self).pointee + new)
            isNumber[id] = true
        } else {
            numbers[id] = Double(new)
            isNumber[id] = true
        }
    }
}
