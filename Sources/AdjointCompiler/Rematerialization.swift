import AdjointIR

extension Graph {
    /// A program split at a boundary into a forward part and a backward part, with the backward
    /// **recomputing** large forward values instead of reading them across the boundary.
    ///
    /// A value the forward computes and the backward reads must be kept from one part to the
    /// other (a compiled step's record keeps it until its pullback runs: copied out and back, or a
    /// frame each). When such a value is cheap to compute again — elementwise operators, layout
    /// operators and constants, at most `budget` of them per value — from values the backward has
    /// anyway (`available`: the graph's inputs and what the part before the forward computed; or
    /// forward values the backward reads and that are kept regardless, because they are not cheap),
    /// the backward gets its own copy of those operators and reads the copy. The forward part no
    /// longer hands the value over; what nothing reads any more is dropped by the caller
    /// (``nodesReachingOutputs``).
    ///
    /// Recomputation runs the same operators on the same inputs, so results are bitwise those of
    /// reading the kept value. Values smaller than `minimumBytes` are kept (copying them costs
    /// less than computing them again), and so are the graph's outputs (kept to the end anyway).
    /// A graph with in-place or custom operators is returned as it is: recomputing after a
    /// mutation could read a changed value.
    ///
    /// Returns the graph, its nodes laid out as every node not in `backward` (in their order),
    /// the copies (in dependency order), then `backward`'s nodes (in its order) reading them — a
    /// graph in execution order, as the verifier wants it; `index` maps each node index of this
    /// graph to its index there, and `backward` lists the copies and the backward's nodes.
    package func rematerializing(forward: [Int], available: Set<ValueID>, backward: [Int],
                                 minimumBytes: Int = 16 << 10, budget: Int = 24) -> (graph: Graph, index: [Int], backward: [Int]) {
        let unchanged = (self, Array(nodes.indices), backward)
        guard !nodes.contains(where: { $0.op.family == .inPlace || $0.op.family == .custom }) else { return unchanged }
        var producer: [ValueID: Int] = [:]
        for index in forward { for v in nodes[index].outputs { producer[v] = index } }
        var crossing = Set<ValueID>()
        for index in backward { for v in nodes[index].inputs where producer[v] != nil { crossing.insert(v) } }
        let kept = Set(outputs)
        var type: [ValueID: ValueType] = [:]
        for input in inputs { type[input.id] = input.type }
        for node in nodes { for (v, t) in zip(node.outputs, node.outputTypes) { type[v] = t } }

        /// The forward nodes `value` is computed by, in dependency order, when they are all cheap
        /// and at most `budget`, reading only what the backward has; else `nil`.
        func tree(of value: ValueID) -> [Int]? {
            var order: [Int] = [], visited = Set<Int>()
            func visit(_ v: ValueID) -> Bool {
                guard let index = producer[v] else { return available.contains(v) }
                if visited.contains(index) { return true }
                let node = nodes[index]
                // Not cheap: a leaf, which the backward must read from the forward anyway.
                guard Self.isCheap(node.op) else { return v != value && crossing.contains(v) }
                visited.insert(index)
                guard visited.count <= budget, node.inputs.allSatisfy(visit) else { return false }
                order.append(index)
                return true
            }
            return visit(value) ? order : nil
        }

        var next = (inputs.map(\.id.rawValue) + nodes.flatMap { $0.outputs.map(\.rawValue) }).max().map { $0 + 1 } ?? 0
        var copy: [ValueID: ValueID] = [:]
        var copies: [Node] = [], chosen = Set<ValueID>()
        // In the order the backward first reads them, so that the copies come out in a stable order.
        var seen = Set<ValueID>()
        let candidates = backward.flatMap { nodes[$0].inputs }.filter { crossing.contains($0) && seen.insert($0).inserted }
        for value in candidates where !kept.contains(value) {
            guard let t = type[value], t.byteCount >= minimumBytes, let order = tree(of: value) else { continue }
            chosen.insert(value)
            for index in order where copy[nodes[index].outputs[0]] == nil {
                var node = nodes[index]
                node.inputs = node.inputs.map { copy[$0] ?? $0 }
                node.outputs = node.outputs.map { v in
                    let fresh = ValueID(next)
                    next += 1
                    copy[v] = fresh
                    return fresh
                }
                copies.append(node)
            }
        }
        guard !copies.isEmpty else { return unchanged }
        // Only the chosen values are read through their copies (a value inside a chosen value's
        // tree that the backward reads and that is not chosen itself — an output, a small value —
        // is still read from the forward).
        let isBackward = Set(backward)
        let before = nodes.indices.filter { !isBackward.contains($0) }
        var index = [Int](repeating: 0, count: nodes.count)
        var graph = self
        graph.nodes = before.map { nodes[$0] } + copies
        for (position, old) in before.enumerated() { index[old] = position }
        for old in backward {
            var node = nodes[old]
            node.inputs = node.inputs.map { chosen.contains($0) ? copy[$0]! : $0 }
            index[old] = graph.nodes.count
            graph.nodes.append(node)
        }
        return (graph, index, Array(before.count..<graph.nodes.count))
    }

    /// Operators the backward may compute again: per element, from inputs it has.
    static func isCheap(_ op: OpCode) -> Bool {
        switch op.family {
        case .unary, .binary, .comparison, .conversion: return true
        case .layout: return op == .reshape || op == .slice || op == .concat || op == .pad || op == .broadcastTo
        case .creation: return op == .full
        default: return false
        }
    }
}

extension Graph {
    /// `order` with its small nodes that no large node depends on moved to the end (in their
    /// order): a node is small when its result and every operand have at most `elements`
    /// elements (a parameter's gradient gathered from reductions, a scalar loss). Between two
    /// large elementwise nodes such a node ends a chunked run of native code (see
    /// `NativeCodeGenerator.chunkedSegments(splits:)`); after them it does not. Still an order
    /// in which every node comes after what it reads.
    package func deferringSmallNodes(_ order: [Int], elements: Int = 4096) -> [Int] {
        var type: [ValueID: ValueType] = [:]
        for input in inputs { type[input.id] = input.type }
        for node in nodes { for (v, t) in zip(node.outputs, node.outputTypes) { type[v] = t } }
        func small(_ v: ValueID) -> Bool { (type[v]?.elementCount ?? Int.max) <= elements }
        var deferred = Set<Int>(), readers: [ValueID: [Int]] = [:]
        for i in order { for v in nodes[i].inputs { readers[v, default: []].append(i) } }
        for i in order.reversed() {
            let node = nodes[i]
            guard node.outputs.allSatisfy(small), node.inputs.allSatisfy(small) else { continue }
            if node.outputs.allSatisfy({ (readers[$0] ?? []).allSatisfy(deferred.contains) }) { deferred.insert(i) }
        }
        return order.filter { !deferred.contains($0) } + order.filter(deferred.contains)
    }
}
