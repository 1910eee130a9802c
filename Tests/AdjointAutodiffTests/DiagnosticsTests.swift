import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Anomaly detection, profiler, resource limits", .serialized)
struct DiagnosticsTests {
    @Test("anomaly mode names the first operation producing NaN/Inf, forward")
    func anomalyForward() throws {
        let x = t([1, 0, 2])
        do {
            _ = try withAnomalyDetection { try (x.log() * 2).exp().sum() }
            Issue.record("no anomaly reported")
        } catch let report as AnomalyReport {
            #expect(report.op == .log && report.index == 0 && report.phase == .forward && report.inputsFinite)
            #expect(report.value == "-Inf at element 1 of f64[3]")
            #expect(report.location.hasPrefix("AdjointAutodiffTests/DiagnosticsTests.swift:"))
            #expect("\(report)".contains("elementwise.log"))
        }
        // Off by default: the same computation just returns the non-finite value.
        #expect(try (x.log() * 2).exp().sum().item() == 5)
    }

    @Test("anomaly mode names the operation and tape node in backward, and the unroll step")
    func anomalyBackward() throws {
        // sqrt(x) at 0 is finite forward; its derivative 1/(2√x) is infinite.
        #expect { _ = try withAnomalyDetection { try gradient(at: t([4, 0])) { try $0.sqrt().sum() } } } throws: { error in
            guard let r = error as? AnomalyReport, case let .backward(node, op) = r.phase else { return false }
            return op == .sqrt && node == 0 && r.value.contains("Inf")
        }
        typealias Step = TensorStep<Tensor, Tensor, Tensor, NoOutput>
        let step = Step { s, x, p in (try (s + x).log() * p, NoOutput()) }   // log of a negative state at step 3
        let inputs = [t([1]), t([1]), t([-10]), t([-10]), t([1])]
        #expect {
            _ = try withAnomalyDetection {
                try unroll(step, from: t([1]), parameters: t([1]), inputs: inputs, loss: .final { try $0.sum() }, schedule: .storeAll)
            }
        } throws: { error in (error as? AnomalyReport)?.unrollStep == 2 && (error as? AnomalyReport)?.op == .log }
    }

    @Test("the profiler's Chrome trace parses, operators nest inside their regions, and the summary lists them")
    func profiler() throws {
        let profiler = Profiler()
        try profiler.record {
            try profiler.region("train step") {
                let w = try Tensor.uniform([64, 64], key: RandomKey(seed: 1))
                _ = try profiler.region("forward and backward") { try gradient(at: w) { try $0.matmul($0).tanh().sum() } }
                _ = try profiler.region("update") { try w * 0.5 }
            }
        }
        let trace = try JSONSerialization.jsonObject(with: Data(try profiler.chromeTrace())) as! [String: Any]
        let events = trace["traceEvents"] as! [[String: Any]]
        let complete = events.filter { $0["ph"] as? String == "X" }
        let regions = complete.filter { $0["cat"] as? String == "region" }, ops = complete.filter { $0["cat"] as? String == "op" }
        #expect(regions.count == 3 && ops.count > 5)
        func span(_ e: [String: Any]) -> (Double, Double) { let ts = e["ts"] as! Double; return (ts, ts + (e["dur"] as! Double)) }
        let outer = span(regions.first { $0["name"] as? String == "train step" }!)
        for e in complete where e["name"] as? String != "train step" {
            let (a, b) = span(e)
            #expect(a >= outer.0 - 0.001 && b <= outer.1 + 0.001, "\(e["name"]!) outside the enclosing region")
        }
        let inner = span(regions.first { $0["name"] as? String == "forward and backward" }!)
        #expect(ops.contains { $0["name"] as? String == "linalg.matmul" && span($0).0 >= inner.0 && span($0).1 <= inner.1 })
        #expect(events.contains { $0["ph"] as? String == "C" } && !profiler.memory.isEmpty)
        let summary = profiler.summary()
        #expect(summary.contains("linalg.matmul") && summary.contains("elementwise.tanh"))
        // Not installed: nothing is recorded.
        _ = try Tensor.uniform([4], key: RandomKey(seed: 2)).exp()
        #expect(profiler.events.filter { $0.category == "op" }.count == ops.count)
    }

    @Test("each resource limit raises a typed error; the process goes on and nothing leaks")
    func limits() throws {
        #expect(throws: ResourceError.tensorTooLarge(op: "creation.full", elements: 1000, limit: 100)) {
            try ResourceLimits(maxElementsPerTensor: 100).enforce { try Tensor.zeros([1000]) }
        }
        #expect { try ResourceLimits(maxTapeNodes: 10).enforce { try gradient(at: Tensor(1.0)) { x in
            var y = x
            for _ in 0..<50 { y = try y * 1.01 }
            return y
        } } } throws: { ($0 as? ResourceError) == .tapeTooLong(nodes: 11, limit: 10) }
        // The pool is process-wide and other tests run beside this one, so leaks are checked on the
        // scope's own memory account: once the error has unwound the scope, it must be back to 0.
        let account = MemoryAccount()
        #expect { try ResourceLimits(memoryQuota: 1 << 20).enforce(account: account) {
            var kept: [Tensor] = []
            for _ in 0..<100 { kept.append(try Tensor.zeros([16_384])) }   // 128 KiB each
            return kept.count
        } } throws: { if case .memoryQuotaExceeded = $0 as? ResourceError { return true } else { return false } }
        #expect(account.liveBytes == 0 && account.peakBytes > 1 << 20, "live \(account.liveBytes), peak \(account.peakBytes)")
        let deadlineAccount = MemoryAccount()
        _ = try? ResourceLimits(deadline: 0.02).enforce(account: deadlineAccount) {
            var x = try Tensor.uniform([10_000], key: RandomKey(seed: 5))
            while true { x = try x.exp().log() }
        }
        #expect(deadlineAccount.liveBytes == 0)
        #expect { try ResourceLimits(deadline: 0.05).enforce {
            var x = try Tensor.uniform([100_000], key: RandomKey(seed: 3))
            while true { x = try x.tanh() }
        } } throws: { if case .deadlineExceeded = $0 as? ResourceError { return true } else { return false } }
        // Within limits, work goes on.
        #expect(try ResourceLimits(maxElementsPerTensor: 100, maxTapeNodes: 10, memoryQuota: 1 << 20, deadline: 10).enforce {
            try gradient(at: t([1, 2])) { try ($0 * $0).sum() }.doubles
        } == [2, 4])
    }
}
