import Adjoint
import Foundation

/// An SVG line chart of miss ratio against cache size (log scale), one line per policy.
enum MissRatioPlot {
    static func svg(_ results: [SimulationResult], title: String) -> String {
        let width = 760.0, height = 460.0, left = 70.0, right = 170.0, top = 40.0, bottom = 60.0
        let sizes = Array(Set(results.map(\.capacity))).sorted()
        let policies = results.map(\.policy).reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
        guard let minSize = sizes.first, let maxSize = sizes.last else { return "<svg xmlns=\"http://www.w3.org/2000/svg\"/>" }
        let ratios = results.map(\.missRatio)
        let low = Swift.max(0, (ratios.min() ?? 0) - 0.02), high = Swift.min(1, (ratios.max() ?? 1) + 0.02)
        func x(_ c: Int64) -> Double {
            minSize == maxSize ? left + (width - left - right) / 2
                : left + (log(Double(c)) - log(Double(minSize))) / (log(Double(maxSize)) - log(Double(minSize))) * (width - left - right)
        }
        func y(_ r: Double) -> Double { top + (high - r) / Swift.max(high - low, 1e-9) * (height - top - bottom) }
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#e7ba52", "#637939"]
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"\(left)\" y=\"24\" font-size=\"15\">\(escape(title))</text>\n"
        out += "<line x1=\"\(left)\" y1=\"\(height - bottom)\" x2=\"\(width - right)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(height - bottom)\" stroke=\"black\"/>\n"
        for c in sizes {
            out += "<text x=\"\(fmt(x(c)))\" y=\"\(height - bottom + 18)\" text-anchor=\"middle\">\(c)</text>\n"
        }
        for i in 0...5 {
            let r = low + (high - low) * Double(i) / 5
            out += "<line x1=\"\(left - 4)\" y1=\"\(fmt(y(r)))\" x2=\"\(width - right)\" y2=\"\(fmt(y(r)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(left - 8)\" y=\"\(fmt(y(r) + 4))\" text-anchor=\"end\">\(String(format: "%.3f", r))</text>\n"
        }
        out += "<text x=\"\((left + width - right) / 2)\" y=\"\(height - 18)\" text-anchor=\"middle\">cache size (\(results.first?.mode == .bytes ? "bytes" : "objects"), log scale)</text>\n"
        out += "<text x=\"18\" y=\"\((top + height - bottom) / 2)\" transform=\"rotate(-90 18 \((top + height - bottom) / 2))\" text-anchor=\"middle\">miss ratio</text>\n"
        for (i, policy) in policies.enumerated() {
            let color = colors[i % colors.count]
            let points = results.filter { $0.policy == policy }.sorted { $0.capacity < $1.capacity }
            let path = points.map { "\(fmt(x($0.capacity))),\(fmt(y($0.missRatio)))" }.joined(separator: " ")
            let dash = policy == "Belady" ? " stroke-dasharray=\"5,4\"" : ""
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash) points=\"\(path)\"><title>\(escape(policy))</title></polyline>\n"
            for p in points { out += "<circle cx=\"\(fmt(x(p.capacity)))\" cy=\"\(fmt(y(p.missRatio)))\" r=\"3\" fill=\"\(color)\"/>\n" }
            let ly = top + 10 + Double(i) * 20
            out += "<line x1=\"\(width - right + 15)\" y1=\"\(ly)\" x2=\"\(width - right + 40)\" y2=\"\(ly)\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>\n"
            out += "<text x=\"\(width - right + 46)\" y=\"\(ly + 4)\">\(escape(policy))</text>\n"
        }
        return out + "</svg>\n"
    }

    static func fmt(_ v: Double) -> String { String(format: "%.1f", v) }
    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
