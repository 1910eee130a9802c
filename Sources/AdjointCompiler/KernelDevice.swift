import AdjointTensor
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Where generated CUDA kernels run: a GPU through the driver (``CUDAKernelDevice``), or this
/// machine's CPU running the same source as C++ thread by thread (``HostKernelEmulator``), which
/// is how the kernels' logic is tested where there is no GPU. Device memory is named by 64-bit
/// addresses, as the driver names it.
package protocol KernelDevice: AnyObject {
    /// What the kernels run on, in words.
    var name: String { get }
    /// Compiles and loads a CUDA source (``NativeCodeGenerator``'s dialect) as a module.
    func load(_ source: String) throws -> any KernelModule
    /// `bytes` bytes of device memory (released with ``release(_:)``).
    func allocate(_ bytes: Int) throws -> UInt64
    func release(_ address: UInt64)
    func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws
    func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws
    /// Waits until everything launched has run.
    func synchronize() throws
    /// A stream of its own: launches and copies on it run in order, asynchronously to the host
    /// and to other streams where the device is asynchronous.
    func makeStream() throws -> any KernelStream
    /// Enqueues a matrix product, or a batch of them, on `stream` (nil: the default stream):
    /// cuBLAS on a GPU.
    ///
    /// - Throws: ``KernelDeviceError/invalidGEMM(_:)`` for dimensions BLAS refuses (checked before
    ///   anything is enqueued), and the device's errors.
    func gemm(_ product: GEMM, on stream: (any KernelStream)?) throws
}

/// A device's stream (see ``KernelDevice/makeStream()``).
package protocol KernelStream: AnyObject {
    /// Copies in the stream's order: the host memory must stay valid (and, copied to the device,
    /// unchanged) until the stream has been synchronised past the copy.
    func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws
    func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws
    /// Copies between device addresses in the stream's order.
    func copy(device source: UInt64, toDevice destination: UInt64, bytes: Int) throws
    /// An event at this point of the stream.
    func record() throws -> any KernelEvent
    /// Makes later work on the stream wait for `event`.
    func wait(_ event: any KernelEvent) throws
    /// Waits until everything enqueued on the stream has run.
    func synchronize() throws
}

/// A point in a stream's work (see ``KernelStream/record()``). Sendable: the caching allocator
/// keeps events with the blocks they guard and queries them from any thread.
package protocol KernelEvent: AnyObject, Sendable {
    /// Whether the work before the event has run.
    func isComplete() throws -> Bool
    func synchronize() throws
    /// The device's milliseconds from `start` to this event.
    func milliseconds(since start: any KernelEvent) throws -> Double
}

/// A loaded module: its kernels by name, launched on `blocks` blocks of `threads` threads with
/// `arguments` (each a 64-bit value: a device address or a count). The kernels take one
/// (`adjoint_segment_<k>(base)`), two (`…_sums(scratch, partials)`, `…_combine(partials, frame)`)
/// or five (`adjoint_chunked_<k>(base, begin, end, bound, scratch)`) arguments.
package protocol KernelModule: AnyObject {
    /// Launches `kernel` on `stream` (nil: the device's default stream).
    func launch(_ kernel: String, blocks: Int, threads: Int, arguments: [UInt64], on stream: (any KernelStream)?) throws
}

extension KernelModule {
    /// Launches `kernel` on the device's default stream.
    package func launch(_ kernel: String, blocks: Int, threads: Int, arguments: [UInt64]) throws {
        try launch(kernel, blocks: blocks, threads: threads, arguments: arguments, on: nil)
    }
}

/// Why a kernel could not be run.
package enum KernelDeviceError: Error, Equatable, CustomStringConvertible {
    /// The module has no kernel of that name.
    case noKernel(String)
    /// A launch with an argument count no generated kernel takes.
    case badArguments(kernel: String, count: Int)
    /// A stream or event of another kind of device.
    case foreignStream(String)
    /// The host compiler failed on the emulated source: the command and what it printed.
    case compilationFailed(command: String, output: String)
    /// The emulated module could not be loaded.
    case loadFailed(path: String, reason: String)
    /// A matrix product BLAS would refuse: what is wrong with it.
    case invalidGEMM(String)

    package var description: String {
        switch self {
        case let .noKernel(name): return "the module has no kernel \(name)"
        case let .badArguments(kernel, count): return "\(kernel) launched with \(count) arguments; generated kernels take 1, 2, 4 or 5"
        case let .foreignStream(what): return "\(what) belongs to another kind of device"
        case let .compilationFailed(command, output): return "\(command) failed:\n\(output)"
        case let .loadFailed(path, reason): return "loading \(path): \(reason)"
        case let .invalidGEMM(reason): return "invalid matrix product: \(reason)"
        }
    }
}

/// A GPU: kernels compiled by ``NVRTC`` for the device's architecture and run through the
/// ``CUDADriver``; matrix products through ``CUBLAS``, loaded on the first one.
package final class CUDAKernelDevice: KernelDevice {
    package let nvrtc: NVRTC
    package let driver: CUDADriver
    /// cuBLAS once a product has asked for it (a failure to load is kept and thrown again).
    private let blas = Mutex<Result<CUBLAS, any Error>?>(nil)
    package init(nvrtc: NVRTC, driver: CUDADriver) { (self.nvrtc, self.driver) = (nvrtc, driver) }

    package func gemm(_ product: GEMM, on stream: (any KernelStream)?) throws {
        if let reason = product.invalidity { throw KernelDeviceError.invalidGEMM(reason) }
        let given = try stream.map { try Stream.of($0, "the stream") }
        try driver.makeCurrent()
        let cublas = try blas.withLock { loaded -> Result<CUBLAS, any Error> in
            if let loaded { return loaded }
            let made = Result { try CUBLAS.load() }
            loaded = made
            return made
        }.get()
        try cublas.gemm(product, stream: given?.stream.handle, workspace: try given?.blasWorkspace())
    }

    package var name: String { "\(driver.deviceName) (compute capability \(driver.capability.major).\(driver.capability.minor))" }

    package func load(_ source: String) throws -> any KernelModule {
        let image = try nvrtc.compile(source, name: "program.cu", target: .cubin(sm: driver.capability.major * 10 + driver.capability.minor))
        return Module(try driver.module(image))
    }

    final class Module: KernelModule {
        let module: CUDADriver.Module
        var functions: [String: OpaquePointer?] = [:]
        init(_ module: CUDADriver.Module) { self.module = module }
        func launch(_ kernel: String, blocks: Int, threads: Int, arguments: [UInt64], on stream: (any KernelStream)?) throws {
            let function: OpaquePointer?
            if let known = functions[kernel] { function = known } else {
                function = try module.function(kernel)
                functions[kernel] = function
            }
            let handle = try stream.map { try Stream.of($0, "the stream").stream }
            try module.driver.launch(function, blocks: blocks, threads: threads, arguments: arguments, stream: handle)
        }
    }

    final class Stream: KernelStream {
        let stream: CUDADriver.Stream
        /// cuBLAS's workspace for products on this stream, made by the first one
        /// (``CUBLAS/gemm(_:stream:workspace:)``), freed once the stream's work has run.
        private let workspace = Mutex<UInt64?>(nil)
        init(_ stream: CUDADriver.Stream) { self.stream = stream }
        deinit {
            guard let address = workspace.withLock({ $0 }) else { return }
            try? stream.synchronize()
            stream.driver.release(address)
        }
        /// This stream's cuBLAS workspace and its size.
        func blasWorkspace() throws -> (address: UInt64, bytes: Int) {
            let bytes = CUBLAS.workspaceBytes(computeCapability: stream.driver.capability.major)
            return (try workspace.withLock { made in
                if let made { return made }
                let address = try stream.driver.allocate(bytes)
                made = address
                return address
            }, bytes)
        }
        static func of(_ stream: any KernelStream, _ what: String) throws -> Stream {
            guard let s = stream as? Stream else { throw KernelDeviceError.foreignStream(what) }
            return s
        }
        func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws { try stream.copy(source, toDevice: destination, bytes: bytes) }
        func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws { try stream.copy(source, toHost: destination, bytes: bytes) }
        func copy(device source: UInt64, toDevice destination: UInt64, bytes: Int) throws { try stream.copy(device: source, toDevice: destination, bytes: bytes) }
        func record() throws -> any KernelEvent { Event(try stream.record()) }
        func wait(_ event: any KernelEvent) throws { try stream.wait(try Event.of(event).event) }
        func synchronize() throws { try stream.synchronize() }
    }

    final class Event: KernelEvent {
        let event: CUDADriver.Event
        init(_ event: CUDADriver.Event) { self.event = event }
        static func of(_ event: any KernelEvent) throws -> Event {
            guard let e = event as? Event else { throw KernelDeviceError.foreignStream("the event") }
            return e
        }
        func isComplete() throws -> Bool { try event.isComplete() }
        func synchronize() throws { try event.synchronize() }
        func milliseconds(since start: any KernelEvent) throws -> Double { try event.milliseconds(since: try Event.of(start).event) }
    }

    package func makeStream() throws -> any KernelStream { Stream(try driver.makeStream()) }

    package func allocate(_ bytes: Int) throws -> UInt64 { try driver.allocate(bytes) }
    package func release(_ address: UInt64) { driver.release(address) }
    package func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws {
        try driver.copy(source, toDevice: destination, bytes: bytes)
    }
    package func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws {
        try driver.copy(source, toHost: destination, bytes: bytes)
    }
    package func synchronize() throws { try driver.synchronizeDevice() }
}

/// The generated CUDA source compiled as C++ for this CPU by the system's C++ compiler, each
/// launch run block by block and thread by thread in order, on host memory. The device dialect
/// is mapped onto C++ by a few definitions (`__global__`, `blockIdx`…, the bit-pattern
/// intrinsics), so what runs is the kernels' own text: a wrong index, a missed edge test or a
/// partial in the wrong place shows up here as it would on a GPU. The arithmetic is the CPU's
/// (`-ffp-contract=off`, no fast-math): the same bits as the native code, library functions
/// included. Not a model of a GPU's concurrency: threads run one after another.
package final class HostKernelEmulator: KernelDevice {
    /// The compiler (`ADJOINT_CXX`, else `c++`).
    package let compiler: String
    /// The prefix of each load's temporary directory (`<prefix>-<name>`): its source and library,
    /// removed once the library is loaded (a loaded library needs no file) or the compiler has
    /// failed (its output is in the error), so no process leaves any behind.
    package let directoryPrefix: String

    package init() throws {
        compiler = ProcessInfo.processInfo.environment["ADJOINT_CXX"] ?? "c++"
        directoryPrefix = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-emulator-\(getpid())-\(UInt32.random(in: 0 ... .max))").path
    }

    package var name: String { "host emulation (\(compiler))" }

    /// What maps the device dialect onto C++; the launcher runs a kernel over its grid.
    static let prelude = """
    #include <math.h>
    #include <string.h>
    #define __global__
    #define __device__
    #define __forceinline__ inline
    struct adjoint_dim3 { unsigned x, y, z; };
    static adjoint_dim3 blockIdx, threadIdx, blockDim, gridDim;
    static inline double __longlong_as_double(long long v) { double d; memcpy(&d, &v, 8); return d; }
    static inline float __int_as_float(int v) { float f; memcpy(&f, &v, 4); return f; }
    #define __launch_bounds__(...)
    #define __shared__ static
    /* A plain run's phases (NativeCodeGenerator.cudaPrelude): the launcher's thread 0 runs phase p
       for every thread of the block in turn, then phase p + 1 — the barrier between phases. */
    #define ADJOINT_PHASES(n) if (threadIdx.x != 0) return; \\
        for (int adjoint_phase = 0; adjoint_phase < (n); adjoint_phase++) \\
            for (unsigned adjoint_t = 0; adjoint_t < blockDim.x; adjoint_t++) { threadIdx.x = adjoint_t; switch (adjoint_phase) {
    #define ADJOINT_PHASE(p) case p:
    #define ADJOINT_PHASE_END break;
    #define ADJOINT_PHASES_END } } threadIdx.x = 0;

    """

    static let launcher = """

    extern "C" int adjoint_emulate(void *kernel, int count, const unsigned long long *a, unsigned blocks, unsigned threads) {
        if (count != 1 && count != 2 && count != 4 && count != 5) return 1;
        gridDim.x = blocks; gridDim.y = gridDim.z = 1;
        blockDim.x = threads; blockDim.y = blockDim.z = 1;
        blockIdx.y = blockIdx.z = threadIdx.y = threadIdx.z = 0;
        for (unsigned b = 0; b < blocks; b++) {
            blockIdx.x = b;
            for (unsigned t = 0; t < threads; t++) {
                threadIdx.x = t;
                if (count == 1) ((void (*)(unsigned char *))kernel)((unsigned char *)a[0]);
                else if (count == 2) ((void (*)(void *, void *))kernel)((void *)a[0], (void *)a[1]);
                else if (count == 4) ((void (*)(unsigned char *, unsigned char *, unsigned char *, unsigned char *))kernel)(
                    (unsigned char *)a[0], (unsigned char *)a[1], (unsigned char *)a[2], (unsigned char *)a[3]);
                else ((void (*)(unsigned char *, long, long, void *const *, void *))kernel)((unsigned char *)a[0], (long)a[1], (long)a[2], (void *const *)a[3], (void *)a[4]);
            }
        }
        return 0;
    }

    """

    package func load(_ source: String) throws -> any KernelModule {
        let name = "m\(modules.add(1, ordering: .relaxed).oldValue)"
        let directory = URL(fileURLWithPath: directoryPrefix + "-" + name)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent(name + ".cpp"), library = directory.appendingPathComponent(name + ".so")
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data((Self.prelude + source + Self.launcher).utf8).write(to: file)
        let arguments = ["-std=c++17", "-O1", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math", "-w", "-o", library.path, file.path]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [compiler] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        let command = ([compiler] + arguments).joined(separator: " ")
        do { try process.run() } catch { throw KernelDeviceError.compilationFailed(command: command, output: "\(error)") }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw KernelDeviceError.compilationFailed(command: command, output: String(decoding: output.prefix(4000), as: UTF8.self))
        }
        guard let handle = dlopen(library.path, RTLD_NOW | RTLD_LOCAL) else {
            throw KernelDeviceError.loadFailed(path: library.path, reason: dlerror().map { String(cString: $0) } ?? "dlopen failed")
        }
        guard let launcher = dlsym(handle, "adjoint_emulate") else {
            dlclose(handle)
            throw KernelDeviceError.loadFailed(path: library.path, reason: "no adjoint_emulate")
        }
        // The symbol is `launcher` above, compiled into this very library with exactly
        // `Module.Launcher`'s C signature; every emulator test calls through it.
        return Module(handle: handle, launcher: unsafeBitCast(launcher, to: Module.Launcher.self))
    }
    /// Modules loaded so far (each gets a file name of its own; loads may come from several threads).
    private let modules = Atomic<Int>(0)

    final class Module: KernelModule {
        typealias Launcher = @convention(c) (UnsafeMutableRawPointer, Int32, UnsafePointer<UInt64>, UInt32, UInt32) -> Int32
        let handle: UnsafeMutableRawPointer, launcher: Launcher
        init(handle: UnsafeMutableRawPointer, launcher: Launcher) { (self.handle, self.launcher) = (handle, launcher) }
        deinit { dlclose(handle) }

        func launch(_ kernel: String, blocks: Int, threads: Int, arguments: [UInt64], on stream: (any KernelStream)?) throws {
            if let stream, !(stream is Stream) { throw KernelDeviceError.foreignStream("the stream") }
            guard let function = dlsym(handle, kernel) else { throw KernelDeviceError.noKernel(kernel) }
            guard [1, 2, 4, 5].contains(arguments.count) else { throw KernelDeviceError.badArguments(kernel: kernel, count: arguments.count) }
            _ = arguments.withUnsafeBufferPointer { launcher(function, Int32(arguments.count), $0.baseAddress!, UInt32(blocks), UInt32(threads)) }
        }
    }

    // Device memory is host memory; an address is the pointer's bits.
    package func allocate(_ bytes: Int) throws -> UInt64 {
        UInt64(UInt(bitPattern: UnsafeMutableRawPointer.allocate(byteCount: Swift.max(bytes, 1), alignment: 64)))
    }
    package func release(_ address: UInt64) { UnsafeMutableRawPointer(bitPattern: UInt(address))?.deallocate() }
    package func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws {
        UnsafeMutableRawPointer(bitPattern: UInt(destination))!.copyMemory(from: source, byteCount: bytes)
    }
    package func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws {
        destination.copyMemory(from: UnsafeRawPointer(bitPattern: UInt(source))!, byteCount: bytes)
    }
    package func synchronize() throws {}

    /// Streams run their work as it is enqueued: in order, and finished before the call returns.
    final class Stream: KernelStream {
        unowned let device: HostKernelEmulator
        init(_ device: HostKernelEmulator) { self.device = device }
        func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws { try device.copy(source, toDevice: destination, bytes: bytes) }
        func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws { try device.copy(source, toHost: destination, bytes: bytes) }
        func copy(device source: UInt64, toDevice destination: UInt64, bytes: Int) throws {
            guard bytes > 0 else { return }
            UnsafeMutableRawPointer(bitPattern: UInt(destination))!.copyMemory(from: UnsafeRawPointer(bitPattern: UInt(source))!, byteCount: bytes)
        }
        func record() throws -> any KernelEvent { Event() }
        func wait(_ event: any KernelEvent) throws {
            guard event is Event else { throw KernelDeviceError.foreignStream("the event") }
        }
        func synchronize() throws {}
    }

    /// Complete when recorded; its time is the host's clock then.
    final class Event: KernelEvent, Sendable {
        let nanoseconds = DispatchTime.now().uptimeNanoseconds
        func isComplete() throws -> Bool { true }
        func synchronize() throws {}
        func milliseconds(since start: any KernelEvent) throws -> Double {
            guard let start = start as? Event else { throw KernelDeviceError.foreignStream("the event") }
            return Double(Int64(bitPattern: nanoseconds &- start.nanoseconds)) / 1e6
        }
    }

    package func makeStream() throws -> any KernelStream { Stream(self) }

    /// The product through the host's BLAS (column-major, as cuBLAS takes it); a batch reads its
    /// operands' addresses from the arrays in emulated device memory, as cuBLAS does.
    package func gemm(_ product: GEMM, on stream: (any KernelStream)?) throws {
        if let stream, !(stream is Stream) { throw KernelDeviceError.foreignStream("the stream") }
        if let reason = product.invalidity { throw KernelDeviceError.invalidGEMM(reason) }
        let g = product
        if g.m == 0 || g.n == 0 { return }
        func address(_ array: Int, _ i: Int) -> UInt64 {
            g.batch == 1 ? [g.a, g.b, g.c][array]
                         : UnsafeRawPointer(bitPattern: UInt(g.arrays))!.load(fromByteOffset: (array * g.batch + i) * 8, as: UInt64.self)
        }
        if g.batch > 1, g.arrays == 0 { throw KernelDeviceError.invalidGEMM("a batch of \(g.batch) without address arrays") }
        for i in 0..<g.batch {
            guard let a = UnsafeRawPointer(bitPattern: UInt(address(0, i))), let b = UnsafeRawPointer(bitPattern: UInt(address(1, i))),
                  let c = UnsafeMutableRawPointer(bitPattern: UInt(address(2, i))) else {
                throw KernelDeviceError.invalidGEMM("product \(i) of the batch has a null address")
            }
            Kernels.gemmColumnMajor(float64: g.float64, transposeA: g.transposeA, transposeB: g.transposeB, m: g.m, n: g.n, k: g.k,
                                    a, lda: g.lda, b, ldb: g.ldb, c, ldc: g.ldc)
        }
    }
}
