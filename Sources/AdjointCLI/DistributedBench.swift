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
            abstract: "Time the all-reduce (MPI_Allreduce, checked, reproducible) or a data-parallel MLP step (overlap measured).",
            discussion: """
                allreduce: the all-reduce of a float32 buffer of --megabytes: MPI_Allreduce itself, \
                Adjoint's checked all-reduce and the reproducible sum. ddp: one step of a 784-512-512-10 \
                float32 MLP on --batch examples per rank: the gradient alone (no communication), \
                DataParallel with the buckets' all-reduces after the backward pass, and with them \
                overlapped with it; the time hidden is the difference of the last two. Every variant \
                runs --repeats times after one warm-up, interleaved so that a slow moment of the \
                machine falls on all of them; rank 0 prints the median and fastest time of each \
                (the slowest rank's, per repetition).
                """
        )

        public enum Workload: String, ExpressibleByArgument, CaseIterable { case allreduce, ddp }

        @Option(name: .long, help: "What to time: allreduce or ddp.")
        var workload: Workload = .allreduce

        @Option(name: .long, help: "ddp: examples per rank per step (1...65536).")
        var batch = 256

        @Option(name: .long, help: "ddp: bucket size in KiB (1...1048576).")
        var bucketKib = 1024

        @Option(name: .long, help: "Buffer size in MiB of float32 (0.001...256; the reproducible sum holds 6.5 times as much besides).")
        var megabytes = 25.0

        @Option(name: .long, help: "Timed repetitions of each variant (1...10000).")
        var repeats = 10

        @Option(name: .long, help: "Seconds a collective may take before it is an error (positive).")
        var timeout = 600.0

        public init() {}

        public func validate() throws {
            guard megabytes.isFinite, megabytes >= 0.001, megabytes <= 256 else {
                throw ValidationError("--megabytes must be in 0.001...256, got \(megabytes)")
            }
            guard (1...1_048_576).contains(bucketKib) else { throw ValidationError("--bucket-kib must be in 1...1048576, got \(bucketKib)") }
            guard (1...65_536).contains(batch) else { throw ValidationError("--batch must be in 1...65536, got \(batch)") }
            guard (1...10_000).contains(repeats) else { throw ValidationError("--repeats must be in 1...10000, got \(repeats)") }
            guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
                throw ValidationError("--timeout must be positive and at most 86400 seconds, got \(timeout)")
            }
        }

        public func run() throws {
            let communicator = try Communicator.world(timeout: timeout)
            if workload == .ddp { return try dataParallel(communicator) }
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
            let slowest = try time(variants, communicator)
            guard communicator.rank == 0 else { return }
            let medians = slowest.map { $0.sorted()[$0.count / 2] }
            let rows = variants.indices.map { index -> [String] in
                [variants[index].name, String(format: "%.2f", medians[index] * 1e3), String(format: "%.2f", slowest[index].min()! * 1e3),
                 String(format: "%.2f×", medians[index] / medians[0]), String(format: "%.0f", Double(count * 4) / medians[index] / 1e6)]
            }
            print("all-reduce of \(count) float32 (\(String(format: "%.1f", Double(count * 4) / 1_048_576)) MiB) on \(communicator.size) ranks, \(repeats) repeats; times include a barrier")
            print(TextTable.render(header: ["variant", "median ms", "fastest ms", "vs MPI", "MB/s"], rows: rows))
        }
    
        /// Runs every variant `repeats` times after a warm-up, interleaved; per variant, the slowest
        /// rank's seconds for each repetition (a collective ends when the last rank does).
        private func time(_ variants: [(name: String, run: () throws -> Void)], _ communicator: Communicator) throws -> [[Double]] {
            var times = Array(repeating: [Double](), count: variants.count)
            for round in 0...repeats {
                for (index, variant) in variants.enumerated() {
                    let start = DispatchTime.now().uptimeNanoseconds
                    try variant.run()
                    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                    if round > 0 { times[index].append(seconds) }
                }
            }
            return try times.map { try communicator.allReduce(Tensor($0), .max).doubles }
        }

        /// A 784-512-512-10 MLP step: gradient alone, DataParallel without and with overlap.
        private func dataParallel(_ communicator: Communicator) throws {
            let key = RandomKey(seed: 3)
            let sizes = [784, 512, 512, 10]
            var model: [Tensor] = []
            for layer in 0..<3 {
                let bound = (6.0 / Double(sizes[layer] + sizes[layer + 1])).squareRoot()
                model.append(try Tensor.uniform([sizes[layer], sizes[layer + 1]], key: key.fold(in: UInt64(layer)), low: -bound, high: bound, dtype: .float32))
                model.append(try Tensor.zeros([sizes[layer + 1]], dtype: .float32))
            }
            model = try communicator.broadcast(parameters: model)
            let x = try Tensor.normal([batch, 784], key: key.fold(in: 10).fold(in: UInt64(communicator.rank)), dtype: .float32)
            let labels = try Tensor.uniform([batch], key: key.fold(in: 11).fold(in: UInt64(communicator.rank)), low: 0, high: 10).cast(to: .int64)
            func loss(_ p: [Tensor]) throws -> Tensor {
                let h1 = try (x.matmul(p[0]) + p[1]).relu(), h2 = try (h1.matmul(p[2]) + p[3]).relu()
                return try (h2.matmul(p[4]) + p[5]).crossEntropy(labels: labels).mean()
            }
            let after = try DataParallel(communicator: communicator, parameters: model, bucketBytes: bucketKib * 1024, overlap: false)
            let overlapped = try DataParallel(communicator: communicator, parameters: model, bucketBytes: bucketKib * 1024, overlap: true)
            let variants: [(name: String, run: () throws -> Void)] = [
                ("gradient alone (no communication)", { try communicator.barrier(); _ = try valueWithGradient(at: model, of: loss) }),
                ("DataParallel, all-reduce after backward", { try communicator.barrier(); _ = try after.synchronize(model, loss: loss) }),
                ("DataParallel, overlapped", { try communicator.barrier(); _ = try overlapped.synchronize(model, loss: loss) }),
            ]
            let slowest = try time(variants, communicator)
            guard communicator.rank == 0 else { return }
            let medians = slowest.map { $0.sorted()[$0.count / 2] }
            print("MLP 784-512-512-10 float32, batch \(batch) per rank, \(communicator.size) ranks, \(after.buckets.count) buckets of ≤ \(bucketKib) KiB (\(String(format: "%.1f", Double(overlapped.statistics.bytes) / 1_048_576)) MiB), \(repeats) repeats; times include a barrier")
            print(TextTable.render(header: ["variant", "median ms", "fastest ms"], rows: variants.indices.map {
                [variants[$0].name, String(format: "%.2f", medians[$0] * 1e3), String(format: "%.2f", slowest[$0].min()! * 1e3)]
            }))
            let communication = medians[1] - medians[0], hidden = medians[1] - medians[2]
            print(String(format: "communication after backward %.2f ms; hidden by overlap %.2f ms (%.0f%%)", communication * 1e3, hidden * 1e3,
                         communication > 0 ? 100 * hidden / communication : 0))
        }
    }
}
