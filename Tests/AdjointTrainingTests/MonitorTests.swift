import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Training monitors")
struct MonitorTests {
    @Test("gradient norms, activation statistics and overflows stream as JSON lines and text")
    func monitors() throws {
        let path = (temporaryDirectory("monitor") as NSString).appendingPathComponent("metrics.jsonl")
        let pipe = Pipe()
        let monitor = TrainingMonitor(sinks: [try JSONLinesSink(path: path), TextSink(pipe.fileHandleForWriting)])
        let gradient: [String: Tensor] = ["w": t([3, 4]), "b": t([0, .infinity])]
        let record = try monitor.record(step: 7, loss: 0.5, gradient: gradient, activations: ["h": t([1, 2, 3, .nan])])
        #expect(record.gradientNorms["w"] == 5 && record.gradientNorms["b"] == 0 && record.overflows == 2)
        #expect(record.activations["h"]!.mean == 2 && record.activations["h"]!.nonFinite == 1)
        try monitor.record(step: 8, gradient: ["w": t([0, 1])])
        let lines = try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        #expect(first["step"] as? Int == 7 && first["overflows"] as? Int == 2)
        try pipe.fileHandleForWriting.close()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(text.hasPrefix("step 7 loss 0.5") && text.contains("OVERFLOW 2") && text.contains("step 8"))
    }
}
