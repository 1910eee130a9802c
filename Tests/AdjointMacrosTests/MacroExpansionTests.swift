import AdjointMacros
import SwiftSyntaxMacroExpansion
import SwiftSyntaxMacros
import SwiftSyntaxMacrosGenericTestSupport
import Testing

/// What the derived-conformance macros expand to, and what they refuse.
@Suite("Macros: derived conformances")
struct MacroExpansionTests {
    static let macros: [String: MacroSpec] = [
        "ParameterCollection": MacroSpec(type: ParameterCollectionMacro.self, conformances: ["ParameterCollection"]),
        "ParameterIgnored": MacroSpec(type: ParameterIgnoredMacro.self),
        "SwiftADState": MacroSpec(type: SwiftADStateMacro.self, conformances: ["SwiftADState"]),
    ]

    static func expand(_ source: String, _ expected: String, diagnostics: [DiagnosticSpec] = [],
                       sourceLocation: SourceLocation = #_sourceLocation) {
        assertMacroExpansion(source, expandedSource: expected, diagnostics: diagnostics, macroSpecs: macros,
                             failureHandler: { Issue.record(Comment(rawValue: $0.message), sourceLocation: sourceLocation) })
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
            """, diagnostics: [DiagnosticSpec(message: "@ParameterCollection applies to structs", line: 1, column: 1)])
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
            """, diagnostics: [DiagnosticSpec(message: "@SwiftADState hashes and differentiates every stored property; 'label' is marked to be left out", line: 1, column: 1)])
    }
}
