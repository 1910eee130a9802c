import SwiftDiagnostics
import SwiftSyntax
import SwiftSyntaxBuilder
import SwiftSyntaxMacros

/// The stored instance properties of a struct, in declaration order: `let`s are marked (they
/// cannot be visited in place), properties with an accessor block (computed, observed) are left
/// out, and so are those marked `@ParameterIgnored` / `@noDerivative`.
struct StoredProperty {
    var name: String
    var isLet: Bool
    var ignored: Bool
}

func storedProperties(of declaration: some DeclGroupSyntax) -> [StoredProperty] {
    var out: [StoredProperty] = []
    for member in declaration.memberBlock.members {
        guard let variable = member.decl.as(VariableDeclSyntax.self) else { continue }
        if variable.modifiers.contains(where: { $0.name.tokenKind == .keyword(.static) || $0.name.tokenKind == .keyword(.class) }) { continue }
        let ignored = variable.attributes.contains { attribute in
            guard let name = attribute.as(AttributeSyntax.self)?.attributeName.trimmedDescription else { return false }
            return name == "ParameterIgnored" || name == "noDerivative"
        }
        let isLet = variable.bindingSpecifier.tokenKind == .keyword(.let)
        for binding in variable.bindings {
            guard binding.accessorBlock == nil, let pattern = binding.pattern.as(IdentifierPatternSyntax.self) else { continue }
            out.append(StoredProperty(name: pattern.identifier.trimmedDescription, isLet: isLet, ignored: ignored))
        }
    }
    return out
}

/// Whether the macro `name` is attached to a struct (diagnosing it at the attribute if not), and
/// the access modifier its members take (`public ` for a public struct).
func structTarget(_ name: String, _ node: AttributeSyntax, _ declaration: some DeclGroupSyntax,
                  _ context: some MacroExpansionContext) -> (isStruct: Bool, access: String) {
    guard declaration.is(StructDeclSyntax.self) else {
        context.diagnose(Diagnostic(node: node, message: MacroMessage("@\(name) applies to structs", id: "notStruct")))
        return (false, "")
    }
    return (true, declaration.modifiers.contains { $0.name.tokenKind == .keyword(.public) } ? "public " : "")
}

struct MacroMessage: DiagnosticMessage {
    let message: String
    let diagnosticID: MessageID
    let severity: DiagnosticSeverity
    init(_ message: String, id: String) {
        self.message = message
        diagnosticID = MessageID(domain: "AdjointMacros", id: id)
        severity = .error
    }
}

/// `@ParameterCollection`: adds the `ParameterCollection` conformance with a `visitTensors` that
/// visits every stored `var` (each must be a `ParameterCollection`: a tensor, an array, a
/// dictionary, an optional or a struct of them), named by the property (`layer.weight` for
/// nested collections), in declaration order. `let` properties and those marked
/// `@ParameterIgnored` are constants and are not visited.
public struct ParameterCollectionMacro: ExtensionMacro {
    public static func expansion(of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax,
                                 providingExtensionsOf type: some TypeSyntaxProtocol, conformingTo protocols: [TypeSyntax],
                                 in context: some MacroExpansionContext) throws -> [ExtensionDeclSyntax] {
        let (isStruct, access) = structTarget("ParameterCollection", node, declaration, context)
        guard isStruct else { return [] }
        let visited = storedProperties(of: declaration).filter { !$0.isLet && !$0.ignored }
        let body = visited.map { p in
            "try self.\(p.name).visitTensors { name, tensor in try visit(name.isEmpty ? \"\(p.name)\" : \"\(p.name).\" + name, &tensor) }"
        }.joined(separator: "\n")
        let extensionDecl: DeclSyntax = """
            extension \(type.trimmed): ParameterCollection {
                \(raw: access)mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
                    \(raw: body)
                }
            }
            """
        return [extensionDecl.cast(ExtensionDeclSyntax.self)]
    }
}

/// `@ParameterIgnored`: a stored property `@ParameterCollection` does not visit (a constant, a
/// configuration value). Expands to nothing.
public struct ParameterIgnoredMacro: PeerMacro {
    public static func expansion(of node: AttributeSyntax, providingPeersOf declaration: some DeclSyntaxProtocol,
                                 in context: some MacroExpansionContext) throws -> [DeclSyntax] { [] }
}

/// `@SwiftADState`: adds the `SwiftADState` conformance of a struct whose stored properties are
/// themselves states (`Double`, `Float`, arrays of them, nested `@SwiftADState` structs): the
/// bit-exact hash, the snapshot size and the dense zero tangent, each over every stored property
/// in declaration order. (`Differentiable` and `Codable` come from the compiler.)
public struct SwiftADStateMacro: ExtensionMacro {
    public static func expansion(of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax,
                                 providingExtensionsOf type: some TypeSyntaxProtocol, conformingTo protocols: [TypeSyntax],
                                 in context: some MacroExpansionContext) throws -> [ExtensionDeclSyntax] {
        let (isStruct, access) = structTarget("SwiftADState", node, declaration, context)
        guard isStruct else { return [] }
        let properties = storedProperties(of: declaration)
        if let ignored = properties.first(where: \.ignored) {
            context.diagnose(Diagnostic(node: node, message: MacroMessage(
                "@SwiftADState hashes and differentiates every stored property; '\(ignored.name)' is marked to be left out", id: "ignored")))
            return []
        }
        let hashes = properties.map { "self.\($0.name).hash(into: &hasher)" }.joined(separator: "\n")
        let bytes = properties.isEmpty ? "0" : properties.map { "self.\($0.name).snapshotByteCount" }.joined(separator: " + ")
        let zeros = properties.map { "\($0.name): self.\($0.name).zeroTangent" }.joined(separator: ", ")
        let extensionDecl: DeclSyntax = """
            extension \(type.trimmed): SwiftADState {
                \(raw: access)func hash(into hasher: inout StateHasher) {
                    \(raw: hashes)
                }
                \(raw: access)var snapshotByteCount: Int { \(raw: bytes) }
                \(raw: access)var zeroTangent: TangentVector { TangentVector(\(raw: zeros)) }
            }
            """
        return [extensionDecl.cast(ExtensionDeclSyntax.self)]
    }
}

/// `@SwiftADStepBody`: adds the `SwiftADStepBody` conformance of a struct whose
/// `callAsFunction(_ state:, _ input:, _ parameters:)` is `@differentiable(reverse, wrt: (state, parameters))`:
/// a `valueWithPullback` written with the struct's own types, so `_Differentiation` differentiates
/// the step where those types are known — in the user's module, specialized — rather than through
/// function values in generic code.
public struct SwiftADStepBodyMacro: ExtensionMacro, MemberMacro {
    /// What is wrong with `declaration` as a step body, if anything: it must be a struct with one
    /// `@differentiable` three-argument `callAsFunction` returning its first argument's type.
    static func problem(with declaration: some DeclGroupSyntax) -> String? {
        guard declaration.is(StructDeclSyntax.self) else { return "@SwiftADStepBody applies to structs" }
        let calls = declaration.memberBlock.members.compactMap { $0.decl.as(FunctionDeclSyntax.self) }
            .filter { $0.name.text == "callAsFunction" && $0.signature.parameterClause.parameters.count == 3 }
        guard calls.count == 1, let call = calls.first, let result = call.signature.returnClause?.type.trimmedDescription else {
            return "@SwiftADStepBody needs exactly one 'callAsFunction(_ state: State, _ input: Input, _ parameters: Parameters) -> State'"
        }
        let state = call.signature.parameterClause.parameters.first!.type.trimmedDescription
        guard result == state else {
            return "@SwiftADStepBody: 'callAsFunction' returns '\(result)'; a step returns its state's type '\(state)'"
        }
        let differentiable = call.attributes.contains { attribute in
            attribute.as(AttributeSyntax.self)?.attributeName.trimmedDescription == "differentiable"
        }
        return differentiable ? nil : "@SwiftADStepBody: mark 'callAsFunction' '@differentiable(reverse, wrt: (state, parameters))'"
    }

    public static func expansion(of node: AttributeSyntax, attachedTo declaration: some DeclGroupSyntax,
                                 providingExtensionsOf type: some TypeSyntaxProtocol, conformingTo protocols: [TypeSyntax],
                                 in context: some MacroExpansionContext) throws -> [ExtensionDeclSyntax] {
        if let problem = problem(with: declaration) {
            context.diagnose(Diagnostic(node: node, message: MacroMessage(problem, id: "notStepBody")))
            return []
        }
        return [DeclSyntax("extension \(type.trimmed): SwiftADStepBody {}").cast(ExtensionDeclSyntax.self)]
    }

    // The member is added inside the struct, where the struct's own type names resolve as in
    // `callAsFunction`; it names them by the conformance's associated types anyway (inferred from
    // `callAsFunction`). It has no control flow of its own: Swift 6.3's `_Differentiation` emits
    // the branch-tracing types of code in a macro expansion with the wrong linkage.
    public static func expansion(of node: AttributeSyntax, providingMembersOf declaration: some DeclGroupSyntax,
                                 conformingTo protocols: [TypeSyntax], in context: some MacroExpansionContext) throws -> [DeclSyntax] {
        guard problem(with: declaration) == nil else { return [] }   // diagnosed once, by the extension role
        let access = declaration.modifiers.contains { $0.name.tokenKind == .keyword(.public) } ? "public " : ""
        return ["""
            \(raw: access)func valueWithPullback(_ state: StepState, _ input: StepInput, _ parameters: StepParameters)
                -> (value: StepState, pullback: StepPullback) {
                _Differentiation.valueWithPullback(at: state, parameters) { state, parameters in self(state, input, parameters) }
            }
            """]
    }
}
