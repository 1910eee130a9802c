import Adjoint
@testable import AdjointCLI
import Testing

@Suite("CLI reporting: tables, progress bars, plots")
struct ReportingTests {
    @Test("a text table pads every column to its widest cell, rules the header and trims trailing blanks")
    func textTable() {
        let text = TextTable.render(header: ["policy", "miss"], rows: [["LRU", "0.5"], ["Belady", "0.25"]])
        #expect(text == "policy  miss\n------  ----\nLRU     0.5\nBelady  0.25")
    }

    @Test("a progress bar stays silent when standard error is not a terminal or the run is short")
    func progressBarSilent() {
        let bar = ProgressBar(label: "steps", minimumTotal: 10)
        bar.update(5, of: 100)
        bar.update(100, of: 100)
        bar.finish()
        #expect(!bar.drawn || bar.interactive)
        let short = ProgressBar(label: "steps", minimumTotal: 1_000)
        short.update(5, of: 10)
        #expect(!short.drawn)
    }

    @Test("the miss-ratio plot has one line per policy, log-scaled sizes and an escaped title")
    func missRatioPlot() {
        func result(_ policy: String, _ capacity: Int64, _ misses: Int) -> SimulationResult {
            var r = SimulationResult(policy: policy, capacity: capacity, mode: .unit)
            r.requests = 100
            r.misses = misses
            return r
        }
        let results = [result("LRU", 10, 60), result("LRU", 100, 30), result("FIFO", 10, 70), result("FIFO", 100, 40)]
        let svg = MissRatioPlot.svg(results, title: "a <trace> & more")
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count - 1 == 2)
        #expect(svg.contains("a &lt;trace&gt; &amp; more") && !svg.contains("<trace>"))
        #expect(MissRatioPlot.svg([], title: "empty") == "<svg xmlns=\"http://www.w3.org/2000/svg\"/>")
    }
}
