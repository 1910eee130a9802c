import AdjointTensor

/// The arrays a finished tape leaves to the next tape on its thread.
///
/// A tape's node and input lists, and a backward pass's cotangent lists, reach megabytes for a
/// long chain of small operations. Allocated anew for every tape, they come from fresh pages that
/// the allocator hands back to the system when they are freed, and the page faults of the next
/// tape cost more than recording it (measured on the scalar chain: half the wall-clock time).
/// So a released tape's emptied arrays, capacity kept, wait here for the next tape on the thread
/// — one set per thread, and none larger than ``maxKeptBytes``.
final class TapeMemory {
    /// Arrays larger than this are freed rather than kept.
    static let maxKeptBytes = 256 << 20

    var nodes: [Tape.Node] = []
    var inputs: [Tape.Input] = []
    var cotangents: Cotangents?

    /// The calling thread's spare arrays.
    static var current: TapeMemory { memory.value }
    private static let memory = ThreadLocal { TapeMemory() }

    /// Takes the spare node and input lists (empty, with their capacity) for a new tape.
    func takeLists() -> ([Tape.Node], [Tape.Input]) {
        defer { (nodes, inputs) = ([], []) }
        return (nodes, inputs)
    }

    /// Takes the spare cotangent lists for a backward pass over `count` values.
    func takeCotangents(count: Int) -> Cotangents {
        defer { cotangents = nil }
        return Cotangents(count: count, reusing: cotangents)
    }

    /// Keeps a finished backward pass's cotangent lists, emptied, unless they are too large or
    /// smaller than those already kept.
    func keep(_ finished: inout Cotangents) {
        finished.clear()
        guard finished.capacityBytes <= Self.maxKeptBytes, finished.capacityBytes >= cotangents?.capacityBytes ?? 0 else { return }
        cotangents = finished
    }

    /// Keeps a finished tape's lists, emptied, unless they are too large or smaller than those
    /// already kept.
    func keep(nodes finishedNodes: inout [Tape.Node], inputs finishedInputs: inout [Tape.Input]) {
        finishedNodes.removeAll(keepingCapacity: true)
        finishedInputs.removeAll(keepingCapacity: true)
        let bytes = finishedNodes.capacity * MemoryLayout<Tape.Node>.stride + finishedInputs.capacity * MemoryLayout<Tape.Input>.stride
        guard bytes <= Self.maxKeptBytes, finishedNodes.capacity >= nodes.capacity else { return }
        swap(&nodes, &finishedNodes)
        swap(&inputs, &finishedInputs)
    }
}
