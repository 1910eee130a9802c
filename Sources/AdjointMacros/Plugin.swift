import SwiftSyntaxMacros

/// The macros this plugin provides, by the type names `#externalMacro` gives. (Computed: a stored
/// global of metatypes, which are not `Sendable`, is not concurrency-safe.)
var providedMacros: [any Macro.Type] {
    [ParameterCollectionMacro.self, ParameterIgnoredMacro.self, SwiftADStateMacro.self, SwiftADStepBodyMacro.self]
}

/// A macro type `#externalMacro` names that this plugin does not provide.
public struct UnknownMacro: Error, CustomStringConvertible {
    public let module: String, type: String
    public var description: String { "AdjointMacros provides no macro \(module).\(type)" }
}

/// The macro `#externalMacro(module:type:)` names, as the compiler asks for it.
///
/// - Throws: ``UnknownMacro`` for a module or type this plugin does not provide.
public func providedMacro(module: String, type: String) throws -> any Macro.Type {
    guard let macro = providedMacros.first(where: { String(reflecting: $0) == "\(module).\(type)" }) else {
        throw UnknownMacro(module: module, type: type)
    }
    return macro
}

#if canImport(SwiftCompilerPlugin)
// Built against the swift-syntax package (`ADJOINT_SWIFT_SYNTAX=package`, or a toolchain without
// its own swift-syntax modules): its `CompilerPlugin` serves the compiler.
import SwiftCompilerPlugin

@main
struct AdjointMacrosPlugin: CompilerPlugin {
    let providingMacros: [Macro.Type] = providedMacros
}
#else
// Built against the toolchain's own swift-syntax (Package.swift, `toolchainSwiftSyntax`), which
// ships the compiler's plugin protocol (`SwiftCompilerPluginMessageHandling`) but not the
// `SwiftCompilerPlugin` wrapper: this is that wrapper's loop — messages from the compiler on
// standard input, answers on standard output — over the protocol's SPI, as the wrapper itself
// uses it. The SPI belongs to the same toolchain that compiles this file, so a change to it
// fails this build rather than a macro expansion (`ADJOINT_SWIFT_SYNTAX=package` then builds the
// route above).
@_spi(PluginMessage) import SwiftCompilerPluginMessageHandling

struct AdjointMacroProvider: PluginProvider {
    func resolveMacro(moduleName: String, typeName: String) throws -> any Macro.Type {
        try providedMacro(module: moduleName, type: typeName)
    }
}

@main
enum AdjointMacrosPlugin {
    static func main() throws {
        let listener = CompilerPluginMessageListener(connection: try StandardIOMessageConnection(),
                                                     provider: AdjointMacroProvider())
        try listener.main()
    }
}
#endif
