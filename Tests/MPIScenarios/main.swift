// Failure scenarios of AdjointDistributed, run under mpirun by AdjointDistributedTests: each rank
// prints `rank R: <outcome>` lines that the tests check.
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
default:
    say(rank, "unknown scenario '\(scenario)'")
    exit(2)
}
