import Adjoint
import AdjointDistributed
import AdjointExamples
import ArgumentParser
import Foundation

/// `adjoint distributed`: the MPI side of Adjoint, run under `mpirun`.
public struct DistributedCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "distributed",
        abstract: "Check and measure the MPI setup: run under mpirun (e.g. mpirun -np 4 adjoint distributed check).",
        subcommands: [Check.self, Bench.self]
    )

    public init() {}

    /// `adjoint distributed check`: every collective on every dtype, with known answers.
    public struct Check: ParsableCommand {
        public static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Run every collective with known answers on every rank; rank 0 prints a table.",
            discussion: """
                Checks barrier, broadcast from every root, all-reduce (sum, max, min), all-gather and \
                reduce-scatter on float32, float64, int32 and int64; the reproducible sum against the \
                same contributions summed in one process (bitwise); and that ranks calling a collective \
                with different shapes get a typed error rather than a hang. Exits with status 1 when \
                a check fails. Without mpirun it runs as a job of one rank.
                """
        )

        @Option(name: .long, help: "Seconds a collective may take before it is an error (positive).")
        var timeout = 60.0

        public init() {}

        public func validate() throws {
            guard timeout.isFinite, timeout > 0, timeout <= 86_400 else {
                throw ValidationError("--timeout must be positive and at most 86400 seconds, got \(timeout)")
            }
        }

        public func run() throws {
            let communicator = try Communicator.world(timeout: timeout)
            let results = try DistributedSelfCheck.run(on: communicator)
            if communicator.rank == 0 {
                print(TextTable.render(header: ["check", "result"], rows: results.map { [$0.name, $0.failure ?? "ok"] }))
                let failed = results.filter { $0.failure != nil }.count
                print(failed == 0 ? "all \(results.count) checks passed on \(communicator.size) ranks"
                                  : "\(failed) of \(results.count) checks FAILED on \(communicator.size) ranks")
            }
            if results.contains(where: { $0.failure != nil }) { throw ExitCode(1) }
        }
    }
}

/// The checks of `adjoint distributed check`: collectives on known inputs, compared on every rank.
enum DistributedSelfCheck {
    struct Result { var name: String; var failure: String? }

    static func run(on communicator: Communicator) throws -> [Result] {
        var results: [Result] = []
        func check(_ name: String, _ body: () throws -> String?) {
            do { results.append(Result(name: name, failure: try body())) } catch { results.append(Result(name: name, failure: "\(error)")) }
        }
        let rank = Double(communicator.rank), size = communicator.size, n = Double(size)
        check("barrier") { try communicator.barrier(); return nil }
        for dtype in [DType.float32, .float64, .int32, .int64] {
            check("broadcast \(dtype) from every root") {
                for root in 0..<size {
                    let received = try communicator.broadcast(try Tensor([rank * 10 + 1, -rank, 7], shape: [3]).cast(to: dtype), root: root)
                    if received.doubles != [Double(root) * 10 + 1, -Double(root), 7] { return "root \(root): got \(received.doubles)" }
                }
                return nil
            }
            let mine = try Tensor([rank + 1, -(rank + 1), rank * 3], shape: [3]).cast(to: dtype)
            let expected: [(Communicator.ReductionOperator, [Double])] = [
                (.sum, [n * (n + 1) / 2, -n * (n + 1) / 2, 3 * n * (n - 1) / 2]), (.max, [n, -1, 3 * (n - 1)]), (.min, [1, -n, 0]),
            ]
            for (op, answer) in expected {
                check("allReduce \(op) \(dtype)") {
                    let got = try communicator.allReduce(mine, op).doubles
                    return got == answer ? nil : "got \(got), expected \(answer)"
                }
            }
            check("allGather \(dtype)") {
                let got = try communicator.allGather(mine)
                var answer: [Double] = []
                for r in 0..<size { answer += [Double(r + 1), -Double(r + 1), Double(r * 3)] }
                return got.shape == [size, 3] && got.doubles == answer ? nil : "got \(got.shape) \(got.doubles)"
            }
            check("reduceScatter sum \(dtype)") {
                let rows = try Tensor((0..<(2 * size)).map { Double($0) + rank }, shape: [2 * size]).cast(to: dtype)
                let got = try communicator.reduceScatter(rows, .sum).doubles
                let r = communicator.rank
                let answer = [2 * r, 2 * r + 1].map { n * Double($0) + n * (n - 1) / 2 }
                return got == answer ? nil : "got \(got), expected \(answer)"
            }
        }
        for dtype in [DType.float32, .float64] {
            check("reproducibleSum \(dtype) = one-process sum, bitwise") {
                // 37 contributions spread over 60 orders of magnitude, shared out by contiguous shards.
                let all = try (0..<37).map { example -> Tensor in
                    let key = RandomKey(seed: 11).fold(in: UInt64(example))
                    let scale = try Tensor.uniform([257], key: key.fold(in: 1), low: -30, high: 30)
                    return try (Tensor.normal([257], key: key.fold(in: 2)) * Tensor(2.0).pow(scale)).cast(to: dtype)
                }
                let got = try communicator.reproducibleSum(Array(communicator.shard(all)), shape: [257], dtype: dtype)
                let answer = try ReproducibleSum.sum(all)
                return sameBits(got, answer) ? nil : "differs from the one-process sum"
            }
        }
        check("mismatched shapes are a typed error") {
            guard size > 1 else { return nil }
            do {
                _ = try communicator.allReduce(try Tensor.zeros([communicator.rank + 1], dtype: .float32))
                return "no error"
            } catch DistributedError.mismatch(_, let field, let values) {
                return field == "shape" && values == (1...size).map { "[\($0)]" } ? nil : "mismatch on \(field) \(values)"
            }
        }
        return results
    }

    static func sameBits(_ a: Tensor, _ b: Tensor) -> Bool {
        a.dtype == b.dtype && a.shape == b.shape && memcmp(a.rawPointer, b.rawPointer, a.elementCount * a.dtype.byteSize) == 0
    }
}
