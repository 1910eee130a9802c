import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Live bytes of the tensors created inside a scope, in host or device memory — exact even when
/// other threads allocate at the same time (the pools' own counters are process-wide). A storage is charged to the accounts
/// active on the thread that created it (the innermost and every enclosing one) and credited back
/// when it is freed, on whatever thread.
///
/// ``ResourceLimits/memoryQuota`` is enforced against the scope's account.
// @unchecked Sendable: its only mutable state is two atomics.
public final class MemoryAccount: @unchecked Sendable {
    private let bytes = Atomic<Int>(0)
    private let peak = Atomic<Int>(0)

    public init() {}

    /// Bytes held now by storages created in the scope.
    public var liveBytes: Int { bytes.load(ordering: .relaxed) }
    /// The most ``liveBytes`` reached.
    public var peakBytes: Int { peak.load(ordering: .relaxed) }

    /// Runs `body` charging the storages it creates on this thread to this account (and to any
    /// enclosing one).
    public func track<R>(_ body: () throws -> R) rethrows -> R {
        let chain = AccountChain(self, next: AccountChain.current)
        let saved = pthread_getspecific(AccountChain.key)
        pthread_setspecific(AccountChain.key, Unmanaged.passUnretained(chain).toOpaque())
        defer { pthread_setspecific(AccountChain.key, saved) }
        return try withExtendedLifetime(chain) { try body() }
    }

    func add(_ n: Int) {
        let now = bytes.wrappingAdd(n, ordering: .relaxed).newValue
        if n > 0 { _ = peak.max(now, ordering: .relaxed) }
    }
}

/// The accounts active on a thread, innermost first; a storage keeps the chain it was created under.
// @unchecked Sendable: immutable (two `let`s); the per-thread current chain is a pthread key.
final class AccountChain: @unchecked Sendable {
    let account: MemoryAccount
    let next: AccountChain?

    init(_ account: MemoryAccount, next: AccountChain?) {
        self.account = account
        self.next = next
    }

    func charge(_ n: Int) {
        var link: AccountChain? = self
        while let l = link { l.account.add(n); link = l.next }
    }

    static var current: AccountChain? {
        pthread_getspecific(key).map { Unmanaged<AccountChain>.fromOpaque($0).takeUnretainedValue() }
    }

    static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()
}
