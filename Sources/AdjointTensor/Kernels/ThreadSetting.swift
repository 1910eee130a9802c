import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A small non-negative integer setting with a process-wide default and a per-thread override,
/// used for the kernels' thread count and execution policy: kernels read it on the thread that
/// dispatched the operator, so scoped overrides on different threads never interfere.
// @unchecked Sendable: the process default is atomic; overrides live in a pthread key per thread.
final class ThreadSetting: @unchecked Sendable {
    private let processDefault: Atomic<Int>
    private let key: pthread_key_t

    init(default value: Int) {
        processDefault = Atomic(value)
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        self.key = key
    }

    /// The process-wide value (threads without an override see it).
    var defaultValue: Int {
        get { processDefault.load(ordering: .relaxed) }
        set { processDefault.store(newValue, ordering: .relaxed) }
    }

    /// The calling thread's override, or else the process-wide value.
    var value: Int {
        if let raw = pthread_getspecific(key) { return Int(bitPattern: raw) - 1 }
        return defaultValue
    }

    /// Runs `body` with `value` in force on the calling thread, then restores what was there.
    func with<R>(_ value: Int, _ body: () throws -> R) rethrows -> R {
        let saved = pthread_getspecific(key)
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: value + 1))
        defer { pthread_setspecific(key, saved) }
        return try body()
    }
}

/// One object per thread, made on the thread's first access and released when the thread ends
/// (the interpreter stack, the memory a finished tape leaves for the next one).
// @unchecked Sendable: a pthread key and a factory; each thread reaches only its own value.
package final class ThreadLocal<Value: AnyObject>: @unchecked Sendable {
    private let key: pthread_key_t
    private let make: () -> Value

    package init(_ make: @escaping () -> Value) {
        self.make = make
        var key = pthread_key_t()
        pthread_key_create(&key) { raw in
            #if canImport(Glibc)
            if let raw { Unmanaged<AnyObject>.fromOpaque(raw).release() }
            #else
            Unmanaged<AnyObject>.fromOpaque(raw).release()
            #endif
        }
        self.key = key
    }

    /// The calling thread's object.
    package var value: Value {
        if let raw = pthread_getspecific(key) {
            return unsafeDowncast(Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue(), to: Value.self)
        }
        let value = make()
        pthread_setspecific(key, Unmanaged.passRetained(value as AnyObject).toOpaque())
        return value
    }
}
