import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Why NVRTC could not be loaded or could not compile a source.
public enum NVRTCError: Error, Equatable, CustomStringConvertible {
    /// No NVRTC library was found: the paths and names tried.
    case unavailable(searched: [String])
    /// The library lacks a function this wrapper calls.
    case missingSymbol(library: String, symbol: String)
    /// An NVRTC call returned an error code.
    case callFailed(call: String, code: Int32, message: String)
    /// The source did not compile: its name and NVRTC's log.
    case compilationFailed(name: String, log: String)

    public var description: String {
        switch self {
        case let .unavailable(searched): return "NVRTC not found (tried \(searched.joined(separator: ", "))); set ADJOINT_NVRTC to libnvrtc.so's path"
        case let .missingSymbol(library, symbol): return "\(library) has no \(symbol)"
        case let .callFailed(call, code, message): return "\(call) failed with \(code): \(message)"
        case let .compilationFailed(name, log): return "\(name) did not compile:\n\(log)"
        }
    }
}

/// NVIDIA's run-time compiler for CUDA C++ (`libnvrtc.so`), loaded with `dlopen` — nothing of
/// CUDA is needed to build Adjoint, and a machine without it gets ``NVRTCError/unavailable(searched:)``.
///
/// It compiles the CUDA kernels compiled programs print (`CompiledProgram.cudaSource()`), with
/// `--fmad=false` (no contraction into fused multiply-adds, as the CPU's `-ffp-contract=off`),
/// IEEE division and square roots (NVRTC's defaults), to PTX for a virtual architecture or to a
/// cubin for a real one. The library is found at `ADJOINT_NVRTC`, else by the dynamic loader as
/// `libnvrtc.so`, `libnvrtc.so.13` or `libnvrtc.so.12`, else in `/usr/local/cuda/lib64`; the
/// `nvidia-cuda-nvrtc` wheel on PyPI ships one (`site-packages/nvidia/cu13/lib/libnvrtc.so.13`).
public final class NVRTC: @unchecked Sendable {
    /// The library loaded.
    public let path: String
    /// NVRTC's version (major, minor).
    public let version: (major: Int, minor: Int)

    private let handle: UnsafeMutableRawPointer
    private typealias Program = OpaquePointer
    private typealias Create = @convention(c) (UnsafeMutablePointer<Program?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                               UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private typealias Compile = @convention(c) (Program?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    private typealias Size = @convention(c) (Program?, UnsafeMutablePointer<Int>) -> Int32
    private typealias Bytes = @convention(c) (Program?, UnsafeMutablePointer<CChar>) -> Int32
    private typealias Destroy = @convention(c) (UnsafeMutablePointer<Program?>) -> Int32
    private typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    private typealias Version = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    private let create: Create, compileProgram: Compile, destroy: Destroy, errorString: ErrorString
    private let logSize: Size, log: Bytes, ptxSize: Size, ptx: Bytes, cubinSize: Size, cubin: Bytes

    /// What a compilation produces.
    public enum Target: Equatable, Sendable {
        /// PTX for a virtual architecture (`compute_90`: 90).
        case ptx(compute: Int)
        /// Machine code for a real one (`sm_90`: 90).
        case cubin(sm: Int)
    }

    /// Where ``load(path:)`` looks when no path is given.
    public static var candidates: [String] { libraryCandidates("ADJOINT_NVRTC", "libnvrtc") }

    /// Loads NVRTC from `path`, or from the first of ``candidates`` that loads.
    ///
    /// - Throws: ``NVRTCError/unavailable(searched:)`` when none loads,
    ///   ``NVRTCError/missingSymbol(library:symbol:)`` for a library without NVRTC's functions.
    public static func load(path: String? = nil) throws -> NVRTC {
        let searched = path.map { [$0] } ?? candidates
        guard let (handle, name) = firstLoadable(searched) else { throw NVRTCError.unavailable(searched: searched) }
        return try NVRTC(handle: handle, path: name)
    }

    private init(handle: UnsafeMutableRawPointer, path: String) throws {
        func symbol<F>(_ name: String, _: F.Type) throws -> F {
            try loadedSymbol(handle, name) { NVRTCError.missingSymbol(library: path, symbol: $0) }
        }
        create = try symbol("nvrtcCreateProgram", Create.self)
        compileProgram = try symbol("nvrtcCompileProgram", Compile.self)
        destroy = try symbol("nvrtcDestroyProgram", Destroy.self)
        errorString = try symbol("nvrtcGetErrorString", ErrorString.self)
        logSize = try symbol("nvrtcGetProgramLogSize", Size.self)
        log = try symbol("nvrtcGetProgramLog", Bytes.self)
        ptxSize = try symbol("nvrtcGetPTXSize", Size.self)
        ptx = try symbol("nvrtcGetPTX", Bytes.self)
        cubinSize = try symbol("nvrtcGetCUBINSize", Size.self)
        cubin = try symbol("nvrtcGetCUBIN", Bytes.self)
        let versionCall = try symbol("nvrtcVersion", Version.self)
        var (major, minor): (Int32, Int32) = (0, 0)
        _ = versionCall(&major, &minor)
        (self.handle, self.path, self.version) = (handle, path, (Int(major), Int(minor)))
    }

    deinit { dlclose(handle) }

    /// The options every compilation gets besides the target: no fused multiply-adds, IEEE
    /// division and square roots, denormals kept — the CPU's arithmetic.
    public static let options = ["--fmad=false", "--prec-div=true", "--prec-sqrt=true", "--ftz=false"]

    /// Compiles `source` (named `name` in messages) for `target`: PTX text's bytes or a cubin.
    ///
    /// - Throws: ``NVRTCError/compilationFailed(name:log:)`` with NVRTC's log when the source
    ///   does not compile, ``NVRTCError/callFailed(call:code:message:)`` for another failure.
    public func compile(_ source: String, name: String, target: Target) throws -> [UInt8] {
        var program: Program?
        try check("nvrtcCreateProgram", source.withCString { s in name.withCString { n in create(&program, s, n, 0, nil, nil) } })
        defer { _ = destroy(&program) }
        let arguments: [String]
        switch target {
        case let .ptx(compute): arguments = ["--gpu-architecture=compute_\(compute)"] + Self.options
        case let .cubin(sm): arguments = ["--gpu-architecture=sm_\(sm)"] + Self.options
        }
        let pointers = arguments.map { strdup($0) }
        defer { pointers.forEach { free($0) } }
        let result = pointers.map { UnsafePointer($0) }.withUnsafeBufferPointer { compileProgram(program, Int32($0.count), $0.baseAddress) }
        guard result == 0 else {
            throw NVRTCError.compilationFailed(name: name, log: (try? text(program, logSize, log)) ?? message(result))
        }
        switch target {
        case .ptx: return Array(try text(program, ptxSize, ptx).utf8)
        case .cubin: return try bytes(program, cubinSize, cubin)
        }
    }

    private func message(_ code: Int32) -> String { errorString(code).map { String(cString: $0) } ?? "error \(code)" }

    private func check(_ call: String, _ code: Int32) throws {
        guard code == 0 else { throw NVRTCError.callFailed(call: call, code: code, message: message(code)) }
    }

    private func bytes(_ program: Program?, _ size: Size, _ get: Bytes) throws -> [UInt8] {
        var count = 0
        try check("size", size(program, &count))
        var buffer = [CChar](repeating: 0, count: Swift.max(count, 1))
        try check("get", buffer.withUnsafeMutableBufferPointer { get(program, $0.baseAddress!) })
        return buffer.prefix(count).map { UInt8(bitPattern: $0) }
    }

    /// A NUL-terminated result as text.
    private func text(_ program: Program?, _ size: Size, _ get: Bytes) throws -> String {
        let raw = try bytes(program, size, get)
        return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// Function `name` of the library `handle` (from `dlopen`) as a `F`; when it is missing, the
/// library is closed and `missing(name)` thrown (a library without its API is not used).
/// Where a CUDA library is looked for: the path in `variable` if set, else `stem.so`, `.so.13` and
/// `.so.12` through the loader's path, else `/usr/local/cuda/lib64`.
func libraryCandidates(_ variable: String, _ stem: String) -> [String] {
    var names: [String] = []
    if let path = ProcessInfo.processInfo.environment[variable], !path.isEmpty { names.append(path) }
    return names + ["\(stem).so", "\(stem).so.13", "\(stem).so.12", "/usr/local/cuda/lib64/\(stem).so"]
}

/// The first of `names` that `dlopen` loads: its handle and name.
func firstLoadable(_ names: [String]) -> (UnsafeMutableRawPointer, String)? {
    for name in names { if let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL) { return (handle, name) } }
    return nil
}

func loadedSymbol<F>(_ handle: UnsafeMutableRawPointer, _ name: String, missing: (String) -> Error) throws -> F {
    guard let pointer = dlsym(handle, name) else {
        dlclose(handle)
        throw missing(name)
    }
    return unsafeBitCast(pointer, to: F.self)
}
