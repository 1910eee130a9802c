import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why the CUDA driver could not be used.
package enum CUDADriverError: Error, Equatable, CustomStringConvertible {
    /// No `libcuda.so` was found: the names tried.
    case unavailable(searched: [String])
    /// The library lacks a function this wrapper calls.
    case missingSymbol(symbol: String)
    /// A driver call returned an error code.
    case callFailed(call: String, code: Int32, message: String)

    package var description: String {
        switch self {
        case let .unavailable(searched): return "the CUDA driver was not found (tried \(searched.joined(separator: ", ")))"
        case let .missingSymbol(symbol): return "libcuda has no \(symbol)"
        case let .callFailed(call, code, message): return "\(call) failed with \(code): \(message)"
        }
    }
}

/// The calls of the CUDA driver API (`libcuda.so.1`, loaded with `dlopen`) that running
/// generated kernels on device 0 takes: its primary context (made current on every calling thread), modules from a cubin, device memory,
/// copies and launches on the default stream or on streams of its own, events, synchronisation. What `adjoint-gpu-check` runs the
/// native code generator's CUDA kernels with; not a device backend for tensors (see
/// `Documentation/GPU.md`).
package final class CUDADriver: @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private typealias Int1 = @convention(c) (UInt32) -> Int32
    private typealias DeviceGet = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    private typealias Attribute = @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Int32
    private typealias Name = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    private typealias Retain = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, Int32) -> Int32
    private typealias SetCurrent = @convention(c) (OpaquePointer?) -> Int32
    private typealias ModuleLoad = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafeRawPointer) -> Int32
    private typealias ModuleFunction = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, OpaquePointer?, UnsafePointer<CChar>) -> Int32
    private typealias ModuleUnload = @convention(c) (OpaquePointer?) -> Int32
    private typealias Alloc = @convention(c) (UnsafeMutablePointer<UInt64>, Int) -> Int32
    private typealias Free = @convention(c) (UInt64) -> Int32
    private typealias ToDevice = @convention(c) (UInt64, UnsafeRawPointer, Int) -> Int32
    private typealias ToHost = @convention(c) (UnsafeMutableRawPointer, UInt64, Int) -> Int32
    private typealias Memset = @convention(c) (UInt64, UInt8, Int) -> Int32
    private typealias Launch = @convention(c) (OpaquePointer?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, OpaquePointer?,
                                               UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    private typealias Synchronize = @convention(c) () -> Int32
    private typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UInt32) -> Int32
    private typealias Handle = @convention(c) (OpaquePointer?) -> Int32
    private typealias Record = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    private typealias WaitEvent = @convention(c) (OpaquePointer?, OpaquePointer?, UInt32) -> Int32
    private typealias Elapsed = @convention(c) (UnsafeMutablePointer<Float>, OpaquePointer?, OpaquePointer?) -> Int32
    private typealias ToDeviceAsync = @convention(c) (UInt64, UnsafeRawPointer, Int, OpaquePointer?) -> Int32
    private typealias ToHostAsync = @convention(c) (UnsafeMutableRawPointer, UInt64, Int, OpaquePointer?) -> Int32
    private typealias DeviceToDeviceAsync = @convention(c) (UInt64, UInt64, Int, OpaquePointer?) -> Int32
    private typealias ErrorString = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32

    private let initialize: Int1, deviceGet: DeviceGet, attribute: Attribute, name: Name, retain: Retain, setCurrent: SetCurrent
    private let moduleLoad: ModuleLoad, moduleFunction: ModuleFunction, moduleUnload: ModuleUnload
    private let alloc: Alloc, free: Free, toDevice: ToDevice, toHost: ToHost, memset: Memset, launch: Launch, synchronize: Synchronize
    private let errorString: ErrorString
    private let streamCreate: Create, streamDestroy: Handle, streamSynchronize: Handle, streamWait: WaitEvent
    private let eventCreate: Create, eventDestroy: Handle, eventRecord: Record, eventQuery: Handle, eventSynchronize: Handle, eventElapsed: Elapsed
    private let toDeviceAsync: ToDeviceAsync, toHostAsync: ToHostAsync, deviceToDeviceAsync: DeviceToDeviceAsync

    /// Device 0's primary context, made current on each thread that calls the driver (a context
    /// is current per thread; the first call on a new thread would otherwise find none).
    private var context: OpaquePointer?
    /// Device 0's name and compute capability (9.0 for an H100 or H200).
    package private(set) var deviceName = ""
    package private(set) var capability = (major: 0, minor: 0)

    /// The names ``load()`` tries.
    package static let candidates = ["libcuda.so.1", "libcuda.so"]

    /// Loads the driver, initialises it and makes device 0's primary context current.
    package static func load() throws -> CUDADriver {
        guard let (handle, _) = firstLoadable(candidates) else { throw CUDADriverError.unavailable(searched: candidates) }
        return try CUDADriver(handle: handle)
    }

    private init(handle: UnsafeMutableRawPointer) throws {
        func symbol<F>(_ name: String, _: F.Type) throws -> F {
            try loadedSymbol(handle, name) { CUDADriverError.missingSymbol(symbol: $0) }
        }
        initialize = try symbol("cuInit", Int1.self)
        deviceGet = try symbol("cuDeviceGet", DeviceGet.self)
        attribute = try symbol("cuDeviceGetAttribute", Attribute.self)
        name = try symbol("cuDeviceGetName", Name.self)
        retain = try symbol("cuDevicePrimaryCtxRetain", Retain.self)
        setCurrent = try symbol("cuCtxSetCurrent", SetCurrent.self)
        moduleLoad = try symbol("cuModuleLoadData", ModuleLoad.self)
        moduleFunction = try symbol("cuModuleGetFunction", ModuleFunction.self)
        moduleUnload = try symbol("cuModuleUnload", ModuleUnload.self)
        alloc = try symbol("cuMemAlloc_v2", Alloc.self)
        free = try symbol("cuMemFree_v2", Free.self)
        toDevice = try symbol("cuMemcpyHtoD_v2", ToDevice.self)
        toHost = try symbol("cuMemcpyDtoH_v2", ToHost.self)
        memset = try symbol("cuMemsetD8_v2", Memset.self)
        launch = try symbol("cuLaunchKernel", Launch.self)
        synchronize = try symbol("cuCtxSynchronize", Synchronize.self)
        errorString = try symbol("cuGetErrorString", ErrorString.self)
        streamCreate = try symbol("cuStreamCreate", Create.self)
        streamDestroy = try symbol("cuStreamDestroy_v2", Handle.self)
        streamSynchronize = try symbol("cuStreamSynchronize", Handle.self)
        streamWait = try symbol("cuStreamWaitEvent", WaitEvent.self)
        eventCreate = try symbol("cuEventCreate", Create.self)
        eventDestroy = try symbol("cuEventDestroy_v2", Handle.self)
        eventRecord = try symbol("cuEventRecord", Record.self)
        eventQuery = try symbol("cuEventQuery", Handle.self)
        eventSynchronize = try symbol("cuEventSynchronize", Handle.self)
        eventElapsed = try symbol("cuEventElapsedTime", Elapsed.self)
        toDeviceAsync = try symbol("cuMemcpyHtoDAsync_v2", ToDeviceAsync.self)
        toHostAsync = try symbol("cuMemcpyDtoHAsync_v2", ToHostAsync.self)
        deviceToDeviceAsync = try symbol("cuMemcpyDtoDAsync_v2", DeviceToDeviceAsync.self)
        self.handle = handle
        try check("cuInit", initialize(0))
        var device: Int32 = 0
        try check("cuDeviceGet", deviceGet(&device, 0))
        try check("cuDevicePrimaryCtxRetain", retain(&context, device))
        try makeCurrent()
        var major: Int32 = 0, minor: Int32 = 0
        try check("cuDeviceGetAttribute", attribute(&major, 75, device))   // CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        try check("cuDeviceGetAttribute", attribute(&minor, 76, device))   // …_MINOR
        capability = (Int(major), Int(minor))
        var text = [CChar](repeating: 0, count: 256)
        try check("cuDeviceGetName", name(&text, 255, device))
        deviceName = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private func check(_ call: String, _ code: Int32) throws {
        guard code != 0 else { return }
        var message: UnsafePointer<CChar>?
        _ = errorString(code, &message)
        throw CUDADriverError.callFailed(call: call, code: code, message: message.map { String(cString: $0) } ?? "error \(code)")
    }

    /// Makes device 0's primary context the calling thread's current one (every call below does,
    /// so that any thread may use the driver).
    package func makeCurrent() throws { try check("cuCtxSetCurrent", setCurrent(context)) }

    /// A module loaded from a cubin or PTX image.
    package final class Module {
        let driver: CUDADriver
        let handle: OpaquePointer?
        init(driver: CUDADriver, handle: OpaquePointer?) { (self.driver, self.handle) = (driver, handle) }
        deinit { _ = driver.moduleUnload(handle) }

        /// The kernel called `name`.
        package func function(_ name: String) throws -> OpaquePointer? {
            var f: OpaquePointer?
            try driver.check("cuModuleGetFunction(\(name))", name.withCString { driver.moduleFunction(&f, handle, $0) })
            return f
        }
    }

    package func module(_ image: [UInt8]) throws -> Module {
        var module: OpaquePointer?
        // PTX is loaded as a NUL-terminated string.
        let bytes = image.last == 0 ? image : image + [0]
        try makeCurrent()
        try check("cuModuleLoadData", bytes.withUnsafeBytes { moduleLoad(&module, $0.baseAddress!) })
        return Module(driver: self, handle: module)
    }

    /// Device memory of `bytes` bytes (freed with ``release(_:)``).
    package func allocate(_ bytes: Int) throws -> UInt64 {
        var pointer: UInt64 = 0
        try makeCurrent()
        try check("cuMemAlloc", alloc(&pointer, Swift.max(bytes, 1)))
        return pointer
    }

    package func release(_ pointer: UInt64) {
        _ = setCurrent(context)
        _ = free(pointer)
    }

    package func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws {
        try makeCurrent()
        try check("cuMemcpyHtoD", toDevice(destination, source, bytes))
    }

    package func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws {
        try makeCurrent()
        try check("cuMemcpyDtoH", toHost(destination, source, bytes))
    }

    package func zero(_ pointer: UInt64, bytes: Int) throws {
        try makeCurrent()
        try check("cuMemsetD8", memset(pointer, 0, bytes))
    }

    /// Launches `function` on `blocks` blocks of `threads` threads with `arguments` (each a
    /// 64-bit value: a device pointer, a count), on `stream` (nil: the default stream).
    package func launch(_ function: OpaquePointer?, blocks: Int, threads: Int, arguments: [UInt64], stream: Stream? = nil) throws {
        var values = arguments
        try makeCurrent()
        try values.withUnsafeMutableBufferPointer { v in
            var pointers: [UnsafeMutableRawPointer?] = (0..<v.count).map { UnsafeMutableRawPointer(v.baseAddress! + $0) }
            try check("cuLaunchKernel", pointers.withUnsafeMutableBufferPointer {
                launch(function, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, 0, stream?.handle, $0.baseAddress, nil)
            })
        }
    }

    package func synchronizeDevice() throws {
        try makeCurrent()
        try check("cuCtxSynchronize", synchronize())
    }

    /// A stream: work enqueued on it runs in order, asynchronously to the host and to other
    /// streams (created non-blocking: it does not wait for the default stream).
    package final class Stream {
        let driver: CUDADriver
        let handle: OpaquePointer?
        fileprivate init(driver: CUDADriver, handle: OpaquePointer?) { (self.driver, self.handle) = (driver, handle) }
        deinit { _ = driver.streamDestroy(handle) }

        /// Waits until everything enqueued on the stream has run.
        package func synchronize() throws {
            try driver.makeCurrent()
            try driver.check("cuStreamSynchronize", driver.streamSynchronize(handle))
        }
        /// Makes later work on this stream wait for `event`.
        package func wait(_ event: Event) throws {
            try driver.makeCurrent()
            try driver.check("cuStreamWaitEvent", driver.streamWait(handle, event.handle, 0))
        }
        /// Copies `bytes` bytes from host memory to the device in the stream's order. The host
        /// memory must stay valid and unchanged until the copy has run (a stream synchronisation).
        package func copy(_ source: UnsafeRawPointer, toDevice destination: UInt64, bytes: Int) throws {
            try driver.makeCurrent()
            try driver.check("cuMemcpyHtoDAsync", driver.toDeviceAsync(destination, source, bytes, handle))
        }
        /// Copies `bytes` bytes from the device to host memory in the stream's order (valid to
        /// read once the stream has been synchronised past it).
        package func copy(_ source: UInt64, toHost destination: UnsafeMutableRawPointer, bytes: Int) throws {
            try driver.makeCurrent()
            try driver.check("cuMemcpyDtoHAsync", driver.toHostAsync(destination, source, bytes, handle))
        }
        /// Copies `bytes` bytes between device addresses in the stream's order.
        package func copy(device source: UInt64, toDevice destination: UInt64, bytes: Int) throws {
            try driver.makeCurrent()
            try driver.check("cuMemcpyDtoDAsync", driver.deviceToDeviceAsync(destination, source, bytes, handle))
        }
        /// An event recorded at this point of the stream.
        package func record() throws -> Event {
            var event: OpaquePointer?
            try driver.makeCurrent()
            try driver.check("cuEventCreate", driver.eventCreate(&event, 0))
            let result = Event(driver: driver, handle: event)
            try driver.check("cuEventRecord", driver.eventRecord(event, handle))
            return result
        }
    }

    /// A point in a stream's work: whether the work before it has run, waiting for it, and the
    /// device's time between two of them.
    // @unchecked Sendable: immutable handles; the driver API's event calls are thread-safe.
    package final class Event: @unchecked Sendable {
        let driver: CUDADriver
        let handle: OpaquePointer?
        fileprivate init(driver: CUDADriver, handle: OpaquePointer?) { (self.driver, self.handle) = (driver, handle) }
        deinit { _ = driver.eventDestroy(handle) }

        /// Whether the work before the event has run (CUDA_ERROR_NOT_READY, 600: not yet).
        package func isComplete() throws -> Bool {
            try driver.makeCurrent()
            let code = driver.eventQuery(handle)
            if code == 600 { return false }
            try driver.check("cuEventQuery", code)
            return true
        }
        package func synchronize() throws {
            try driver.makeCurrent()
            try driver.check("cuEventSynchronize", driver.eventSynchronize(handle))
        }
        /// Milliseconds on the device from `start` to this event (both complete).
        package func milliseconds(since start: Event) throws -> Double {
            var ms: Float = 0
            try driver.check("cuEventElapsedTime", driver.eventElapsed(&ms, start.handle, handle))
            return Double(ms)
        }
    }

    /// A new non-blocking stream (CU_STREAM_NON_BLOCKING).
    package func makeStream() throws -> Stream {
        var stream: OpaquePointer?
        try makeCurrent()
        try check("cuStreamCreate", streamCreate(&stream, 1))
        return Stream(driver: self, handle: stream)
    }
}
