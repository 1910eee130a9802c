import AdjointFuzzTargets
import Foundation
import Testing

/// Every file of the fuzzing corpus (`Fuzz/Corpus/<target>/`: the seeds and every input a fuzzer
/// run found interesting or crashing) runs through its target in the ordinary test suite, so an
/// input that once broke a parser stays fixed.
@Suite("Fuzzing corpus")
struct CorpusTests {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Corpus")

    @Test("every corpus input runs through its target without a trap", arguments: FuzzTarget.allCases)
    func replay(_ target: FuzzTarget) throws {
        let directory = Self.corpus.appendingPathComponent(target.rawValue)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        #expect(!files.isEmpty, "no seed for \(target.rawValue)")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("adjoint-corpus-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        for file in files {
            let bytes = try #require(FileManager.default.contents(atPath: directory.appendingPathComponent(file).path))
            target.run(Array(bytes), scratch: scratch)
        }
    }
}
