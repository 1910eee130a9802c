import Adjoint
import ArgumentParser

/// `adjoint ops`: the operator table with each operator's derivative status.
public struct OpsCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ops",
        abstract: "List every operator with its family, arity and derivative status."
    )

    @Option(name: .long, help: "Show only this family (\(OpFamily.allCases.map(\.rawValue).joined(separator: ", "))).")
    var family: String?

    public init() {}

    public func validate() throws {
        if let family, OpFamily(rawValue: family) == nil {
            throw ValidationError("unknown family '\(family)'; expected one of \(OpFamily.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    public func run() throws {
        print(Self.render(family: family.flatMap(OpFamily.init(rawValue:))))
    }

    /// The table `run` prints.
    public static func render(family: OpFamily? = nil) -> String {
        let rows = DerivativeRules.statusTable
            .filter { family == nil || $0.op.family == family }
            .map { op, status in
                let rule = DerivativeRules.rule(for: op)
                let modes = [rule.vjp != nil ? "VJP" : nil, rule.jvp != nil ? "JVP" : nil].compactMap { $0 }.joined(separator: "+")
                return [op.rawValue, op.family.rawValue, op.arity.map(String.init) ?? "n", modes.isEmpty ? "-" : modes, status.description]
            }
        let counts = Dictionary(grouping: DerivativeRules.statusTable.filter { family == nil || $0.op.family == family }) {
            switch $0.status {
            case .differentiable: return "differentiable"
            case .nonDifferentiable: return "non-differentiable"
            case .notImplemented: return "not implemented"
            }
        }.mapValues(\.count)
        let summary = ["differentiable", "non-differentiable", "not implemented"]
            .map { "\(counts[$0] ?? 0) \($0)" }.joined(separator: ", ")
        return TextTable.render(header: ["operator", "family", "inputs", "rules", "derivative"], rows: rows)
            + "\n\n\(rows.count) operators: \(summary)"
    }
}
