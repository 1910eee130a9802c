import Adjoint
import ArgumentParser

/// `adjoint`: the command-line front end of Adjoint.
public struct AdjointCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "adjoint",
        abstract: "Adjoint: a differentiable-programming runtime for long-running stateful systems.",
        discussion: "Run `adjoint <command> --help` for the options of each command.",
        version: AdjointVersion.current,
        subcommands: [OpsCommand.self, GradcheckCommand.self, SimulateCommand.self, TrainCommand.self, ReproCommand.self, LogCommand.self, CacheCommand.self, GraphCommand.self]
    )

    public init() {}
}

/// Fixed-width text tables for terminal output.
enum TextTable {
    /// Renders `rows` under `header`, columns padded to their widest cell.
    static func render(header: [String], rows: [[String]]) -> String {
        let widths = header.indices.map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(header), rule] + rows.map(line)).joined(separator: "\n")
    }
}

/// A command that ran and failed on its input (exit status 1, no usage text): the message says
/// which input and why.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
