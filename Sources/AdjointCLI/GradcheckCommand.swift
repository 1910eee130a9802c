import Adjoint
import ArgumentParser
import Foundation

/// `adjoint gradcheck`: runs the op-spec table against float64 central differences.
public struct GradcheckCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check every derivative rule against float64 central differences.",
        discussion: """
            Runs each case of the op-spec table (random shapes, broadcasting, edge domains), compares \
            reverse-mode gradients with central differences and prints the worst error per operator. \
            Exits with status 1 if any case fails.
            """
    )

    @Option(name: .long, help: "Check only operators whose id contains this text (e.g. 'binary' or 'elementwise.exp').")
    var op: String?

    @Flag(name: .long, help: "Print one line per case instead of one per operator.")
    var cases = false

    public init() {}

    public func run() throws {
        let specs = OpSpec.table.filter { op == nil || $0.op.rawValue.contains(op!) }
        guard !specs.isEmpty else { throw ValidationError("no op-spec case matches '\(op ?? "")'") }
        let report = Self.report(specs, perCase: cases)
        print(report.text)
        if !report.passed { throw ExitCode(1) }
    }

    /// Checks `specs`; returns the printed table and whether every case passed.
    public static func report(_ specs: [OpSpec], perCase: Bool = false) -> (text: String, passed: Bool) {
        struct Row { var name: String; var cases = 0; var worst = 0.0; var tolerance = 0.0; var failures: [String] = [] }
        var rows: [Row] = []
        for spec in specs {
            let name = perCase ? spec.description : spec.op.rawValue
            if rows.last?.name != name { rows.append(Row(name: name)) }
            rows[rows.count - 1].cases += 1
            rows[rows.count - 1].tolerance = Swift.max(rows[rows.count - 1].tolerance, spec.tolerance)
            do {
                let result = try spec.check()
                rows[rows.count - 1].worst = Swift.max(rows[rows.count - 1].worst, result.worstError)
                if !result.passed { rows[rows.count - 1].failures.append("\(spec.label): error \(format(result.worstError))") }
            } catch {
                rows[rows.count - 1].worst = .infinity
                rows[rows.count - 1].failures.append("\(spec.label): \(error)")
            }
        }
        let table = TextTable.render(
            header: ["operator", "cases", "max rel. error", "tolerance", "result"],
            rows: rows.map { [$0.name, "\($0.cases)", format($0.worst), format($0.tolerance), $0.failures.isEmpty ? "pass" : "FAIL"] })
        let failed = rows.filter { !$0.failures.isEmpty }
        var text = table + "\n\n"
        for row in failed { text += "FAIL \(row.name): " + row.failures.joined(separator: "; ") + "\n" }
        text += "\(specs.count) cases over \(rows.count) \(perCase ? "cases" : "operators"): "
            + (failed.isEmpty ? "all passed" : "\(failed.count) failed")
        return (text, failed.isEmpty)
    }

    static func format(_ x: Double) -> String { x.isFinite ? String(format: "%.2e", x) : "\(x)" }
}
