import Adjoint
import AdjointTestSupport
import Synchronization
import Testing

/// Reading a differentiated value as a number inside a transform is reported once per transform.
@Suite("Value-read diagnostics", .serialized)
struct ValueReadDiagnosticsTests {
    /// Runs `body` with reports enabled and collected; other tests' reports (tests run in
    /// parallel) are told apart by the unusual shape `[7]` used here.
    static func collected(_ body: () throws -> Void) rethrows -> [String] {
        let messages = Mutex<[String]>([])
        let (enabled, handler) = (ValueReadDiagnostics.isEnabled, ValueReadDiagnostics.handler)
        ValueReadDiagnostics.isEnabled = true
        ValueReadDiagnostics.handler = { message in messages.withLock { $0.append(message) } }
        defer { (ValueReadDiagnostics.isEnabled, ValueReadDiagnostics.handler) = (enabled, handler) }
        try body()
        return messages.withLock { $0 }.filter { $0.contains("[7]") }
    }

    @Test("item() and a branch on it inside gradient and jvp are reported once; untracked reads and reads outside are not")
    func reports() throws {
        let x = try Tensor.linspace(-1, 1, count: 7)
        let inGradient = try Self.collected {
            _ = try gradient(at: x) { x in
                let y = try x * 2
                for _ in 0..<3 where try y.doubles[6] > 0 { _ = try y.scalars(as: Double.self) }   // read four times
                return try y.sum()
            }
        }
        #expect(inGradient.count == 1 && inGradient[0].contains("reverse mode") && inGradient[0].contains("select"))
        let inJVP = try Self.collected {
            _ = try jvp(at: x, direction: x) { x in _ = try x.doubles; return try x.exp() }
        }
        #expect(inJVP.count == 1 && inJVP[0].contains("forward mode"))
        let quiet = try Self.collected {
            _ = try gradient(at: x) { x in _ = x.untracked.doubles; return try x.sum() }
            _ = try (x * 2).doubles
        }
        #expect(quiet.isEmpty)
    }

    @Test("turned off, nothing is reported")
    func off() throws {
        let x = try Tensor.linspace(-1, 1, count: 7)
        let messages = Mutex<[String]>([])
        let (enabled, handler) = (ValueReadDiagnostics.isEnabled, ValueReadDiagnostics.handler)
        defer { (ValueReadDiagnostics.isEnabled, ValueReadDiagnostics.handler) = (enabled, handler) }
        ValueReadDiagnostics.isEnabled = false
        ValueReadDiagnostics.handler = { message in messages.withLock { $0.append(message) } }
        _ = try gradient(at: x) { x in _ = x.doubles; return try x.sum() }
        #expect(messages.withLock { $0 }.filter { $0.contains("[7]") }.isEmpty)
    }
}
