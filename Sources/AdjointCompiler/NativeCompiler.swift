import AdjointTensor
import Foundation
import AdjointIO
#if canImport(Glibc)
import Glibc
#endif

/// Whether a ``CompiledProgram`` also compiles its arithmetic to machine code.
public enum NativeCode: Sendable, Equatable {
    /// Interpret every instruction (no C compiler involved).
    case off
    /// Compile with `NativeCompiler.system` when one is found; interpret when none is, or when
    /// compilation fails (``CompiledProgram/nativeCodeFailure`` says why).
    case automatic
    /// Compile with `NativeCompiler.system`, and throw ``NativeCodeError`` when that is not possible.
    case required
    /// Compile with this compiler and cache, and throw when that is not possible.
    case compiler(NativeCompiler)

    /// The compiler to use, nil for `.off`.
    func resolve() throws -> NativeCompiler? {
        switch self {
        case .off: return nil
        case .automatic, .required: return try NativeCompiler.system()
        case let .compiler(c): return c
        }
    }
}

/// Why native code could not be made.
public enum NativeCodeError: Error, Equatable, CustomStringConvertible {
    /// No C compiler: `ADJOINT_CC` unset and none of the names found on `PATH`.
    case compilerNotFound(searched: [String])
    /// The compiler ran and failed (its command line, exit status and the start of its output).
    case compilationFailed(command: String, status: Int32, output: String)
    /// The compiled library could not be loaded, or lacks a function it should define.
    case loadFailed(path: String, message: String)

    public var description: String {
        switch self {
        case let .compilerNotFound(searched):
            return "native code: no C compiler found (set ADJOINT_CC; searched PATH for \(searched.joined(separator: ", ")))"
        case let .compilationFailed(command, status, output):
            return "native code: `\(command)` exited with status \(status): \(output)"
        case let .loadFailed(path, message): return "native code: cannot load \(path): \(message)"
        }
    }
}

/// The C compiler that turns a ``CompiledProgram``'s instructions into a shared library, and the
/// directory where compiled libraries are kept.
///
/// Libraries are cached by a hash of the source, the compiler and its flags: a program compiled
/// once (in any process) is loaded, not compiled, the next time. Each library's C source is kept
/// beside it (`<hash>.c`). A library is written to a
/// temporary name and renamed into place, so concurrent processes and a crash at any moment leave
/// either no library or a whole one.
public struct NativeCompiler: Sendable, Equatable {
    /// The compiler executable (a path or a name looked up on `PATH`).
    public var executable: String
    /// Where compiled libraries are kept.
    public var cacheDirectory: String

    /// Flags that keep the machine code's arithmetic that of the interpreter: no contraction into
    /// fused multiply-adds, no fast-math reassociation; `-fno-math-errno` only lets `sqrt` be the
    /// instruction the interpreter uses. `-O3` for its vectorizer's cost model, which versions a
    /// loop whose arrays may overlap (a run's arrays lie in one frame), and `-fno-trapping-math`
    /// (floating-point exceptions never trap here, and no one reads their flags) so that it may
    /// compute both arms of a formula's selects and blend them: each vector lane computes what
    /// the scalar loop computes for its element, and floating-point reductions are not
    /// vectorized without reassociation, which these flags forbid. `-mavx2` where the processor
    /// has AVX2 (read from `/proc/cpuinfo`): wider vectors, the same IEEE operations lane by lane (it does
    /// not enable fused multiply-adds). A run's loop reads and writes many arrays of one frame;
    /// GCC versions a loop for at most 10 pairs of them that may overlap by default, and leaves
    /// one with more scalar: up to 32 here (clang ignores the parameter).
    public static let flags = ["-O3", "-fPIC", "-shared", "-std=c11", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno",
                               "-fno-trapping-math", "--param=vect-max-version-for-alias-checks=32", "-w"] + vectorFlags

    /// `-mavx2` on an x86-64 processor whose `/proc/cpuinfo` lists `avx2`, else none. The flags
    /// are part of a library's cache key, so a cache directory shared with a machine without AVX2
    /// never hands it such a library.
    static let vectorFlags: [String] = {
        #if arch(x86_64)
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              line.split(separator: " ").contains("avx2") else { return [] }
        return ["-mavx2"]
        #else
        return []
        #endif
    }()
    static let candidates = ["cc", "clang", "gcc"]

    /// `uname -m`: the architecture libraries are built for.
    static let machine: String = {
        var names = utsname()
        uname(&names)
        return withUnsafeBytes(of: &names.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }()

    public init(executable: String, cacheDirectory: String) {
        self.executable = executable
        self.cacheDirectory = cacheDirectory
    }

    /// `ADJOINT_CC`, or the first of `cc`, `clang`, `gcc` on `PATH`; libraries in
    /// `ADJOINT_NATIVE_CACHE`, else `$XDG_CACHE_HOME/adjoint/native`, else
    /// `~/.cache/adjoint/native`.
    public static func system() throws -> NativeCompiler {
        let environment = ProcessInfo.processInfo.environment
        let cache = environment["ADJOINT_NATIVE_CACHE"]
            ?? environment["XDG_CACHE_HOME"].map { $0 + "/adjoint/native" }
            ?? environment["HOME"].map { $0 + "/.cache/adjoint/native" }
            ?? NSTemporaryDirectory() + "adjoint-native"
        if let cc = environment["ADJOINT_CC"], !cc.isEmpty { return NativeCompiler(executable: cc, cacheDirectory: cache) }
        let path = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        for name in candidates {
            for directory in path where access("\(directory)/\(name)", X_OK) == 0 {
                return NativeCompiler(executable: "\(directory)/\(name)", cacheDirectory: cache)
            }
        }
        throw NativeCodeError.compilerNotFound(searched: candidates)
    }

    /// Compiles `source` (or finds it compiled) and loads it.
    func library(_ source: String) throws -> NativeLibrary {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        // The machine is in the key too: a cache directory shared between machines of other
        // architectures must not hand one a library it cannot load.
        for byte in (source + executable + Self.flags.joined(separator: " ") + " -lm " + Self.machine).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let name = String(hash, radix: 16)
        let library = "\(cacheDirectory)/\(name).so"
        if access(library, R_OK) != 0 {
            do {
                try FileManager.default.createDirectory(atPath: cacheDirectory, withIntermediateDirectories: true)
            } catch {
                throw PersistenceError.io(path: cacheDirectory, operation: "create directory", errno: 0, message: "\(error)")
            }
            let unique = "\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
            let sourcePath = "\(cacheDirectory)/\(name)-\(unique).c", temporary = "\(cacheDirectory)/\(name)-\(unique).so"
            let log = "\(cacheDirectory)/\(name)-\(unique).log"
            defer { unlink(sourcePath); unlink(temporary); unlink(log) }
            try AtomicFile.write(Array(source.utf8), to: sourcePath)
            // Linked against libm so its functions bind to the current symbol versions, those the
            // interpreter calls (an unversioned reference binds to the oldest, whose error
            // handling differs: `log(-1)` would be +NaN instead of -NaN).
            try run(Self.flags + ["-o", temporary, sourcePath, "-lm"], log: log)
            // The source stays beside its library (`<hash>.c`), for reading what was compiled.
            _ = rename(sourcePath, "\(cacheDirectory)/\(name).c")
            guard rename(temporary, library) == 0 else {
                let code = errno
                throw PersistenceError.io(path: library, operation: "rename", errno: code, message: String(cString: strerror(code)))
            }
        }
        return try NativeLibrary(path: library)
    }

    /// Runs the compiler (`posix_spawnp`, output to a file beside the library, `waitpid` retried
    /// on EINTR).
    private func run(_ arguments: [String], log: String) throws {
        let argv = [executable] + arguments
        let command = argv.joined(separator: " ")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for p in cArguments { free(p) } }
        var pid = pid_t()
        let spawned = posix_spawnp(&pid, executable, &actions, nil, &cArguments, environ)
        guard spawned == 0 else {
            throw NativeCodeError.compilationFailed(command: command, status: -1, output: String(cString: strerror(spawned)))
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw NativeCodeError.compilationFailed(command: command, status: -1, output: "waitpid: \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS, spelled out (the C macros are not imported).
        let exited = status & 0x7f == 0, code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            let output = (try? AtomicFile.read(log)).map { String(decoding: $0.prefix(2000), as: UTF8.self) } ?? ""
            throw NativeCodeError.compilationFailed(command: command, status: exited ? code : -(status & 0x7f), output: output)
        }
    }
}

/// A loaded shared library of compiled segments (unloaded with its last reference).
// @unchecked Sendable: an immutable handle and function pointers; unloaded in `deinit`.
final class NativeLibrary: @unchecked Sendable {
    typealias Segment = @convention(c) (UnsafeMutableRawPointer) -> Void
    let path: String
    private let handle: UnsafeMutableRawPointer

    init(path: String) throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            throw NativeCodeError.loadFailed(path: path, message: dlerror().map { String(cString: $0) } ?? "dlopen failed")
        }
        self.path = path
        self.handle = handle
    }

    deinit { dlclose(handle) }

    /// A chunked run: the frame, the elements `begin ..< end`, the pointers bound in place of
    /// frame regions (`NativeCodeGenerator.bound`; null: none), where the run's fused
    /// reductions put each chunk's partial (`NativeCodeGenerator.fusedReductions(_:)`), and the
    /// calling thread's block buffers for them (`NativeCodeGenerator.fusedBlockBytes` each);
    /// both null when it has none.
    typealias ChunkedSegment = @convention(c) (UnsafeMutableRawPointer, Int, Int, UnsafePointer<UnsafeMutableRawPointer?>?,
                                               UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Void

    func function(_ name: String) throws -> Segment {
        guard let symbol = dlsym(handle, name) else { throw NativeCodeError.loadFailed(path: path, message: "no symbol \(name)") }
        return unsafeBitCast(symbol, to: Segment.self)
    }

    func chunkedFunction(_ name: String) throws -> ChunkedSegment {
        guard let symbol = dlsym(handle, name) else { throw NativeCodeError.loadFailed(path: path, message: "no symbol \(name)") }
        return unsafeBitCast(symbol, to: ChunkedSegment.self)
    }
}
