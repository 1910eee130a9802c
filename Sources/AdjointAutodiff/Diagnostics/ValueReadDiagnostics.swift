import AdjointTensor
import Foundation
import Synchronization

/// Reports, once per transform, code that reads a differentiated value as a number (`Tensor.item()`,
/// `Tensor.doubles`, `Tensor.scalars(as:)`) inside `gradient`, `vjp`, `jvp`, `hvp` and the other
/// transforms.
///
/// Such a read is allowed and often right (logging, a stopping test), but a Swift `if` on it is
/// invisible to the derivative: the result is the exact derivative of the branch that ran, which
/// jumps where the branch does. `Tensor.select(_:_:_:)` makes a choice the derivative sees;
/// reading `Tensor.untracked` states that the read is meant and is not reported.
///
/// On by default in debug builds (`-Onone`), off in release builds.
public enum ValueReadDiagnostics {
    private static let state = Mutex<(enabled: Bool, handler: @Sendable (String) -> Void)>(
        (_isDebugAssertConfiguration(), { message in FileHandle.standardError.write(Data((message + "\n").utf8)) }))

    /// Whether reads are reported.
    public static var isEnabled: Bool {
        get { state.withLock { $0.enabled } }
        set { state.withLock { $0.enabled = newValue } }
    }

    /// Where reports go (standard error by default).
    public static var handler: @Sendable (String) -> Void {
        get { state.withLock { $0.handler } }
        set { state.withLock { $0.handler = newValue } }
    }

    /// Reports a read of `tensor` inside `transform`, unless this transform has reported already.
    static func report(_ tensor: Tensor, transform: String, reported: inout Bool) {
        guard !reported else { return }
        let (enabled, handler) = state.withLock { ($0.enabled, $0.handler) }
        guard enabled else { return }
        reported = true
        handler("note: a value \(transform) differentiates (\(tensor.dtype)\(tensor.shape)) was read as a number; "
            + "a Swift branch on it is not seen by the derivative, which is then the derivative of the branch taken. "
            + "Use select(_:_:_:) for a choice the derivative follows, or read `.untracked` to mark the read as intended "
            + "(reported once per transform; ValueReadDiagnostics.isEnabled turns this off)")
    }
}
