import AdjointTensor
import Foundation

/// The first operation that produced a NaN or an infinity inside a checked scope.
public struct AnomalyReport: Error, Equatable, CustomStringConvertible {
    public enum Phase: Equatable, Sendable {
        case forward
        /// While computing the derivative of tape node `node` (operator `op`).
        case backward(node: Int, op: OpCode)
    }

    public var op: OpCode
    /// 0-based index of the operation among those the scope saw.
    public var index: Int
    public var phase: Phase
    /// The unroll step being taken or reversed, when inside `unroll`.
    public var unrollStep: Int?
    /// What was found and where: "NaN at element 3 of f64[4]".
    public var value: String
    /// Whether every input was finite (false: the bad value came from outside the checked scope).
    public var inputsFinite: Bool
    /// The checked scope (`#fileID:#line` of ``withAnomalyDetection(file:line:_:)``) and the
    /// nearest caller frame outside Adjoint's modules.
    public var location: String

    public var description: String {
        var text = "\(value) produced by \(op.rawValue) (operation \(index) of the checked scope"
        switch phase {
        case .forward: text += ", forward"
        case let .backward(node, nodeOp): text += ", backward of tape node \(node) \(nodeOp.rawValue)"
        }
        if let unrollStep { text += ", unroll step \(unrollStep)" }
        text += ") at \(location)"
        if !inputsFinite { text += "; an input was already non-finite (it came from outside the checked scope)" }
        return text
    }
}

/// Runs `body` with every operation's output checked for NaN and infinities, forward and
/// backward (a gradient computed inside the scope is checked too); the first one found throws an
/// ``AnomalyReport``. Off unless asked for; on, it costs one pass over each output.
public func withAnomalyDetection<R>(file: StaticString = #fileID, line: UInt = #line, _ body: () throws -> R) throws -> R {
    let level = AnomalyLevel(location: "\(file):\(line)")
    return try InterpreterStack.current.withLevel(level, body)
}

final class AnomalyLevel: InterpreterLevel {
    let levelID = InterpreterStack.makeLevelID()
    let location: String
    var count = 0

    init(location: String) { self.location = location }

    func process(_ call: inout OpCall) throws {
        defer { count += 1 }
        let output = call.output
        guard output.dtype == .float64 || output.dtype == .float32, let bad = firstNonFinite(output) else { return }
        let stack = InterpreterStack.current
        let phase: AnomalyReport.Phase = stack.backwardNode.map { .backward(node: $0.index, op: $0.op) } ?? .forward
        let value = bad.value.isNaN ? "NaN" : (bad.value > 0 ? "+Inf" : "-Inf")
        throw AnomalyReport(op: call.op, index: count, phase: phase, unrollStep: stack.unrollStep,
                            value: "\(value) at element \(bad.index) of \(output.valueType)",
                            inputsFinite: call.inputs.allSatisfy { firstNonFinite($0) == nil },
                            location: location + Self.callerFrame())
    }

    func firstNonFinite(_ t: Tensor) -> (index: Int, value: Double)? {
        let n = t.elementCount
        if t.dtype == .float64 {
            let p = t.pointer(Double.self)
            for i in 0..<n where !p[i].isFinite { return (i, p[i]) }
        } else if t.dtype == .float32 {
            let p = t.pointer(Float.self)
            for i in 0..<n where !p[i].isFinite { return (i, Double(p[i])) }
        }
        return nil
    }

    /// ", called from <symbol>": the first stack frame outside Adjoint's modules, when there is one.
    static func callerFrame() -> String {
        let frames = Thread.callStackSymbols.dropFirst(2)
        guard let frame = frames.first(where: { f in !["Adjoint", "libswift", "libc.so", "libdispatch", "Testing"].contains { f.contains($0) } }) else { return "" }
        return ", called from " + frame.split(separator: " ", omittingEmptySubsequences: true).dropFirst(1).joined(separator: " ")
    }
}
