import Adjoint
import AdjointDistributed
import ArgumentParser
import CMPI
import Foundation

extension DistributedCommand {
    /// `adjoint distributed bench`: all-reduce throughput of this job, Adjoint's against MPI's own.
    public struct Bench: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "bench",
            abstract: "Time the all-reduce of a float32 buffer: MPI_Allreduce itself, Adjoint's checked all-reduce, the reproducible sum.",
            discussion: """
                Every variant runs --repeats times after one warm-up, interleaved (MPI, checked, \
                reproducible, MPI, …) so that a slow moment of the machine falls on all of them; rank 0 \
                prints the median and fastest wall time of each, its ratio to MPI_Allreduce's median, \
                and the algorithm bandwidth (bytes / median time). The buffer holds normal numbers \
                that differ per rank.
                """
        )

        @Option(name: .long, help: "Buffer size in MiB of float32 (0.001...1024).")
        var megabytes = 25.0

        @Option(name: .long, help: "Timed repetitions of each variant (1...10000).")
        var repeats = 10

        @Option(name: .long, help: "Seconds a collective may take before it is an error (positive).")
        var timeout = 600.0

        public init() {}

        public func validate() throws {
            guard megabytes.isFinite, megabytes >= 0.001, megabytes <= 1024 else {
                throw ValidationError("--megabytes must be in 0.001...1024, got \(megabytes)")
            }
            guard (1...10_000).contains(repeats) else { throw ValidationError("--repeats must be in 1...10000, got \(repeats)") }
            guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
                throw ValidationError("--timeout must be positive and at most 86400 seconds, got \(timeout)")
            }
        }

        public func run() throws {
            let communicator = try Communicator.world(timeout: timeout)
            let count = max(1, Int(megabytes * 1_048_576 / 4))
            let buffer = try Tensor.normal([count], key: RandomKey(seed: 5).fold(in: UInt64(communicator.rank)), dtype: .float32)
            let received = Tensor(uninitialized: [count], dtype: .float32)
            let variants: [(name: String, run: () throws -> Void)] = [
                ("MPI_Allreduce (blocking, unchecked)", {
                    try communicator.barrier()
                    let code = MPI_Allreduce(buffer.rawPointer, received.rawPointer, Int32(count), adjoint_mpi_float(), adjoint_mpi_sum(), adjoint_mpi_comm_world())
                    guard code == MPI_SUCCESS else { throw DistributedError.mpi(function: "MPI_Allreduce", code: code, message: "") }
                }),
                ("allReduce (checked, with deadline)", { try communicator.barrier(); _ = try communicator.allReduce(buffer) }),
                ("reproducibleSum", { try communicator.barrier(); _ = try communicator.reproducibleSum([buffer], shape: [count], dtype: .float32) }),
            ]
            var times = Array(repeating: [Double](), count: variants.count)
            for round in 0...repeats {
                for (index, variant) in variants.enumerated() {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try variant.run()
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if round > 0 { times[index].append(seconds) }
                }
            }
            // Rank 0 reports the slowest rank's time for each repetition (a collective ends when the last rank does).
            let slowest = try times.map { try communicator.allReduce(Tensor($0), .max).doubles }
            guard communicator.rank == 0 else { return }
            let medians = slowest.map { $0.sorted()[$0.count / 2] }
            let rows = variants.indices.map { index -> [String] in
                [variants[index].name, String(format: "%.2f", medians[index] * 1e3), String(format: "%.2f", slowest[index].min()! * 1e3),
                 String(format: "%.2f×", medians[index] / medians[0]), String(format: "%.0f", Double(count * 4) / medians[index] / 1e6)]
            }
            print("all-reduce of \(count) float32 (\(String(format: "%.1f", Double(count * 4) / 1_048_576)) MiB) on \(communicator.size) ranks, \(repeats) repeats; times include a barrier")
            print(TextTable.render(header: ["variant", "median ms", "fastest ms", "vs MPI", "MB/s"], rows: rows))
        }
    }
}
