import Dispatch
import Foundation

/// A one-line progress bar on standard error, redrawn at most every 1 % and 0.1 s; silent when
/// standard error is not a terminal or the run is short.
final class ProgressBar {
    let label: String
    let minimumTotal: Int
    let interactive = isatty(2) != 0
    var lastFraction = -1.0
    var lastDraw = DispatchTime.now()
    let start = DispatchTime.now()
    var drawn = false

    init(label: String, minimumTotal: Int = 20_000, unit: String = "step evaluations") {
        self.label = label
        self.minimumTotal = minimumTotal
        self.unit = unit
    }

    let unit: String

    func update(_ done: Int, of total: Int) {
        guard interactive, total >= minimumTotal else { return }
        let fraction = Double(done) / Double(max(total, 1))
        let now = DispatchTime.now()
        guard done == total || (fraction - lastFraction >= 0.01 && now.uptimeNanoseconds - lastDraw.uptimeNanoseconds > 100_000_000) else { return }
        lastFraction = fraction
        lastDraw = now
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = Double(now.uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let line = "\r\(label) [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: width - filled))] "
            + String(format: "%3.0f%% %d/%d %@ %.1f s", fraction * 100, done, total, unit, elapsed)
        FileHandle.standardError.write(Data(line.utf8))
        drawn = true
    }

    func finish() {
        if drawn { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
