import SwiftSyntaxMacros

/// The macros this plugin provides, by the type names `#externalMacro` gives.
let providedMacros: [any Macro.Type] = [
    ParameterCollectionMacro.self, ParameterIgnoredMacro.self, SwiftADStateMacro.self, SwiftADStepBodyMacro.self,
]

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
// fails this build (the package route above then still serves).
@_spi(PluginMessage) import SwiftCompilerPluginMessageHandling

/// A macro type `#externalMacro` names that this plugin does not provide.
struct UnknownMacro: Error, CustomStringConvertible {
    let module: String, type: String
    var description: String { "AdjointMacros provides no macro \(module).\(type)" }
}

struct AdjointMacroProvider: PluginProvider {
    func resolveMacro(moduleName: String, typeName: String) throws -> any Macro.Type {
        guard let macro = providedMacros.first(where: { String(reflecting: $0) == "\(moduleName).\(typeName)" }) else {
            throw UnknownMacro(module: moduleName, type: typeName)
        }
        return macro
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
