import Adjoint
import ArgumentParser

/// `adjoint`: the command-line front end of Adjoint.
public struct AdjointCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "adjoint",
        abstract: "Adjoint: a differentiable-programming runtime for long-running stateful systems.",
        discussion: "Run `adjoint <command> --help` for the options of each command.",
        version: AdjointVersion.current,
        subcommands: [OpsCommand.self, GradcheckCommand.self, SimulateCommand.self, TrainCommand.self, ReproCommand.self, LogCommand.self, CacheCommand.self, ServeCommand.self, GraphCommand.self, DistributedCommand.self]
    )

    public init() {}
}
