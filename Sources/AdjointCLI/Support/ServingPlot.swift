import Adjoint
import Foundation

/// Mean and p99 end-to-end latency against load, one colour per policy (solid: mean, dashed:
/// p99), on a logarithmic latency axis.
enum ServingPlot {
    static func svg(_ series: [String: [(load: Double, report: ServingReport)]], title: String) -> String {
        let (width, height, left, right, top, bottom) = (760.0, 440.0, 70.0, 170.0, 40.0, 50.0)
        let loads = series.values.flatMap { $0.map(\.load) }
        let latencies = series.values.flatMap { $0.flatMap { [$0.report.endToEnd.mean, $0.report.endToEnd.p99] } }.filter { $0 > 0 }
        let (xLow, xHigh) = (loads.min() ?? 0, Swift.max(loads.max() ?? 1, (loads.min() ?? 0) + 1e-9))
        let (yLow, yHigh) = (log10(latencies.min() ?? 0.01), Swift.max(log10(latencies.max() ?? 1), log10(latencies.min() ?? 0.01) + 1e-9))
        func x(_ v: Double) -> Double { left + (v - xLow) / (xHigh - xLow) * (width - left - right) }
        func y(_ seconds: Double) -> Double { top + (yHigh - log10(Swift.max(seconds, 1e-9))) / (yHigh - yLow) * (height - top - bottom) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(Int(width / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">\(escape(title)): end-to-end latency against load</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        for load in Set(loads).sorted() {
            out += "<text x=\"\(x(load))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(String(format: "%g", load))×</text>\n"
        }
        var decade = floor(yLow)
        while decade <= ceil(yHigh) {
            let seconds = pow(10, decade)
            if log10(seconds) >= yLow - 1e-9, log10(seconds) <= yHigh + 1e-9 {
                out += "<text x=\"\(left - 6)\" y=\"\(y(seconds) + 4)\" text-anchor=\"end\">\(String(format: "%g", seconds)) s</text>\n"
            }
            decade += 1
        }
        out += "<text x=\"\(left + (width - left - right) / 2)\" y=\"\(height - 12)\" text-anchor=\"middle\">load (arrival-rate factor)</text>\n"
        let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"]
        for (n, name) in series.keys.sorted().enumerated() {
            let points = series[name]!.sorted { $0.load < $1.load }
            let colour = colours[n % colours.count]
            for (dash, value) in [("", { (r: ServingReport) in r.endToEnd.mean }), (" stroke-dasharray=\"5,4\"", { (r: ServingReport) in r.endToEnd.p99 })] {
                let path = points.map { "\(x($0.load)),\(y(value($0.report)))" }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(dash) points=\"\(path)\"/>\n"
            }
            out += "<text x=\"\(width - right + 12)\" y=\"\(top + 18 * Double(n) + 10)\" fill=\"\(colour)\">\(escape(name))</text>\n"
        }
        out += "<text x=\"\(width - right + 12)\" y=\"\(top + 18 * Double(series.count) + 24)\">solid: mean, dashed: p99</text>\n"
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
