import Foundation

/// Starts this executable under `mpirun` and collects what rank 0 printed: how `adjoint repro mlp
/// --ranks` runs one job per rank count from a single command.
struct MPILauncher {
    /// `mpirun` (from `--mpirun`, else `$PATH`).
    let mpirun: String

    /// Finds `mpirun`: `path` when given (it must be executable), else the first on `$PATH`.
    init(path: String?) throws {
        if let path {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw CommandFailure("--mpirun '\(path)': not an executable file")
            }
            mpirun = path
            return
        }
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        guard let found = directories.map({ "\($0)/mpirun" }).first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw CommandFailure("mpirun was not found on PATH: install Open MPI (Debian: openmpi-bin) or pass --mpirun")
        }
        mpirun = found
    }

    /// The path of the running executable.
    static var currentExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// `mpirun -np ranks … executable arguments`, its standard output, or a failure naming the exit
    /// status and the end of its standard error. Oversubscribes (more ranks than cores is expected
    /// on a laptop) and allows running as root (containers, CI).
    func run(ranks: Int, arguments: [String], deadline seconds: Double = 900) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: mpirun)
        var options = ["-np", "\(ranks)", "--oversubscribe"]
        if getuid() == 0 { options.append("--allow-run-as-root") }
        process.arguments = options + [Self.currentExecutable] + arguments
        var environment = ProcessInfo.processInfo.environment
        // Shared-memory transport without cross-process memory attach, which containers often forbid.
        environment["OMPI_MCA_btl_vader_single_copy_mechanism"] = environment["OMPI_MCA_btl_vader_single_copy_mechanism"] ?? "none"
        process.environment = environment
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let timer = DispatchSource.makeTimerSource()
        timer.schedule(deadline: .now() + seconds)
        timer.setEventHandler { process.terminate() }
        timer.resume()
        // Drain both pipes while the job runs (a full pipe would block it).
        // Written by the reader before it signals, read here after the wait: the semaphore orders them.
        nonisolated(unsafe) var errorData = Data()
        let errorRead = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            errorData = errors.fileHandleForReading.readDataToEndOfFile()
            errorRead.signal()
        }
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        timer.cancel()
        errorRead.wait()
        let text = String(decoding: outputData, as: UTF8.self)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let tail = String(decoding: errorData, as: UTF8.self).split(separator: "\n").suffix(8).joined(separator: "\n")
            let reason = process.terminationReason == .uncaughtSignal ? "was stopped after \(seconds) s or by a signal" : "exited with status \(process.terminationStatus)"
            throw CommandFailure("mpirun -np \(ranks) \(reason):\n\(tail)")
        }
        return text
    }
}
