import AdjointMacros
import SwiftDiagnostics
import SwiftParser
import SwiftParserDiagnostics
import SwiftSyntax
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacros
import Testing

/// A diagnostic a macro must emit: its message and where it points (1-based line and column).
struct ExpectedDiagnostic: Equatable, CustomStringConvertible {
    var message: String
    var line: Int
    var column: Int
    var description: String { "\(line):\(column): \(message)" }
}

/// What the derived-conformance macros expand to, and what they refuse.
@Suite("Macros: derived conformances")
struct MacroExpansionTests {
    static let macros: [String: MacroSpec] = [
        "ParameterCollection": MacroSpec(type: ParameterCollectionMacro.self, conformances: ["ParameterCollection"]),
        "ParameterIgnored": MacroSpec(type: ParameterIgnoredMacro.self),
        "SwiftADState": MacroSpec(type: SwiftADStateMacro.self, conformances: ["SwiftADState"]),
        "SwiftADStepBody": MacroSpec(type: SwiftADStepBodyMacro.self, conformances: ["SwiftADStepBody"]),
    ]

    /// Expands `source` as the compiler would (every attached macro of `macros`, four-space
    /// indentation) and expects `expected` (trailing whitespace aside) and exactly `diagnostics`,
    /// with a source that parses without error.
    static func expand(_ source: String, _ expected: String, diagnostics: [ExpectedDiagnostic] = [],
                       sourceLocation: Testing.SourceLocation = #_sourceLocation) {
        let file = Parser.parse(source: source)
        let parseErrors = ParseDiagnosticsGenerator.diagnostics(for: file)
        #expect(parseErrors.isEmpty, "the source does not parse: \(parseErrors.map(\.message))", sourceLocation: sourceLocation)
        let context = BasicMacroExpansionContext(sourceFiles: [file: .init(moduleName: "TestModule", fullFilePath: "test.swift")])
        let expanded = file.expand(macroSpecs: macros, contextGenerator: { syntax in
            BasicMacroExpansionContext(sharingWith: context, lexicalContext: syntax.allMacroLexicalContexts())
        }, indentationWidth: .spaces(4))
        #expect(trimmed(expanded.description) == trimmed(expected),
                sourceLocation: sourceLocation)
        let emitted = context.diagnostics.map { diagnostic in
            let location = context.location(for: diagnostic.position, anchoredAt: diagnostic.node, fileName: "")
            return ExpectedDiagnostic(message: diagnostic.message, line: location.line, column: location.column)
        }
        #expect(emitted == diagnostics, sourceLocation: sourceLocation)
    }

    @Test("the plugin resolves the macros #externalMacro names, and only those")
    func resolution() throws {
        let found = try providedMacro(module: "AdjointMacros", type: "SwiftADStateMacro")
        #expect(ObjectIdentifier(found) == ObjectIdentifier(SwiftADStateMacro.self))
        for (module, type) in [("AdjointMacros", "NoSuchMacro"), ("OtherMacros", "SwiftADStateMacro")] {
            #expect(throws: UnknownMacro.self) { try providedMacro(module: module, type: type) }
        }
        let error = #expect(throws: UnknownMacro.self) { try providedMacro(module: "OtherMacros", type: "M") }
        #expect(error?.description == "AdjointMacros provides no macro OtherMacros.M")
    }

    /// `text` without the whitespace that ends each line, nor the empty lines that open and close it
    /// (an attribute the expansion removes leaves its line break).
    static func trimmed(_ text: String) -> String {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            .map { line in String(line.reversed().drop(while: \.isWhitespace).reversed()) }
        while lines.first?.isEmpty == true { lines.removeFirst() }
        while lines.last?.isEmpty == true { lines.removeLast() }
        return lines.joined(separator: "\n")
    }

    @Test("@ParameterCollection visits every stored var in order, skipping lets, ignored and computed properties")
    func parameterCollection() {
        Self.expand("""
            @ParameterCollection
            public struct Model {
                var encoder: Dense
                var scale: Tensor, shift: Tensor
                let depth: Int
                @ParameterIgnored var name = "m"
                var count: Int { 2 }
                static var shared: Tensor = .init(0.0)
            }
            """, """
            public struct Model {
                var encoder: Dense
                var scale: Tensor, shift: Tensor
                let depth: Int
                var name = "m"
                var count: Int { 2 }
                static var shared: Tensor = .init(0.0)
            }

            extension Model: ParameterCollection {
                public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
                    try self.encoder.visitTensors { name, tensor in
                        try visit(name.isEmpty ? "encoder" : "encoder." + name, &tensor)
                    }
                    try self.scale.visitTensors { name, tensor in
                        try visit(name.isEmpty ? "scale" : "scale." + name, &tensor)
                    }
                    try self.shift.visitTensors { name, tensor in
                        try visit(name.isEmpty ? "shift" : "shift." + name, &tensor)
                    }
                }
            }
            """)
    }

    @Test("@SwiftADState hashes, sizes and zeroes every stored property")
    func swiftADState() {
        Self.expand("""
            @SwiftADState
            struct Cart: Differentiable, Codable {
                var position: Float
                var velocities: [Float]
            }
            """, """
            struct Cart: Differentiable, Codable {
                var position: Float
                var velocities: [Float]
            }

            extension Cart: SwiftADState {
                func hash(into hasher: inout StateHasher) {
                    self.position.hash(into: &hasher)
                    self.velocities.hash(into: &hasher)
                }
                var snapshotByteCount: Int {
                    self.position.snapshotByteCount + self.velocities.snapshotByteCount
                }
                var zeroTangent: TangentVector {
                    TangentVector(position: self.position.zeroTangent, velocities: self.velocities.zeroTangent)
                }
            }
            """)
    }

    @Test("either macro on a class, or @SwiftADState with a property left out, is an error at the attribute")
    func refusals() {
        Self.expand("""
            @ParameterCollection
            class Model {
                var w: Tensor
            }
            """, """
            class Model {
                var w: Tensor
            }
            """, diagnostics: [ExpectedDiagnostic(message: "@ParameterCollection applies to structs", line: 1, column: 1)])
        Self.expand("""
            @SwiftADState
            struct S: Differentiable, Codable {
                var x: Float
                @noDerivative var label: Float
            }
            """, """
            struct S: Differentiable, Codable {
                var x: Float
                @noDerivative var label: Float
            }
            """, diagnostics: [ExpectedDiagnostic(message: "@SwiftADState hashes and differentiates every stored property; 'label' is marked to be left out", line: 1, column: 1)])
    }

    @Test("@SwiftADStepBody adds the conformance and a valueWithPullback in the struct's access")
    func swiftADStepBody() {
        Self.expand("""
            @SwiftADStepBody
            public struct Decay {
                var rate: Double
                @differentiable(reverse, wrt: (state, parameters))
                public func callAsFunction(_ state: Double, _ input: Double, _ parameters: Double) -> Double {
                    state * parameters * rate + input
                }
            }
            """, """
            public struct Decay {
                var rate: Double
                @differentiable(reverse, wrt: (state, parameters))
                public func callAsFunction(_ state: Double, _ input: Double, _ parameters: Double) -> Double {
                    state * parameters * rate + input
                }

                public func valueWithPullback(_ state: StepState, _ input: StepInput, _ parameters: StepParameters)
                    -> (value: StepState, pullback: StepPullback) {
                    _Differentiation.valueWithPullback(at: state, parameters) { state, parameters in
                        self(state, input, parameters)
                    }
                }
            }

            extension Decay: SwiftADStepBody {
            }
            """)
    }

    @Test("@SwiftADStepBody refuses a class, a struct without one three-argument callAsFunction, a step that does not return its state, and a non-differentiable one")
    func swiftADStepBodyRefusals() {
        let cases: [(String, String)] = [
            ("class C {\n    @differentiable(reverse) func callAsFunction(_ s: Double, _ x: Double, _ p: Double) -> Double { s }\n}",
             "@SwiftADStepBody applies to structs"),
            ("struct S {\n    func callAsFunction(_ s: Double, _ p: Double) -> Double { s }\n}",
             "@SwiftADStepBody needs exactly one 'callAsFunction(_ state: State, _ input: Input, _ parameters: Parameters) -> State'"),
            ("struct S {\n    @differentiable(reverse) func callAsFunction(_ s: Double, _ x: Float, _ p: Double) -> Float { x }\n}",
             "@SwiftADStepBody: 'callAsFunction' returns 'Float'; a step returns its state's type 'Double'"),
            ("struct S {\n    func callAsFunction(_ s: Double, _ x: Double, _ p: Double) -> Double { s }\n}",
             "@SwiftADStepBody: mark 'callAsFunction' '@differentiable(reverse, wrt: (state, parameters))'"),
        ]
        for (source, message) in cases {
            Self.expand("@SwiftADStepBody\n" + source, source, diagnostics: [ExpectedDiagnostic(message: message, line: 1, column: 1)])
        }
    }
}
