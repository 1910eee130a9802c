import Adjoint
import ArgumentParser
import Foundation

extension GradcheckMode: ExpressibleByArgument {}

/// `adjoint gradcheck`: runs the op-spec table against float64 central differences.
public struct GradcheckCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "gradcheck",
        abstract: "Check every derivative rule against float64 central differences.",
        discussion: """
            Runs each case of the op-spec table (random shapes, broadcasting, edge domains) and prints \
            the worst error per operator for each check. Order 1: reverse-mode gradients (rev) and \
            forward-mode directional derivatives (fwd) against central differences, and with \
            --mode both the forward- and reverse-mode Jacobians against each other (fwd=rev). \
            Order 2: Hessian-vector products, forward-over-reverse and/or reverse-over-reverse, \
            against central differences of gradients. Exits with status 1 if any case fails.
            """
    )

    @Option(name: .long, help: "Which mode to check: fwd, rev or both.")
    var mode: GradcheckMode = .both

    @Option(name: .long, help: "Derivative order: 1 (gradients, JVPs, Jacobians) or 2 (Hessian-vector products).")
    var order: Int = 1

    @Option(name: .long, help: "Check only operators whose id contains this text (e.g. 'binary' or 'elementwise.exp').")
    var op: String?

    @Flag(name: .long, help: "Print one line per case instead of one per operator.")
    var cases = false

    public init() {}

    public func validate() throws {
        guard order == 1 || order == 2 else { throw ValidationError("--order must be 1 or 2, got \(order)") }
    }

    public func run() throws {
        let specs = OpSpec.table.filter { op == nil || $0.op.rawValue.contains(op!) }
        guard !specs.isEmpty else { throw ValidationError("no op-spec case matches '\(op ?? "")'") }
        let report = Self.report(specs, mode: mode, order: order, perCase: cases)
        print(report.text)
        if !report.passed { throw ExitCode(1) }
    }

    /// Checks `specs`; returns the printed table and whether every case passed.
    package static func report(_ specs: [OpSpec], mode: GradcheckMode = .both, order: Int = 1,
                              perCase: Bool = false) -> (text: String, passed: Bool) {
        let checks = GradcheckCheck.selected(mode: mode, order: order)
        struct Row { var name: String; var cases = 0; var worst: [GradcheckCheck: Double] = [:]; var tolerance = 0.0; var failures: [String] = [] }
        var rows: [Row] = []
        for spec in specs {
            let name = perCase ? spec.description : spec.op.rawValue
            // One row per operator even when its cases are not adjacent in the table.
            let index = rows.firstIndex { $0.name == name } ?? { rows.append(Row(name: name)); return rows.count - 1 }()
            var row = rows[index]
            row.cases += 1
            row.tolerance = Swift.max(row.tolerance, spec.tolerance)
            do {
                let result = try spec.check(mode: mode, order: order)
                for check in checks { row.worst[check] = Swift.max(row.worst[check] ?? 0, result.worstError(check) ?? 0) }
                if !result.passed {
                    let failing = checks.filter { (result.worstError($0) ?? 0) > result.tolerance || result.worstError($0)?.isNaN == true }
                    row.failures.append("\(spec.label): " + failing.map { "\($0.rawValue) error \(format(result.worstError($0) ?? .nan))" }.joined(separator: ", "))
                }
            } catch {
                for check in checks { row.worst[check] = .infinity }
                row.failures.append("\(spec.label): \(error)")
            }
            rows[index] = row
        }
        let table = TextTable.render(
            header: ["operator", "cases"] + checks.map(\.rawValue) + ["tolerance", "result"],
            rows: rows.map { row in
                [row.name, "\(row.cases)"] + checks.map { format(row.worst[$0] ?? 0) }
                    + [format(row.tolerance), row.failures.isEmpty ? "pass" : "FAIL"]
            })
        let failed = rows.filter { !$0.failures.isEmpty }
        var text = "checks (order \(order), mode \(mode.rawValue)): " + checks.map { "\($0.rawValue) = \(describe($0))" }.joined(separator: "; ")
        text += "\nerror = |analytic - reference| / max(|analytic|, |reference|, 1), worst over each operator's cases\n\n"
        text += table + "\n\n"
        for row in failed { text += "FAIL \(row.name): " + row.failures.joined(separator: "; ") + "\n" }
        text += "\(specs.count) cases over \(rows.count) \(perCase ? "cases" : "operators"): "
            + (failed.isEmpty ? "all passed" : "\(failed.count) failed")
        return (text, failed.isEmpty)
    }

    static func describe(_ check: GradcheckCheck) -> String {
        switch check {
        case .reverse: return "reverse-mode gradient vs central differences"
        case .forward: return "forward-mode JVP vs central differences"
        case .jacobianAgreement: return "forward- vs reverse-mode Jacobian"
        case .hvpForwardOverReverse: return "forward-over-reverse HVP vs differences of gradients"
        case .hvpReverseOverReverse: return "reverse-over-reverse HVP vs differences of gradients"
        }
    }

    static func format(_ x: Double) -> String { x.isFinite ? String(format: "%.2e", x) : "\(x)" }
}
