import AdjointTensor
import Foundation
import AdjointIO
#if canImport(Glibc)
import Glibc
#endif

/// Everything that decides a run's bits besides its code and data: written with every run and
/// embedded in every checkpoint, so two runs that differ can be told apart by their manifests.
public struct RunManifest: Codable, Equatable, Sendable {
    public var adjointVersion: String
    /// The compiler that built this binary.
    public var swiftVersion: String
    /// OpenBLAS's build configuration, its kernel set, and its thread count.
    public var blas: String
    public var blasCore: String
    public var blasThreads: Int
    /// `Parallelism.threadCount` when the manifest was taken.
    public var kernelThreads: Int
    public var cpuModel: String
    public var cpuFlags: [String]
    /// Distribution, kernel release and machine.
    public var operatingSystem: String
    public var policy: ExecutionPolicy
    /// The mixed-precision storage type in force (`"f16"`, `"bf16"`), or nil for full precision.
    public var mixedPrecision: String?
    /// Named seeds of the run (data, initialisation, dropout, …).
    public var seeds: [String: UInt64]
    public var command: [String]
    /// ISO 8601, UTC.
    public var startedAt: String

    /// The manifest of this process now, with the calling thread's policy.
    public static func current(seeds: [String: UInt64] = [:]) -> RunManifest {
        RunManifest(adjointVersion: AdjointVersion.current, swiftVersion: compilerVersion,
                    blas: BLASLibrary.configuration, blasCore: BLASLibrary.coreName, blasThreads: BLASLibrary.threadCount,
                    kernelThreads: Parallelism.threadCount, cpuModel: cpuInfo.model, cpuFlags: cpuInfo.flags,
                    operatingSystem: operatingSystemName, policy: ExecutionPolicy.current,
                    mixedPrecision: MixedPrecision.current?.rawValue, seeds: seeds,
                    command: CommandLine.arguments, startedAt: ISO8601DateFormatter().string(from: Date()))
    }

    /// Pretty-printed JSON with sorted keys.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self))
    }

    /// Writes the manifest as JSON, atomically.
    public func write(to path: String) throws {
        try AtomicFile.write(encoded() + [0x0A], to: path)
    }

    /// Fields that differ from `other`, by name (what to look at when two runs disagree). The start
    /// time and the command line are not compared.
    public func differences(from other: RunManifest) -> [String] {
        var out: [String] = []
        func check<T: Equatable>(_ name: String, _ a: T, _ b: T) { if a != b { out.append(name) } }
        check("adjointVersion", adjointVersion, other.adjointVersion)
        check("swiftVersion", swiftVersion, other.swiftVersion)
        check("blas", blas, other.blas)
        check("blasCore", blasCore, other.blasCore)
        check("blasThreads", blasThreads, other.blasThreads)
        check("kernelThreads", kernelThreads, other.kernelThreads)
        check("cpuModel", cpuModel, other.cpuModel)
        check("cpuFlags", cpuFlags, other.cpuFlags)
        check("operatingSystem", operatingSystem, other.operatingSystem)
        check("policy", policy, other.policy)
        check("mixedPrecision", mixedPrecision, other.mixedPrecision)
        check("seeds", seeds, other.seeds)
        return out
    }

    /// The compiler version, to the patch level for the 6.x releases known when this was written.
    static var compilerVersion: String {
        #if compiler(>=6.4)
        return "Swift 6.4 or later"
        #elseif compiler(>=6.3.3)
        return "Swift 6.3.3 or a later 6.3"
        #elseif compiler(>=6.3.2)
        return "Swift 6.3.2"
        #elseif compiler(>=6.3.1)
        return "Swift 6.3.1"
        #elseif compiler(>=6.3)
        return "Swift 6.3"
        #elseif compiler(>=6.2)
        return "Swift 6.2"
        #elseif compiler(>=6.1)
        return "Swift 6.1"
        #else
        return "Swift 6.0 or earlier"
        #endif
    }

    static let cpuInfo: (model: String, flags: [String]) = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return ("unknown", []) }
        func field(_ name: String) -> String? {
            for line in text.split(separator: "\n") where line.hasPrefix(name) {
                if let colon = line.firstIndex(of: ":") { return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
            }
            return nil
        }
        return (field("model name") ?? "unknown", (field("flags") ?? "").split(separator: " ").map(String.init).sorted())
    }()

    static let operatingSystemName: String = {
        var name = "unknown"
        if let release = try? String(contentsOfFile: "/etc/os-release", encoding: .utf8),
           let line = release.split(separator: "\n").first(where: { $0.hasPrefix("PRETTY_NAME=") }) {
            name = String(line.dropFirst("PRETTY_NAME=".count)).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        }
        var u = utsname()
        guard uname(&u) == 0 else { return name }
        func text<T>(_ field: inout T) -> String {
            withUnsafePointer(to: &field) { $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout<T>.size) { String(cString: $0) } }
        }
        return "\(name); \(text(&u.sysname)) \(text(&u.release)) \(text(&u.machine))"
    }()
}
