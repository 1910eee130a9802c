import Adjoint
import AdjointExamples
import ArgumentParser
import Foundation
import AdjointCompiler

/// `adjoint simulate`: differentiates one of the example systems through time.
public struct SimulateCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract: "Differentiate an example system through time under a checkpoint schedule.",
        discussion: """
            Models: thermal (hot-water tank, pipe loop and concrete slab; 30 s steps; loss: squared \
            distance of the final mean slab temperature from 23 °C), ball (a bouncing ball; loss: \
            squared distance of the final height from 0.5 m), chain (500 masses on springs, 1,000 \
            states; loss: final energy proxy). Schedules: storeAll, uniform:<every>, \
            binomial:<snapshots>, online:<snapshots>, multiTier:<ram>+<disk>, truncated:<window>. \
            Prints the loss, the gradient norm, the gradient per parameter and the schedule's report.
            """
    )

    public enum Model: String, ExpressibleByArgument, CaseIterable, Sendable {
        case thermal, ball, chain
    }

    @Argument(help: "The system: thermal, ball or chain.")
    var model: Model

    @Option(name: .long, help: "Time steps (default: thermal 2880 = one day, ball 1000, chain 10000).")
    var steps: Int?

    @Option(name: .long, help: "Checkpoint schedule, e.g. binomial:32, uniform:100, storeAll (default: binomial:32).", transform: CheckpointSchedule.parse)
    var schedule: CheckpointSchedule = .binomial(snapshots: 32)

    @Flag(name: .long, help: "Trace the step once and run it as a compiled program (thermal and chain; same results, bitwise).")
    var compiled = false

    @Flag(name: .long, help: "With --compiled: also compile the programs' arithmetic to machine code with the system C compiler (ADJOINT_CC, else cc; same results, bitwise).")
    var native = false

    @Flag(name: .long, help: "Skip hashing states to verify recomputation (faster).")
    var noVerify = false

    @Option(name: .long, help: "Directory for a multiTier schedule's disk snapshots (default: a temporary directory).")
    var snapshotDirectory: String?

    @Flag(name: .long, help: "Never draw a progress bar.")
    var quiet = false

    @Option(name: .long, help: "Write the run manifest (JSON) to this file.")
    var manifest: String?

    public init() {}

    var horizon: Int { steps ?? Self.defaultSteps(model) }

    static func defaultSteps(_ model: Model) -> Int {
        switch model {
        case .thermal: return 2880
        case .ball: return 1000
        case .chain: return 10_000
        }
    }

    public func validate() throws {
        guard horizon >= 1, horizon <= CheckpointSchedule.maximumSteps else {
            throw ValidationError("--steps must be in 1...\(CheckpointSchedule.maximumSteps) (2^48), got \(horizon)")
        }
        if compiled && model == .ball {
            throw ValidationError("--compiled: the ball's step takes no input tensor and is not compiled; use thermal or chain")
        }
        if native && !compiled { throw ValidationError("--native needs --compiled") }
    }

    public func run() throws {
        if let manifest { try RunManifest.current().write(to: manifest) }
        let bar = quiet ? nil : ProgressBar(label: "\(model.rawValue) \(schedule)")
        let options = UnrollOptions(verifyReplay: !noVerify, snapshotDirectory: snapshotDirectory,
                                    progress: bar.map { bar in { bar.update($0, of: $1) } })
        let text = try Self.report(model, steps: horizon, schedule: schedule, options: options, compiled: compiled, native: native)
        bar?.finish()
        print(text)
    }

    /// Runs the model and renders what `simulate` prints.
    public static func report(_ model: Model, steps: Int, schedule: CheckpointSchedule,
                              options: UnrollOptions = UnrollOptions(), compiled: Bool = false, native: Bool = false) throws -> String {
        let start = DispatchTime.now()
        let code: NativeCode = native ? .required : .off
        let loss: Double, gradient: Tensor, names: [String], report: UnrollReport
        switch model {
        case .thermal:
            let m = ThermalModel()
            let r = compiled
                ? try unroll(try CompiledStep(m.step, loss: m.loss(target: 23), state: m.initialState, input: m.forcing(0), parameters: m.nominalParameters,
                                                 native: code),
                             from: m.initialState, parameters: m.nominalParameters, steps: steps, loss: m.loss(target: 23), schedule: schedule,
                             options: options, inputs: m.forcingInputs()).parameterGradientResult
                : try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule, options: options).parameterGradientResult
            (loss, gradient, names, report) = (r.loss, r.gradient, ThermalModel.names.map { "∂L/∂log " + $0 }, r.report)
        case .ball:
            let m = BouncingBall()
            let r = try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule, options: options)
            (loss, gradient, names, report) = (r.loss, r.parameterGradient, BouncingBall.names.map { "∂L/∂" + $0 }, r.report)
        case .chain:
            let m = SpringChain()
            let r = compiled
                ? try unroll(try CompiledStep(m.step, loss: m.loss, state: m.initialState, input: m.drive(0), parameters: m.nominalParameters, native: code),
                             from: m.initialState, parameters: m.nominalParameters, steps: steps, loss: m.loss, schedule: schedule,
                             options: options, inputs: m.drive).parameterGradientResult
                : try m.gradient(parameters: m.nominalParameters, steps: steps, schedule: schedule, options: options).parameterGradientResult
            (loss, gradient, names, report) = (r.loss, r.gradient, SpringChain.names.map { "∂L/∂" + $0 }, r.report)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
        let adapter = compiled ? (native ? ", compiled, native code" : ", compiled") : ""
        let g = gradient.doubles
        let norm = g.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let rows = zip(names, g).map { [$0, String(format: "% .6e", $1)] }
        return """
            \(model.rawValue): \(steps) steps, schedule \(schedule)\(adapter), \(String(format: "%.2f", seconds)) s
            loss           \(String(format: "%.9e", loss))
            gradient norm  \(String(format: "%.9e", norm))

            \(TextTable.render(header: ["parameter", "gradient"], rows: rows))

            \(report)
            """
    }
}

extension UnrollResult where Step.ParameterGradient == Tensor {
    /// The loss, the gradient tensor and the report (what `simulate` prints, whatever the adapter).
    var parameterGradientResult: (loss: Double, gradient: Tensor, report: UnrollReport) { (loss, parameterGradient, report) }
}
