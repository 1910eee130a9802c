// Failure scenarios of AdjointDistributed, run under mpirun by AdjointDistributedTests: each rank
// prints `rank R: <outcome>` lines that the tests check.
import AdjointAutodiff
import AdjointDistributed
import AdjointTensor
import Foundation

func say(_ rank: Int, _ text: String) {
    FileHandle.standardOutput.write(Data("rank \(rank): \(text)\n".utf8))
}

let scenario = CommandLine.arguments.dropFirst().first ?? ""
let communicator = try Communicator.world(timeout: scenario == "timeout" ? 2 : 60)
let rank = communicator.rank
let vector = try Tensor.zeros([4], dtype: .float32)

/// Runs `body`, prints its error (or "no error"), then checks the communicator still works.
func expectError(_ body: () throws -> Void) throws {
    do { try body(); say(rank, "no error") } catch { say(rank, "\(error)") }
    try communicator.barrier()
    say(rank, "barrier after the error: ok")
}

switch scenario {
case "timeout":
    // Rank 0 waits in a collective the others never call.
    if rank == 0 {
        do { _ = try communicator.allReduce(vector); say(rank, "no error") } catch { say(rank, "\(error)") }
        do { try communicator.barrier() } catch { say(rank, "then: \(error)") }
        exit(3)
    }
    sleep(30)
case "different-collectives":
    try expectError { if rank == 0 { _ = try communicator.allReduce(vector) } else { try communicator.barrier() } }
case "different-roots":
    try expectError { _ = try communicator.broadcast(vector, root: rank) }
case "different-dtypes":
    try expectError { _ = try communicator.allReduce(rank == 1 ? try vector.cast(to: .float64) : vector) }
case "invalid-contributions":
    let contributions = [rank == 1 ? try Tensor.zeros([5], dtype: .float32) : vector]
    try expectError { _ = try communicator.reproducibleSum(contributions, shape: [4], dtype: .float32) }
case "data-parallel":
    // A two-layer model; rank r's micro-batches are its own. The averaged gradient must equal the
    // mean of every rank's gradients computed here in one process.
    let model = [try Tensor.normal([64, 300], key: RandomKey(seed: 1)), try Tensor.normal([300], key: RandomKey(seed: 2)),
                 try Tensor.normal([300, 8], key: RandomKey(seed: 3))]
    func loss(_ p: [Tensor], rank: Int, micro: Int) throws -> Tensor {
        let x = try Tensor.normal([5, 64], key: RandomKey(seed: 100).fold(in: UInt64(rank)).fold(in: UInt64(micro)))
        return try ((x.matmul(p[0]) + p[1]).tanh().matmul(p[2])).pow(Tensor(2.0)).mean()
    }
    let parallel = try DataParallel(communicator: communicator, parameters: model, bucketBytes: 64 * 1024)
    try parallel.accumulate(model) { try loss($0, rank: rank, micro: 0) }
    let (value, gradient) = try parallel.synchronize(model) { try loss($0, rank: rank, micro: 1) }
    var expected = try model.map { try $0.zerosLike() }
    var expectedLoss = 0.0
    for r in 0..<communicator.size {
        for micro in 0..<2 {
            let (v, g) = try valueWithGradient(at: model) { try loss($0, rank: r, micro: micro) }
            expected = try zip(expected, g).map { try $0 + $1 }
            expectedLoss += try v.item()
        }
    }
    let n = Double(2 * communicator.size)
    let worst = try zip(gradient, expected).map { try (($0 - $1 / Tensor(n)).abs().max()).item() }.max()!
    say(rank, "buckets \(parallel.buckets.count), started during backward \(parallel.statistics.bucketsStartedDuringBackward)")
    say(rank, worst < 1e-12 && abs(value - expectedLoss / n) < 1e-12 ? "gradient ok" : "gradient off by \(worst), loss \(value) vs \(expectedLoss / n)")
case "invalid-arguments":
    // Refused before any rank waits: every rank gets the same error and the communicator works on.
    let cases: [(String, () throws -> Void)] = [
        ("root", { _ = try communicator.broadcast(vector, root: communicator.size) }),
        ("negative root", { _ = try communicator.broadcast(vector, root: -1) }),
        ("indivisible", { _ = try communicator.reduceScatter(try Tensor.zeros([communicator.size + 1], dtype: .float32)) }),
        ("scalar", { _ = try communicator.reduceScatter(try Tensor(1.0, dtype: .float32)) }),
        ("f16", { _ = try communicator.allReduce(try vector.cast(to: .float16)) }),
        ("bool", { _ = try communicator.allGather(try vector.cast(to: .bool)) }),
        ("int sum", { _ = try communicator.reproducibleSum([], shape: [4], dtype: .int64) }),
        ("bucket", { _ = try DataParallel(communicator: communicator, parameters: [vector], bucketBytes: 10) }),
        ("int parameters", { _ = try DataParallel(communicator: communicator, parameters: [try vector.cast(to: .int64)]) }),
        ("timeout", { try communicator.setTimeout(-1) }),
        ("empty batch", { _ = try communicator.meanGradient(of: [vector], batch: []) { p, _ in try p[0].sum() } }),
    ]
    for (name, body) in cases {
        do { try body(); say(rank, "\(name): no error") } catch { say(rank, "\(name): \(error)") }
    }
    try communicator.barrier()
    say(rank, "barrier after the errors: ok")
case "data-parallel-mismatch":
    let model = [try Tensor.zeros([rank == 1 ? 3 : 4])]
    try expectError { _ = try DataParallel(communicator: communicator, parameters: model) }
default:
    say(rank, "unknown scenario '\(scenario)'")
    exit(2)
}
