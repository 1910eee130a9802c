import Adjoint
@testable import AdjointPolicies
import AdjointTestSupport
import Foundation
import Testing

@Suite("LRB and its boosted trees")
struct LRBTests {
    /// Rows of `features` columns from a fixed generator, and a label function of them.
    static func rows(_ n: Int, features: Int, seed: UInt64 = 5, levels: UInt64 = 1000, label: ([Float]) -> Float) -> (rows: [Float], labels: [Float]) {
        var random = SplitMix64(seed: seed)
        var rows: [Float] = [], labels: [Float] = []
        for _ in 0..<n {
            let row = (0..<features).map { _ in Float(random.next() % levels) / Float(levels) }
            rows += row
            labels.append(label(row))
        }
        return (rows, labels)
    }

    @Test("one tree of two leaves splits where the squared error is least (brute force over every threshold), leaves at the side means")
    func singleSplitIsTheBest() throws {
        let (rows, labels) = Self.rows(400, features: 3, levels: 100) {   // fewer distinct values than bins: every threshold is a candidate
        r in (r[1] > 0.37 ? 3 : 0) + r[0] * 0.5 + r[2] * r[2] }
        var options = BoostedTrees.Options()
        (options.trees, options.leaves, options.learningRate, options.featureFraction, options.baggingFraction) = (1, 2, 1, 1, 1)
        let model = BoostedTrees.fit(rows: rows, featureCount: 3, labels: labels, options: options)
        // Brute force: every feature, every distinct value as a threshold (≤ goes left), ≥ 20 rows a side.
        var best = (sse: Double.infinity, feature: -1, threshold: Float(0))
        for f in 0..<3 {
            for t in Set((0..<400).map { rows[$0 * 3 + f] }) {
                let left = (0..<400).filter { rows[$0 * 3 + f] <= t }, right = (0..<400).filter { rows[$0 * 3 + f] > t }
                guard left.count >= 20, right.count >= 20 else { continue }
                func sse(_ side: [Int]) -> Double {
                    let mean = side.reduce(0.0) { $0 + Double(labels[$1]) } / Double(side.count)
                    return side.reduce(0.0) { $0 + (Double(labels[$1]) - mean) * (Double(labels[$1]) - mean) }
                }
                let total = sse(left) + sse(right)
                if total < best.sse - 1e-9 { best = (total, f, t) }
            }
        }
        #expect(model.treeCount == 1 && model.nodeCount == 3)
        #expect(Int(model.feature[0]) == best.feature)
        #expect(model.threshold[0] == best.threshold)
        // Predictions are the side means (base + −(mean residual)).
        let leftMean = (0..<400).filter { rows[$0 * 3 + best.feature] <= best.threshold }.map { Double(labels[$0]) }
        let predicted = rows.withUnsafeBufferPointer { p in
            (0..<400).first { rows[$0 * 3 + best.feature] <= best.threshold }.map { model.predict(p.baseAddress! + $0 * 3) }!
        }
        #expect(abs(predicted - leftMean.reduce(0, +) / Double(leftMean.count)) < 1e-9)
    }

    @Test("boosting fits a nonlinear function on held-out rows; the same seed gives the same model, batch and single predictions agree")
    func boostingFits() throws {
        let f: ([Float]) -> Float = { r in (r[0] > 0.5 ? 2 : 0) + (r[1] > 0.2 && r[2] < 0.7 ? 1 : -1) + r[3] }
        let train = Self.rows(6000, features: 5, label: f), test = Self.rows(1000, features: 5, seed: 6, label: f)
        let model = BoostedTrees.fit(rows: train.rows, featureCount: 5, labels: train.labels)
        let again = BoostedTrees.fit(rows: train.rows, featureCount: 5, labels: train.labels)
        #expect(model.feature == again.feature && model.threshold == again.threshold && model.value == again.value)
        let mean = test.labels.reduce(0.0) { $0 + Double($1) } / 1000
        var batch = [Double](repeating: 0, count: 1000)
        test.rows.withUnsafeBufferPointer { p in model.predict(rows: p.baseAddress!, count: 1000, into: &batch) }
        var error = 0.0, spread = 0.0
        for i in 0..<1000 {
            let single = model.predict(Array(test.rows[(i * 5)..<(i * 5 + 5)]))
            #expect(single == batch[i])
            error += (single - Double(test.labels[i])) * (single - Double(test.labels[i]))
            spread += (Double(test.labels[i]) - mean) * (Double(test.labels[i]) - mean)
        }
        // 32 rounds at rate 0.1 leave (0.9)^32 ≈ 3.4 % of the variance unfitted on a function trees can represent.
        #expect(error / spread < 0.06, "unexplained share \(error / spread)")
        #expect(model.treeCount == 32)
    }

    static func loopAndZipf(_ n: Int) throws -> [CacheRequest] {
        var w = try SyntheticWorkload(.mixture([(.loop(objects: 500), 0.6), (.zipf(objects: 3000, alpha: 0.8), 0.4)]), requests: n, key: RandomKey(seed: 8))
        return try w.readAll()
    }

    @Test("until its first model LRB evicts exactly as LRU does")
    func lruUntilTrained() throws {
        let requests = try Self.loopAndZipf(20_000)
        var lrb = LRBPolicy(capacity: 300)   // a batch of 131,072 labels is never reached
        var lru = LRUPolicy(capacity: 300)
        for r in requests { #expect(lrb.access(r) == lru.access(r)) }
        #expect(lrb.trainings == 0 && lrb.model == nil)
    }

    @Test("trained as it runs, LRB learns a loop LRU cannot hold: fewer misses than LRU")
    func learnsALoop() throws {
        let requests = try Self.loopAndZipf(30_000)
        var options = LRBPolicy.Options()
        options.batchSize = 3000
        var lrb = try LRBPolicy(capacity: 300, options: options)
        var lru = LRUPolicy(capacity: 300)
        var lrbMisses = 0, lruMisses = 0
        for (i, r) in requests.enumerated() {
            let (a, b) = (lrb.access(r), lru.access(r))
            if i >= 15_000 { lrbMisses += a ? 0 : 1; lruMisses += b ? 0 : 1 }
        }
        #expect(lrb.trainings >= 5)
        #expect(Double(lrbMisses) < 0.9 * Double(lruMisses), "LRB \(lrbMisses) vs LRU \(lruMisses) misses on the last 15,000")
        print("LRB \(lrbMisses), LRU \(lruMisses) misses on the last 15,000 requests; \(lrb.trainings) models")
        #expect(lrb.occupied <= 300)
    }

    @Test("remembered histories and pending samples stay within their limits on a scan of new objects; the oldest is forgotten first")
    func boundedMemory() throws {
        var options = LRBPolicy.Options()
        (options.historyLimit, options.sampleLimit, options.batchSize) = (200, 500, 1000)
        var lrb = try LRBPolicy(capacity: 50, options: options)
        for i in 0..<20_000 {
            _ = lrb.access(CacheRequest(time: Int64(i), id: UInt64(i % 7 == 0 ? i % 70 : 1_000 + i)))
            #expect(lrb.remembered.count <= 200 && lrb.pendingSamples <= 500 && lrb.residents.count <= 50)
            #expect(lrb.index.count == lrb.residents.count + lrb.remembered.count)
        }
        #expect(lrb.earlyForgets > 0 && lrb.skippedSamples > 0 && lrb.trainings > 0)
        #expect(lrb.ids.count <= 50 + 201)   // slots are reused
        // The remembered objects are the most recently requested of those that left.
        let oldestKept = try #require(lrb.remembered.map { lrb.lastRequest[Int($0)] }.min())
        #expect(lrb.time - oldestKept < 2_000)
    }

    @Test("a history expires a memory window after its object's last request")
    func memoryWindow() throws {
        var options = LRBPolicy.Options()
        options.memoryWindow = 2048
        var lrb = try LRBPolicy(capacity: 10, options: options)
        for i in 0..<10_000 { _ = lrb.access(CacheRequest(time: Int64(i), id: UInt64(i))) }
        #expect(lrb.earlyForgets == 0)
        #expect(lrb.remembered.allSatisfy { lrb.time &- lrb.lastRequest[Int($0)] < 2048 })
        #expect(lrb.remembered.count <= 2048)
    }

    @Test("options out of range are a typed error naming the field", arguments: [
        ("sampleSize", { @Sendable (o: inout LRBPolicy.Options) in o.sampleSize = 0 }),
        ("batchSize", { o in o.batchSize = -1 }),
        ("historyLimit", { o in o.historyLimit = Int.max }),
        ("sampleLimit", { o in o.sampleLimit = 0 }),
        ("memoryWindow", { o in o.memoryWindow = 10 }),
        ("leaves", { o in o.trees.leaves = 1 }),
        ("leaves", { o in o.trees.leaves = 1 << 20 }),
        ("memoryWindow", { o in o.memoryWindow = 1 << 31 }),
        ("learningRate", { o in o.trees.learningRate = .nan }),
        ("featureFraction", { o in o.trees.featureFraction = 0 }),
    ] as [(String, @Sendable (inout LRBPolicy.Options) -> Void)])
    func hostileOptions(_ field: String, _ edit: @Sendable (inout LRBPolicy.Options) -> Void) {
        var options = LRBPolicy.Options()
        edit(&options)
        #expect { _ = try LRBPolicy(capacity: 10, options: options) } throws: { "\($0)".contains(field) }
    }
}
