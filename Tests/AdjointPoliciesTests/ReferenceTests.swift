import Adjoint
import Foundation
import Testing

/// `../shared/data` relative to the checkout (tests that need it are disabled, and reported as
/// skipped by the test runner, when it is absent).
let sharedData: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.deletingLastPathComponent().appendingPathComponent("shared/data").path
}()

struct ReferenceRow: CustomTestStringConvertible, Sendable {
    var trace: String, mode: SizeMode, capacity: Int64, policy: String, missRatio: Double, byteMissRatio: Double
    var testDescription: String { "\(trace) \(mode) \(capacity) \(policy)" }
}

/// The rows of libcachesim-reference.csv, grouped by (trace, sizes, capacity).
let referenceGroups: [[ReferenceRow]] = {
    guard let text = try? String(contentsOfFile: sharedData + "/libcachesim-reference.csv", encoding: .utf8) else { return [] }
    var groups: [String: [ReferenceRow]] = [:]
    for line in text.split(whereSeparator: \.isNewline).dropFirst() {
        let f = line.split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        guard f.count == 7, let c = Int64(f[2]), let m = Double(f[5]), let b = Double(f[6]) else { continue }
        let row = ReferenceRow(trace: f[0], mode: f[1] == "bytes" ? .bytes : .unit, capacity: c, policy: f[4], missRatio: m, byteMissRatio: b)
        groups["\(f[0]) \(f[1]) \(f[2])", default: []].append(row)
    }
    return groups.keys.sorted().map { groups[$0]! }
}()

func traceFile(_ name: String) -> String? {
    for suffix in [".oracleGeneral.bin", ".oracleGeneral.bin.zst"] {
        let path = sharedData + "/traces/" + name + suffix
        if FileManager.default.fileExists(atPath: path) { return path }
    }
    return nil
}

/// The reference groups whose trace is present.
let availableReferenceGroups = referenceGroups.filter { traceFile($0[0].trace) != nil }

@Suite("Simulator against libCacheSim's reference results")
struct ReferenceTests {
    @Test("miss ratios within 0.002 (FIFO, LRU, Belady) or 0.01 (the others) of libCacheSim",
          .enabled(if: !availableReferenceGroups.isEmpty, "needs ../shared/data/libcachesim-reference.csv and its traces"),
          arguments: availableReferenceGroups)
    func reference(_ rows: [ReferenceRow]) throws {
        let path = try #require(traceFile(rows[0].trace))
        var reader = try OracleGeneralReader(path: path)
        let requests = try reader.readAll()
        for row in rows {
            guard let kind = PolicyKind(name: row.policy) else { continue }   // a libCacheSim policy Adjoint does not have
            let result = CacheSimulation.run(kind, capacity: row.capacity, requests: requests, mode: row.mode)
            let tolerance = [.fifo, .lru, .belady].contains(kind) ? 0.002 : 0.01
            print(String(format: "%@ %@ %lld %@: %.4f vs libCacheSim %.4f (bytes %.4f vs %.4f)", row.trace, row.mode.rawValue, row.capacity,
                         kind.rawValue, result.missRatio, row.missRatio, result.byteMissRatio, row.byteMissRatio))
            #expect(Swift.abs(result.missRatio - row.missRatio) <= tolerance, "\(row.testDescription): \(result.missRatio) vs \(row.missRatio)")
            #expect(Swift.abs(result.byteMissRatio - row.byteMissRatio) <= tolerance, "\(row.testDescription) bytes: \(result.byteMissRatio) vs \(row.byteMissRatio)")
        }
    }

    @Test("every trace of the reference table that ../shared/data names is there",
          .enabled(if: !referenceGroups.isEmpty, "needs ../shared/data/libcachesim-reference.csv"))
    func referenceTracesPresent() {
        let missing = Set(referenceGroups.map { $0[0].trace }).filter { traceFile($0) == nil }
        #expect(missing.isEmpty, "absent from \(sharedData)/traces: \(missing.sorted())")
    }
}
