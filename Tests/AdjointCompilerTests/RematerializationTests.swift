@testable import AdjointCompiler
import AdjointIR
import Testing

/// `Graph.rematerializing`: which values a backward part computes again instead of reading them
/// from the forward part, on hand-built graphs.
@Suite("Rematerialization across a forward/backward boundary")
struct RematerializationTests {
    /// Forward (nodes 0–5) over arguments `s` (%0) and `w` (%1), backward (nodes 6–9) over the
    /// cotangent %8:
    /// - %2 = tanh(s), %3 = %2·%2: cheap, from an argument → computed again;
    /// - %4 = s·w (matmul): not cheap, the backward reads it → kept; %5 = exp(%4): cheap, from a
    ///   value kept anyway → computed again;
    /// - %6 = s·s (matmul), which the backward does not read, %7 = −%6: computing %7 again would
    ///   keep %6 instead → %7 kept.
    static func graph(side: Int, outputs extra: [Int] = [], inPlace: Bool = false) -> Graph {
        let type = ValueType(dtype: .float64, shape: [side, side])
        func node(_ op: OpCode, _ inputs: [Int], _ output: Int) -> Node {
            Node(op: op, inputs: inputs.map(ValueID.init), outputs: [ValueID(output)], outputTypes: [type])
        }
        let nodes = [
            node(.tanh, [0], 2), node(.mul, [2, 2], 3), node(.matmul, [0, 1], 4), node(.exp, [4], 5),
            node(inPlace ? .addInPlace : .matmul, [0, 0], 6), node(.neg, [6], 7),
            node(.mul, [8, 3], 9), node(.mul, [9, 4], 10), node(.mul, [10, 5], 11), node(.mul, [11, 7], 12),
        ]
        let inputs = [0, 1, 8].map { GraphInput(id: ValueID($0), type: type, role: .argument) }
        return Graph(inputs: inputs, nodes: nodes, outputs: ([12] + extra).map(ValueID.init))
    }

    static let available: Set<ValueID> = [ValueID(0), ValueID(1), ValueID(8)]

    /// What the backward nodes read, by node.
    static func backwardReads(_ result: (graph: Graph, index: [Int], backward: [Int])) -> [[ValueID]] {
        result.backward.suffix(4).map { result.graph.nodes[$0].inputs }
    }

    @Test("cheap values from arguments or from values kept anyway are computed again; copies come first, in dependency order; the rest is read as before")
    func choices() throws {
        let g = Self.graph(side: 64)   // 32 KiB values
        let result = g.rematerializing(forward: Array(0..<6), available: Self.available, backward: Array(6..<10))
        try result.graph.verify()
        let copies = result.backward.dropLast(4).map { result.graph.nodes[$0] }
        #expect(copies.map(\.op) == [.tanh, .mul, .exp])
        // Laid out as forward, copies, backward: node i of the backward moves by the three copies.
        #expect(result.backward == Array(6..<13) && result.index == Array(0..<6) + Array(9..<13))
        // tanh(s) from s; its square from the copy; exp from the matmul kept anyway.
        #expect(copies[0].inputs == [ValueID(0)] && copies[1].inputs == [copies[0].outputs[0], copies[0].outputs[0]] && copies[2].inputs == [ValueID(4)])
        let reads = Self.backwardReads(result)
        #expect(reads[0] == [ValueID(8), copies[1].outputs[0]])
        #expect(reads[1] == [ValueID(9), ValueID(4)])
        #expect(reads[2] == [ValueID(10), copies[2].outputs[0]])
        #expect(reads[3] == [ValueID(11), ValueID(7)])
        // Fresh value ids, above every id of the graph.
        #expect(copies.allSatisfy { $0.outputs[0].rawValue > 12 })
        // The forward nodes nothing reads any more are what the caller drops.
        #expect(!result.graph.nodesReachingOutputs.contains(1) && result.graph.nodesReachingOutputs.contains(2))
        #expect(result.graph.outputs == g.outputs && result.graph.inputs == g.inputs)
    }

    @Test("small values, graph outputs, a small budget and graphs with in-place operators keep what they had")
    func limits() throws {
        let forward = Array(0..<6), backward = Array(6..<10)
        // 2×2 values: below 16 KiB.
        let small = Self.graph(side: 2)
        let unchanged = small.rematerializing(forward: forward, available: Self.available, backward: backward)
        #expect(unchanged.graph == small && unchanged.index == Array(0..<10) && unchanged.backward == backward)
        #expect(small.rematerializing(forward: forward, available: Self.available, backward: backward, minimumBytes: 32).backward.count == 7)
        // %3 is an output: kept to the end anyway, so read from the forward; %5 is still copied.
        let output = Self.graph(side: 64, outputs: [3])
        let kept = output.rematerializing(forward: forward, available: Self.available, backward: backward)
        #expect(kept.backward.dropLast(4).map { kept.graph.nodes[$0].op } == [.exp] && Self.backwardReads(kept)[0] == [ValueID(8), ValueID(3)])
        // A budget of one operator: %3 needs two.
        let g = Self.graph(side: 64)
        let tight = g.rematerializing(forward: forward, available: Self.available, backward: backward, budget: 1)
        #expect(tight.backward.dropLast(4).map { tight.graph.nodes[$0].op } == [.exp] && Self.backwardReads(tight)[0] == [ValueID(8), ValueID(3)])
        // Without `s` available, tanh(s) cannot be computed again.
        let unavailable = g.rematerializing(forward: forward, available: [ValueID(1), ValueID(8)], backward: backward)
        #expect(unavailable.backward.dropLast(4).map { unavailable.graph.nodes[$0].op } == [.exp])
        let mutating = Self.graph(side: 64, inPlace: true)
        #expect(mutating.rematerializing(forward: forward, available: Self.available, backward: backward).graph == mutating)
    }

    @Test("small nodes no large node reads move to the end of an order, keeping every node after what it reads")
    func deferringSmallNodes() throws {
        let large = ValueType(dtype: .float64, shape: [8192]), scalar = ValueType(dtype: .float64, shape: [1])
        func node(_ op: OpCode, _ inputs: [Int], _ output: Int, _ type: ValueType) -> Node {
            Node(op: op, attributes: op == .sum ? .reduction(axes: [0], keepDims: true) : .none,
                 inputs: inputs.map(ValueID.init), outputs: [ValueID(output)], outputTypes: [type])
        }
        // 0: a·a (large), 1: sum → s, 2: s·s (small), 3: a + a (large), 4: s·t (small, t an input),
        // 5: a·t2 where t2 = s·s is read by a large node: node 2 must stay before node 5.
        let nodes = [
            node(.mul, [0, 0], 2, large), node(.sum, [2], 3, scalar), node(.mul, [3, 3], 4, scalar), node(.add, [0, 0], 5, large),
            node(.mul, [3, 1], 6, scalar), node(.mul, [0, 4], 7, large),
        ]
        let g = Graph(inputs: [GraphInput(id: ValueID(0), type: large, role: .argument), GraphInput(id: ValueID(1), type: scalar, role: .argument)],
                      nodes: nodes, outputs: [ValueID(5), ValueID(6), ValueID(7)])
        // Only node 4 is small and read by no large node (node 2 is read by node 5).
        #expect(g.deferringSmallNodes(Array(0..<6)) == [0, 1, 2, 3, 5, 4])
        // Without node 5, node 2 moves too, before node 4 (their order kept).
        #expect(g.deferringSmallNodes([0, 1, 2, 3, 4]) == [0, 1, 3, 2, 4])
        // The reduction reads a large value: it stays.
        #expect(g.deferringSmallNodes([0, 1, 3]) == [0, 1, 3])
    }
}
