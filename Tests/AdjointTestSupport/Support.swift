import Adjoint
import Testing

/// Element-wise closeness with a relative-or-absolute tolerance.
public func isClose(_ a: [Double], _ b: [Double], tolerance: Double = 1e-12) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in
        x == y || Swift.abs(x - y) <= tolerance * Swift.max(1, Swift.abs(x), Swift.abs(y))
    }
}

/// Bitwise equality of two tensors' contents (shape, dtype and bytes).
public func bitwiseEqual(_ a: Tensor, _ b: Tensor) -> Bool {
    guard a.shape == b.shape, a.dtype == b.dtype else { return false }
    return memcmp(a.rawPointer, b.rawPointer, a.elementCount * a.dtype.byteSize) == 0
}

/// ``bitwiseEqual(_:_:)`` except that any two NaNs count as equal: which of two NaN operands an
/// addition returns (so a NaN's sign and payload) depends on the order a compiler put them in.
public func bitwiseEqualUpToNaN(_ a: Tensor, _ b: Tensor) -> Bool {
    guard a.shape == b.shape, a.dtype == b.dtype, a.dtype == .float64 || a.dtype == .float32 else { return bitwiseEqual(a, b) }
    guard let x = try? a.cast(to: .float64).doubles, let y = try? b.cast(to: .float64).doubles else { return false }
    return zip(x, y).allSatisfy { ($0.isNaN && $1.isNaN) || $0.bitPattern == $1.bitPattern }
}

/// Runs `body` with the kernels' thread count set to `n` on this thread (tests running at the same
/// time on other threads are not affected).
public func withThreads<R>(_ n: Int, _ body: () throws -> R) rethrows -> R {
    try Parallelism.withThreadCount(n, body)
}

/// A tensor from a literal list (float64).
public func t(_ values: [Double], _ shape: [Int]? = nil) -> Tensor {
    try! Tensor(values, shape: shape ?? [values.count])
}

#if canImport(Glibc)
import Glibc
#endif

import Foundation

/// A fresh empty directory under the system's temporary directory.
public func temporaryDirectory(_ label: String) -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-\(label)-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}

/// Runs `arguments` (looked up on PATH through /usr/bin/env) to completion; stdout and stderr together.
public func runProcess(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

/// A Python interpreter that can import `modules` (`$ADJOINT_PYTHON`, else `python3`), or `nil`.
/// Tests that need one say so with ``pythonAvailable(importing:)`` in `.enabled(if:)`, so the
/// runner reports them as skipped without it.
public func pythonInterpreter(importing modules: [String]) -> String? {
    let python = ProcessInfo.processInfo.environment["ADJOINT_PYTHON"] ?? "python3"
    if (try? runProcess([python, "-c", "import " + modules.joined(separator: ", ")]))?.status == 0 { return python }
    return nil
}

/// Whether ``pythonInterpreter(importing:)`` finds an interpreter (for `.enabled(if:)`).
public func pythonAvailable(importing modules: [String]) -> Bool { pythonInterpreter(importing: modules) != nil }

/// A value handed to other threads on purpose, in tests that check what happens then (the thread
/// sanitizer step of `.ci/run` watches them).
public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
