import AdjointTensor

/// The tensors a run produced, step by step, for comparing two runs bit for bit.
///
/// Tensors are kept by value (copy-on-write, so recording costs a copy only when the run later
/// writes the same storage in place); ``firstDifference(from:)`` names the first step, tensor and
/// element where two traces disagree.
public struct RunTrace {
    public struct Entry {
        public var step: Int
        public var name: String
        public var tensor: Tensor
    }

    /// Where two traces first disagree.
    public struct Difference: Equatable, CustomStringConvertible {
        public var step: Int
        public var tensor: String
        /// Row-major index of the first differing element, with both values (as Double); `nil` when
        /// the tensors differ in name, shape or dtype, or one trace ends early.
        public var element: Int?
        public var values: (Double, Double)?
        /// The largest |a − b| over the tensor, when shapes agree.
        public var maxAbsoluteDifference: Double?
        public var detail: String

        public static func == (a: Difference, b: Difference) -> Bool {
            a.step == b.step && a.tensor == b.tensor && a.element == b.element && a.detail == b.detail
        }

        public var description: String {
            var text = "step \(step), tensor '\(tensor)'"
            if let element, let values { text += ", element \(element): \(values.0) vs \(values.1)" }
            if let maxAbsoluteDifference { text += " (max |Δ| \(maxAbsoluteDifference))" }
            return detail.isEmpty ? text : text + ": " + detail
        }
    }

    public private(set) var entries: [Entry] = []

    public init() {}

    /// Records `tensors` as the state after `step`.
    public mutating func record(step: Int, _ tensors: [(name: String, tensor: Tensor)]) {
        for (name, tensor) in tensors { entries.append(Entry(step: step, name: name, tensor: tensor)) }
    }

    /// The first entry, in recording order, that is not bitwise equal in `other`; `nil` when the
    /// traces are identical.
    public func firstDifference(from other: RunTrace) -> Difference? {
        for (index, a) in entries.enumerated() {
            guard index < other.entries.count else {
                return Difference(step: a.step, tensor: a.name, detail: "the other run ends before this entry")
            }
            let b = other.entries[index]
            guard a.step == b.step, a.name == b.name else {
                return Difference(step: a.step, tensor: a.name, detail: "the other run recorded step \(b.step) '\(b.name)' here")
            }
            guard a.tensor.shape == b.tensor.shape, a.tensor.dtype == b.tensor.dtype else {
                return Difference(step: a.step, tensor: a.name, detail: "\(a.tensor.valueType) vs \(b.tensor.valueType)")
            }
            let bytes = a.tensor.elementCount * a.tensor.dtype.byteSize
            if memcmp(a.tensor.rawPointer, b.tensor.rawPointer, bytes) == 0 { continue }
            let x = a.tensor.doubles, y = b.tensor.doubles
            let width = a.tensor.dtype.byteSize
            let first = (0..<a.tensor.elementCount).first {
                memcmp(a.tensor.rawPointer + $0 * width, b.tensor.rawPointer + $0 * width, width) != 0
            } ?? 0
            let worst = zip(x, y).map { Swift.abs($0 - $1) }.max() ?? 0
            return Difference(step: a.step, tensor: a.name, element: first, values: (x[first], y[first]),
                              maxAbsoluteDifference: worst, detail: "")
        }
        if other.entries.count > entries.count {
            let extra = other.entries[entries.count]
            return Difference(step: extra.step, tensor: extra.name, detail: "this run ends before the other's entry")
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
