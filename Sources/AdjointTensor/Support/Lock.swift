import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A value behind a `Mutex`, whose lock and unlock ThreadSanitizer also sees.
///
/// The standard library's `Mutex` on Linux is a futex word handled inside the (uninstrumented)
/// runtime, so ThreadSanitizer sees no happens-before edge between one critical section and the
/// next and reports every access inside them as a race. When the process runs under
/// ThreadSanitizer (its `__tsan_acquire` and `__tsan_release` resolve), each critical section
/// reports an acquire of this lock's address on entry and a release on exit; otherwise the two
/// calls are a load and a branch. Every lock in the runtime is one of these (or, where one more
/// allocation would cost, an inline `Mutex` reporting the same way: a storage's write list), so
/// the sanitizer run of `.ci/run` checks the data they guard rather than drowning in false reports.
package final class Lock<Value>: @unchecked Sendable {
    // @unchecked: the value is reached only through `withLock`, under the mutex.
    private let mutex: Mutex<Value>

    package init(_ value: sending Value) { mutex = Mutex(value) }

    /// Runs `body` with exclusive access to the value.
    @inline(__always)
    package func withLock<Result>(_ body: (inout sending Value) throws -> sending Result) rethrows -> sending Result {
        let address = Unmanaged.passUnretained(self).toOpaque()
        return try mutex.withLock { value in
            ThreadSanitizer.acquire(address)
            defer { ThreadSanitizer.release(address) }
            return try body(&value)
        }
    }
}

/// ThreadSanitizer's annotation entry points when the process runs under it, else nothing.
package enum ThreadSanitizer {
    private typealias Annotation = @convention(c) (UnsafeMutableRawPointer?) -> Void
    private static let entryPoints: (acquire: Annotation, release: Annotation)? = {
        guard let acquire = dlsym(nil, "__tsan_acquire"), let release = dlsym(nil, "__tsan_release") else { return nil }
        return (unsafeBitCast(acquire, to: Annotation.self), unsafeBitCast(release, to: Annotation.self))
    }()

    /// Whether the process runs under ThreadSanitizer.
    package static var isActive: Bool { entryPoints != nil }

    @inline(__always) package static func acquire(_ address: UnsafeMutableRawPointer) { entryPoints?.acquire(address) }
    @inline(__always) package static func release(_ address: UnsafeMutableRawPointer) { entryPoints?.release(address) }
}
