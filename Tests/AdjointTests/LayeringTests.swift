import Foundation
import Testing

/// The module layers of DESIGN.md §1, checked against what every source file imports: a module may
/// import only the modules below it.
@Suite("Module layers")
struct LayeringTests {
    /// Each module and the Adjoint modules it may import (its arrows in DESIGN.md, closed transitively).
    static let allowed: [String: Set<String>] = {
        let arrows: [String: [String]] = [
            "AdjointIR": [],
            "AdjointTensor": ["AdjointIR"],
            "AdjointIO": ["AdjointTensor"],
            "AdjointAutodiff": ["AdjointTensor", "AdjointIO"],
            "AdjointCompiler": ["AdjointAutodiff", "AdjointIO"],
            "AdjointStateful": ["AdjointCompiler"],
            "AdjointTraining": ["AdjointAutodiff", "AdjointIO"],
            "AdjointSwiftAD": ["AdjointStateful"],
            "AdjointPolicies": ["AdjointStateful", "AdjointTraining"],
            "Adjoint": ["AdjointPolicies", "AdjointCompiler"],
            // Above the umbrella's modules and outside it: the only module that links MPI.
            "AdjointDistributed": ["AdjointPolicies", "AdjointStateful", "AdjointTraining"],
        ]
        func closure(_ module: String) -> Set<String> {
            var seen = Set<String>(), stack = arrows[module] ?? []
            while let next = stack.popLast() {
                if seen.insert(next).inserted { stack += arrows[next] ?? [] }
            }
            return seen
        }
        return arrows.keys.reduce(into: [:]) { $0[$1] = closure($1) }
    }()

    @Test("no module imports a module above it")
    func importsFollowTheLayers() throws {
        let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Sources")
        var checked = 0
        for (module, allowed) in Self.allowed {
            let directory = sources.appendingPathComponent(module)
            guard let files = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil) else {
                Issue.record("no sources for \(module)"); continue
            }
            for case let file as URL in files where file.pathExtension == "swift" {
                let text = try String(contentsOf: file, encoding: .utf8)
                for line in text.split(separator: "\n") {
                    let words = line.split(separator: " ")
                    guard let i = words.firstIndex(of: "import"), i + 1 < words.count,
                          words[..<i].allSatisfy({ $0.hasPrefix("@") }) else { continue }
                    let imported = String(words[i + 1])
                    #expect(imported != "CMPI" || module == "AdjointDistributed", "\(module)/\(file.lastPathComponent) imports MPI")
                    guard imported.hasPrefix("Adjoint"), imported != module else { continue }
                    #expect(allowed.contains(imported), "\(module)/\(file.lastPathComponent) imports \(imported)")
                    checked += 1
                }
            }
        }
        #expect(checked > 50)
        #expect(!Self.allowed["AdjointTensor"]!.contains("AdjointAutodiff") && Self.allowed["AdjointCompiler"]!.contains("AdjointTensor"))
    }
}
