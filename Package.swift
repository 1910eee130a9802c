// swift-tools-version: 6.1
import CompilerPluginSupport
import Foundation
import PackageDescription

/// The toolchain's own swift-syntax: the host libraries and modules the compiler's plugins are
/// built against (`<toolchain>/usr/lib/swift/host`), found beside the `libPackageDescription.so`
/// this manifest runs with — the very toolchain that builds the package, never another on PATH.
/// The macros build against it in seconds; the swift-syntax package instead compiles some 300
/// files in every configuration (debug, release, each sanitizer, fuzzing). Nil — and the package
/// is used — off Linux, where a toolchain lacks any of these files, or with
/// `ADJOINT_SWIFT_SYNTAX=package`.
let toolchainSwiftSyntax: String? = {
    // The whole of /proc/self/maps, read until end of file: its size reads as 0, and
    // `String(contentsOfFile:)` takes only the first read's page — which holds this line on some
    // runs and not on others, so the route flipped from one evaluation of this file to the next.
    guard ProcessInfo.processInfo.environment["ADJOINT_SWIFT_SYNTAX"] != "package",
          let file = FileHandle(forReadingAtPath: "/proc/self/maps")
    else { return nil }
    var bytes = Data()
    while let chunk = try? file.read(upToCount: 1 << 16), !chunk.isEmpty { bytes.append(chunk) }
    try? file.close()
    guard let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
              .first(where: { $0.hasSuffix("/libPackageDescription.so") }),
          let slash = line.firstIndex(of: "/")
    else { return nil }
    // <toolchain>/usr/lib/swift/pm/ManifestAPI/libPackageDescription.so → <toolchain>/usr/lib/swift/host
    let host = URL(fileURLWithPath: String(line[slash...])).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("host").path
    let needed = ["SwiftSyntax", "SwiftSyntaxBuilder", "SwiftSyntaxMacros", "SwiftSyntaxMacroExpansion", "SwiftDiagnostics",
                  "SwiftParser", "SwiftParserDiagnostics", "SwiftCompilerPluginMessageHandling"]
        .flatMap { ["\($0).swiftmodule", "lib\($0).so"] }
    return needed.allSatisfy { FileManager.default.fileExists(atPath: host + "/" + $0) } ? host : nil
}()

/// What the macro plugin and its tests take from swift-syntax, from the toolchain or the package.
func swiftSyntax(_ products: String...) -> (dependencies: [Target.Dependency], swift: [SwiftSetting], linker: [LinkerSetting]) {
    guard let host = toolchainSwiftSyntax else {
        return (products.map { .product(name: $0, package: "swift-syntax") }, [], [])
    }
    // The modules are interfaces whose link names autolink their libraries; the run path finds
    // them (and, through theirs, the toolchain's runtime) when the plugin or the tests run.
    return ([], [.unsafeFlags(["-I", host])], [.unsafeFlags(["-L", host, "-Xlinker", "-rpath", "-Xlinker", host])])
}
let macroSyntax = swiftSyntax("SwiftSyntaxMacros", "SwiftCompilerPlugin")
let macroTestSyntax = swiftSyntax("SwiftSyntaxMacroExpansion", "SwiftParser", "SwiftParserDiagnostics")

let package = Package(
    name: "Adjoint",
    platforms: [.macOS(.v15)],
    products: [
        // MARK: Public modules
        .library(name: "Adjoint", targets: ["Adjoint"]),
        .library(name: "AdjointIR", targets: ["AdjointIR"]),
        .library(name: "AdjointTensor", targets: ["AdjointTensor"]),
        .library(name: "AdjointIO", targets: ["AdjointIO"]),
        .library(name: "AdjointCompiler", targets: ["AdjointCompiler"]),
        .library(name: "AdjointAutodiff", targets: ["AdjointAutodiff"]),
        .library(name: "AdjointStateful", targets: ["AdjointStateful"]),
        .library(name: "AdjointTraining", targets: ["AdjointTraining"]),
        .library(name: "AdjointPolicies", targets: ["AdjointPolicies"]),
        .library(name: "AdjointSwiftAD", targets: ["AdjointSwiftAD"]),
        .library(name: "AdjointDistributed", targets: ["AdjointDistributed"]),
        .library(name: "AdjointCLI", targets: ["AdjointCLI"]),
        .executable(name: "adjoint", targets: ["adjoint"]),
        // Examples, exported for the benchmark package (not API).
        .library(name: "AdjointExamples", targets: ["AdjointExamples"]),
        .library(name: "AdjointSwiftADExamples", targets: ["AdjointSwiftADExamples"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-numerics.git", from: "1.0.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        // `swift package generate-documentation` (DocC); a plugin, so it adds nothing to the build.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ] + (toolchainSwiftSyntax == nil ? [
        // The macros that derive `ParameterCollection` and `SwiftADState` conformances, where the
        // toolchain has no swift-syntax of its own (`toolchainSwiftSyntax`).
        .package(url: "https://github.com/swiftlang/swift-syntax.git", "600.0.0"..<"604.0.0"),
    ] : []),
    targets: [
        // MARK: Public modules
        .target(name: "AdjointIR"),
        .target(
            name: "AdjointTensor",
            dependencies: [
                "AdjointIR", "CBLAS",
                .product(name: "RealModule", package: "swift-numerics"),
            ]
        ),
        .target(name: "AdjointIO", dependencies: ["AdjointTensor"]),
        .target(name: "AdjointAutodiff", dependencies: ["AdjointTensor", "AdjointIO", "AdjointMacros"]),
        .target(name: "AdjointCompiler", dependencies: ["AdjointAutodiff", "AdjointIO"]),
        .target(name: "AdjointStateful", dependencies: ["AdjointCompiler", .product(name: "GRDB", package: "GRDB.swift")]),
        .target(name: "AdjointTraining", dependencies: ["AdjointAutodiff"]),
        .target(name: "AdjointSwiftAD", dependencies: ["AdjointStateful", "AdjointMacros"]),
        // Open MPI lives here and above only: nothing below AdjointDistributed links it.
        .target(name: "AdjointDistributed", dependencies: ["AdjointTraining", "AdjointStateful", "AdjointPolicies", "CMPI"]),
        .target(name: "AdjointPolicies", dependencies: ["AdjointStateful", "AdjointTraining", "CZstd", "CZlib"]),
        .target(name: "Adjoint", dependencies: ["AdjointIR", "AdjointTensor", "AdjointIO", "AdjointCompiler", "AdjointAutodiff", "AdjointStateful", "AdjointTraining", "AdjointPolicies"]),
        .target(
            name: "AdjointCLI",
            dependencies: [
                "Adjoint", "AdjointExamples", "AdjointDistributed", "CMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "adjoint", dependencies: ["AdjointCLI"]),
        // The GPU check scripts/device-check runs where a GPU is lent: generated CUDA kernels
        // against the native CPU code (no Swift toolchain there: a static release build).
        .executableTarget(name: "adjoint-gpu-check", dependencies: ["AdjointCompiler", "AdjointStateful"]),
        .target(name: "AdjointExamples", dependencies: ["Adjoint"], path: "Examples/AdjointExamples"),
        .target(name: "AdjointSwiftADExamples", dependencies: ["AdjointSwiftAD", "AdjointExamples"], path: "Examples/AdjointSwiftADExamples"),

        // MARK: Implementation
        .macro(
            name: "AdjointMacros",
            dependencies: macroSyntax.dependencies,
            swiftSettings: macroSyntax.swift,
            linkerSettings: macroSyntax.linker
        ),
        .systemLibrary(
            name: "CBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CMPI", pkgConfig: "ompi-c", providers: [.apt(["libopenmpi-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // MARK: Fuzzing (`scripts/fuzz`; Documentation/Robustness.md)
        .target(name: "AdjointFuzzTargets", dependencies: ["Adjoint"], path: "Fuzz/Targets"),
        .executableTarget(name: "adjoint-fuzz", dependencies: ["AdjointFuzzTargets"], path: "Fuzz/Driver"),

        // MARK: Tests
        .target(name: "AdjointTestSupport", dependencies: ["Adjoint"], path: "Tests/AdjointTestSupport"),
        .testTarget(name: "AdjointIRTests", dependencies: ["AdjointIR"]),
        .testTarget(
            name: "AdjointMacrosTests",
            dependencies: ["AdjointMacros"] + macroTestSyntax.dependencies,
            swiftSettings: macroTestSyntax.swift,
            linkerSettings: macroTestSyntax.linker
        ),
        .testTarget(name: "AdjointTests", dependencies: ["Adjoint", "AdjointSwiftAD", "AdjointTestSupport"]),
        .testTarget(name: "AdjointTensorTests", dependencies: ["AdjointTensor", "AdjointTestSupport"]),
        .testTarget(name: "AdjointIOTests", dependencies: ["AdjointIO", "AdjointTestSupport"]),
        .testTarget(name: "AdjointCompilerTests", dependencies: ["AdjointCompiler", "AdjointExamples", "AdjointTestSupport"]),
        .testTarget(name: "AdjointAutodiffTests", dependencies: ["AdjointAutodiff", "AdjointTestSupport"]),
        .testTarget(name: "AdjointStatefulTests", dependencies: ["AdjointStateful", "AdjointTestSupport"]),
        .testTarget(name: "AdjointExamplesTests", dependencies: ["AdjointExamples", "AdjointTestSupport"]),
        .testTarget(name: "AdjointSwiftADTests", dependencies: ["AdjointSwiftADExamples", "AdjointTestSupport"]),
        .testTarget(name: "AdjointTrainingTests", dependencies: ["AdjointTraining", "AdjointTestSupport"]),
        .executableTarget(name: "adjoint-mpi-scenarios", dependencies: ["AdjointDistributed"], path: "Tests/MPIScenarios"),
        .testTarget(name: "AdjointDistributedTests", dependencies: ["AdjointDistributed", "AdjointTestSupport", "adjoint", "adjoint-mpi-scenarios"]),
        .testTarget(name: "AdjointPoliciesTests", dependencies: ["AdjointPolicies", "AdjointTestSupport"]),
        .testTarget(name: "AdjointFuzzTargetsTests", dependencies: ["AdjointFuzzTargets"], path: "Fuzz/Tests"),
        .testTarget(name: "AdjointCLITests", dependencies: ["AdjointCLI", "AdjointExamples", "AdjointTestSupport", "adjoint"], exclude: ["Snapshots"]),
    ],
    swiftLanguageModes: [.v6]
)
