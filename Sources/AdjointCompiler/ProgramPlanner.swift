import AdjointTensor
import AdjointIR

extension CompiledProgram {
    /// One operator of a compiled program (defined beside the kernels that run it).
    typealias Instruction = FrameInstruction
}

/// Turns a graph into a ``CompiledProgram``'s instructions and memory plan.
struct ProgramPlanner {
    typealias Operand = CompiledProgram.Operand
    typealias Instruction = CompiledProgram.Instruction

    struct Plan {
        var instructions: [Instruction] = []
        var tables: [Int] = []
        var fallbacks: [CompiledProgram.Fallback] = []
        var products: [Kernels.MatmulPlan] = []
        var instructionStart: [Int] = []
        /// Per instruction: the index of the last instruction that reads its result, `Int.max`
        /// when it is kept to the end (see ``NativeCodeGenerator/lastReaders``).
        var lastReaders: [Int] = []
        /// Per position `p` (and one past the last): the end of the frame bytes that the captures,
        /// the arguments and the values of positions before `p` occupy.
        var prefixEnds: [Int] = []
        var arguments: [Operand] = []
        var outputs: [Operand] = []
        /// Per boundary: the regions of values computed at a position before it and read at one
        /// after it (see ``CompiledProgram/carriedRegions(from:across:arguments:)``).
        var crossings: [Int: [CompiledProgram.Crossing]] = [:]
        var constantImage: [UInt8] = []
        var statistics = CompiledProgram.Statistics(operations: 0, aliases: 0, gathers: 0, foldedGathers: 0, fallbacks: 0, frameBytes: 0)
    }

    /// Where a value's memory comes from: its own region, or an element offset into another
    /// value's region.
    struct Placement { var root: ValueID; var elementOffset: Int }

    let graph: Graph
    let captures: [ValueID: Tensor]
    let order: [Int]
    /// Positions after which the program may be re-run (see ``CompiledProgram``).
    let boundaries: [Int]
    /// Whether the graph's outputs get bytes no other value ever had (past the end of the frame
    /// so far), so that no instruction outside their producer and readers touches them: native
    /// code can then write them straight into the result tensors (``CompiledProgram/boundRegions(_:chunked:generator:)``).
    var outputsApart = false

    static let op = "CompiledProgram"

    func plan() throws -> Plan {
        for b in boundaries where !(0...order.count).contains(b) {
            throw TensorError.invalidArgument(op: Self.op, detail: "boundary \(b) outside 0...\(order.count) (positions of the order)")
        }
        var types: [ValueID: ValueType] = [:]
        for input in graph.inputs { types[input.id] = input.type }
        for node in graph.nodes {
            guard node.outputs.count == 1, node.outputTypes.count == 1 else {
                throw TensorError.invalidArgument(op: Self.op, detail: "\(node.op.rawValue) has \(node.outputs.count) outputs; compiled programs take single-output operators")
            }
            types[node.outputs[0]] = node.outputTypes[0]
        }
        for input in graph.inputs where input.role == .capture {
            guard let value = captures[input.id] else { throw TensorError.invalidArgument(op: Self.op, detail: "no value for capture \(input.id)") }
            guard value.valueType == input.type else {
                throw TensorError.shapeMismatch(op: Self.op, detail: "capture \(input.id) is \(input.type) in the graph, its value is \(value.valueType)")
            }
        }

        // Which values exist when, and which layout operators are aliases.
        var defined = Set(graph.inputs.map(\.id))
        var placement: [ValueID: Placement] = [:]
        var definedAt: [ValueID: Int] = [:]
        var gathers: [Int: LayoutTable] = [:]   // position → the gather's table
        func place(_ id: ValueID) -> Placement { placement[id] ?? Placement(root: id, elementOffset: 0) }
        for (p, i) in order.enumerated() {
            guard graph.nodes.indices.contains(i) else { throw TensorError.invalidArgument(op: Self.op, detail: "order names node \(i) of \(graph.nodes.count)") }
            let node = graph.nodes[i]
            for v in node.inputs where !defined.contains(v) {
                throw TensorError.invalidArgument(op: Self.op, detail: "node \(i) (\(node.op.rawValue)) reads \(v) before it is computed in this order")
            }
            let out = node.outputs[0]
            defined.insert(out)
            definedAt[out] = p
            guard node.op.family == .layout, let type = types[out], type.dtype.isComputeFloat,
                  node.inputs.allSatisfy({ types[$0]?.dtype == type.dtype }),
                  let table = try? Self.layoutTable(node, inputs: node.inputs.map { types[$0]! }) else { continue }
            if let (k, start) = table.contiguousRun {
                let source = place(node.inputs[k])
                placement[out] = Placement(root: source.root, elementOffset: source.elementOffset + start)
            } else {
                gathers[p] = table
            }
        }
        for v in graph.outputs where !defined.contains(v) {
            throw TensorError.invalidArgument(op: Self.op, detail: "graph output \(v) is not computed by this order")
        }
        let folded = foldableGathers(gathers, types: types)

        // Lifetimes of regions (roots): to their last reader; outputs, arguments and values kept
        // across the boundary to the end.
        let forever = Int.max
        var lastUse: [ValueID: Int] = [:]
        var crossing: [Int: Set<ValueID>] = [:]   // boundary → roots computed before it, read after it
        let argumentIndex = Dictionary(uniqueKeysWithValues: graph.inputs.filter { $0.role == .argument }.enumerated().map { ($1.id, $0) })
        for (p, i) in order.enumerated() where placement[graph.nodes[i].outputs[0]] == nil && folded[graph.nodes[i].outputs[0]] == nil {
            lastUse[graph.nodes[i].outputs[0]] = p
        }
        for input in graph.inputs { lastUse[input.id] = forever }
        for (p, i) in order.enumerated() where folded[graph.nodes[i].outputs[0]] == nil {
            // A folded gather's inputs are read where its one reader runs.
            let reads = graph.nodes[i].inputs.flatMap { v in folded[v].map { graph.nodes[order[$0]].inputs } ?? [v] }
            for v in reads {
                let root = place(v).root
                let keep = boundaries.contains { p >= $0 && (definedAt[root] ?? -1) < $0 }
                // Arguments count as computed before every boundary (captures are in every frame).
                if let defined = definedAt[root] ?? (argumentIndex[root] != nil ? -1 : nil) {
                    for b in boundaries where defined < b && b <= p { crossing[b, default: []].insert(root) }
                }
                lastUse[root] = keep ? forever : Swift.max(lastUse[root] ?? p, p)
            }
        }
        for v in graph.outputs { lastUse[place(v).root] = forever }
        let accumulators = inPlaceAccumulations(placement: placement, folded: folded, gathers: gathers, lastUse: lastUse, types: types)

        // Memory: captures first (the constant image), then arguments, then values in order.
        var memory = RegionAllocator()
        var region: [ValueID: Int] = [:]
        var result = Plan()
        for input in graph.inputs where input.role == .capture {
            region[input.id] = memory.allocate(input.type.byteCount)
        }
        result.constantImage = [UInt8](repeating: 0, count: memory.end)
        for input in graph.inputs where input.role == .capture {
            let bytes = input.type.byteCount, start = region[input.id]!
            result.constantImage.withUnsafeMutableBytes { $0.baseAddress!.advanced(by: start).copyMemory(from: captures[input.id]!.rawPointer, byteCount: bytes) }
        }
        for input in graph.inputs where input.role == .argument {
            region[input.id] = memory.allocate(input.type.byteCount)
        }
        let outputRoots = Set(graph.outputs.map { place($0).root })
        var releases: [Int: [ValueID]] = [:]
        for (root, p) in lastUse where p != forever && region[root] == nil { releases[p, default: []].append(root) }
        func offset(_ v: ValueID) -> Int { region[place(v).root]! + place(v).elementOffset * types[v]!.dtype.byteSize }
        for (p, i) in order.enumerated() {
            result.prefixEnds.append(memory.end)
            let node = graph.nodes[i], out = node.outputs[0]
            // An accumulation in place takes over its accumulator's region (which dies here).
            let taken = accumulators[p].map { node.inputs[$0] }
            if let taken {
                region[out] = region[taken]!
            } else if placement[out] == nil && folded[out] == nil {
                region[out] = outputsApart && outputRoots.contains(out) ? memory.allocateAtEnd(types[out]!.byteCount)
                                                                         : memory.allocate(types[out]!.byteCount)
            }
            for root in releases[p] ?? [] where root != taken { memory.release(region[root]!, types[root]!.byteCount) }
        }
        result.prefixEnds.append(memory.end)
        for b in boundaries {
            result.crossings[b] = (crossing[b] ?? []).map {
                CompiledProgram.Crossing(offset: region[$0]!, bytes: types[$0]!.byteCount, computedAt: definedAt[$0] ?? -1, argument: argumentIndex[$0])
            }
                .sorted { $0.offset < $1.offset }
        }

        // Instructions.
        let uniform = Set(graph.inputs.filter { $0.role == .capture && Self.hasEqualElements(captures[$0.id]!) }.map(\.id))
        var lastReadPositions: [Int] = []
        result.arguments = graph.inputs.filter { $0.role == .argument }.map { Operand(offset: region[$0.id]!, type: $0.type) }
        result.outputs = graph.outputs.map { Operand(offset: offset($0), type: types[$0]!) }
        for (p, i) in order.enumerated() {
            result.instructionStart.append(result.instructions.count)
            let node = graph.nodes[i]
            let out = node.outputs[0]
            guard placement[out] == nil else { result.statistics.aliases += 1; continue }
            guard folded[out] == nil else { result.statistics.foldedGathers += 1; continue }
            // A folded gather operand is read through its table (absolute element offsets, -1 = 0).
            func gatherTable(_ position: Int) -> [Int] {
                let gather = graph.nodes[order[position]], size = types[gather.outputs[0]]!.dtype.byteSize
                let bases = gather.inputs.map { offset($0) / size }   // looked up once, not per element
                return gathers[position]!.map { entry in entry.map { bases[$0.input] + $0.index } ?? -1 }
            }
            let broadcasting = node.op.family == .binary && node.op != .multiplyAdd && types[out]!.dtype.isComputeFloat
            let operands = node.inputs.map { v -> Operand in
                // A capture of equal elements (a backward pass's seed broadcast to a shape) is read
                // as its first element, broadcast: one value, not an array, for native code.
                if broadcasting, uniform.contains(v) { return Operand(offset: offset(v), type: ValueType(dtype: types[v]!.dtype, shape: [])) }
                guard let position = folded[v] else { return Operand(offset: offset(v), type: types[v]!) }
                var operand = Operand(offset: -1, type: types[v]!)
                (operand.table, operand.compact) = Self.append([gatherTable(position)], to: &result.tables)
                return operand
            }
            let output = Operand(offset: offset(out), type: types[out]!)
            var instruction = select(node, operands, output, gather: gathers[p], into: &result)
            if let k = accumulators[p], instruction.kind == .binary, instruction.table >= 0 {
                instruction.accumulator = k
                result.statistics.accumulationsInPlace += 1
            }
            if instruction.kind == .gather { result.statistics.gathers += 1 }
            if instruction.kind == .fallback { result.statistics.fallbacks += 1 }
            instruction.y = output.offset
            result.instructions.append(instruction)
            lastReadPositions.append(lastUse[out] ?? forever)
            result.fallbacks.append(CompiledProgram.Fallback(op: node.op, attributes: node.attributes, inputs: operands, output: output))
        }
        result.instructionStart.append(result.instructions.count)
        // A reader's position → its instruction (a position without one, an alias, reads nothing
        // at run time: the next instruction's index is then a bound that is never too early).
        result.lastReaders = lastReadPositions.map { $0 == forever ? Int.max : result.instructionStart[$0] }
        result.statistics.operations = order.count
        result.statistics.frameBytes = memory.peak
        return result
    }

    /// Appends one index table per operand (each with an entry per element) to `tables`: as
    /// ``AffineTable``s when the tables are longer than native code unrolls into plain runs
    /// (``NativeCodeGenerator/elementLimit``) and every one of them is affine, else entry by
    /// entry. Returns where they start and whether they are compact.
    static func append(_ operands: [[Int]], to tables: inout [Int]) -> (start: Int, compact: Bool) {
        let start = tables.count
        if let n = operands.first?.count, n > NativeCodeGenerator.elementLimit {
            let rules = operands.compactMap { AffineTable.detect($0[...]) }
            if rules.count == operands.count {
                for rule in rules { tables += rule.encoded }
                return (start, true)
            }
        }
        for entries in operands { tables += entries }
        return (start, false)
    }

    /// Whether `value` has more than one element and all of them are bitwise equal.
    static func hasEqualElements(_ value: Tensor) -> Bool {
        let size = value.dtype.byteSize, count = value.elementCount
        guard count > 1 else { return false }
        let bytes = UnsafeRawBufferPointer(start: value.rawPointer, count: count * size)
        for k in 1..<count where !bytes[(k * size)..<(k * size + size)].elementsEqual(bytes[0..<size]) { return false }
        return true
    }

    /// The instruction for one operator.
    func select(_ node: Node, _ inputs: [Operand], _ output: Operand, gather table: LayoutTable?,
                into plan: inout Plan) -> Instruction {
        let type = output.type
        let float = type.dtype.isComputeFloat && inputs.allSatisfy { $0.type.dtype == type.dtype }
        var instruction = Instruction(kind: .fallback, op: node.op, float64: type.dtype == .float64)
        instruction.n = type.shape.reduce(1, *)
        guard float else { return instruction }
        if let table {
            instruction.kind = .gather
            let size = type.dtype.byteSize
            (instruction.table, instruction.compact) = Self.append([table.map { entry in entry.map { inputs[$0.input].offset / size + $0.index } ?? -1 }],
                                                                   to: &plan.tables)
            if case let .pad(_, _, value) = node.attributes { instruction.pad = value }
            return instruction
        }
        switch node.op.family {
        case .unary:
            instruction.kind = .unary
            instruction.a = inputs[0].offset
        case .binary:
            instruction.kind = node.op == .multiplyAdd ? .multiplyAdd : .binary
            for (k, input) in inputs.enumerated() {
                switch k { case 0: instruction.a = input.offset; case 1: instruction.b = input.offset; default: instruction.c = input.offset }
            }
            let counts = inputs.map { $0.type.elementCount }
            let n = instruction.n, gathered = inputs.contains { $0.table >= 0 }
            if !gathered {
                if counts.allSatisfy({ $0 == n }) { break }
                if node.op != .multiplyAdd, counts[0] == n, counts[1] == 1 { instruction.bScalar = true; break }
                if node.op != .multiplyAdd, counts[0] == 1, counts[1] == n { instruction.aScalar = true; break }
            }
            // Absolute element offsets per operand (through a folded gather's table, -1 = 0).
            let size = type.dtype.byteSize
            let tables = inputs.map { input -> [Int] in
                let broadcast = Self.broadcastTable(input.type.shape, to: type.shape)
                guard input.table >= 0 else { return broadcast.map { input.offset / size + $0 } }
                return plan.tables.withUnsafeBufferPointer { all in broadcast.map { input.entry($0, in: all) } }
            }
            (instruction.table, instruction.compact) = Self.append(tables, to: &plan.tables)
        case .reduction:
            guard [.sum, .mean, .max, .min, .logsumexp].contains(node.op), case let .reduction(rawAxes, _) = node.attributes,
                  let layout = Self.reductionLayout(inputs[0].type.shape, rawAxes),
                  layout.extent > 0 || node.op == .sum || node.op == .mean else { return instruction }
            instruction.kind = .reduce
            instruction.a = inputs[0].offset
            (instruction.outer, instruction.extent, instruction.inner) = layout
        case .linalg:
            guard case let .matmul(ta, tb) = node.attributes,
                  let product = try? Kernels.MatmulPlan(inputs[0].type.shape, inputs[1].type.shape, ta: ta, tb: tb),
                  product.shape == type.shape else { return instruction }
            instruction.kind = .matmul
            (instruction.a, instruction.b) = (inputs[0].offset, inputs[1].offset)
            instruction.product = plan.products.count
            plan.products.append(product)
        default:
            break
        }
        return instruction
    }

    /// Additions that can accumulate in place: position → the operand whose region the output
    /// takes. The pattern is the backward pass of slicing, `total = total + pad(gradient)`, where
    /// the padded operand is a folded gather reading zero for most elements. The accumulator must
    /// have the output's type, be its own region (not an alias, argument or capture), die at this
    /// position, not be read by the other operand, and hold no negative zero anywhere — then
    /// `total[k] + 0` is `total[k]` bit for bit, and native code writes only the elements the
    /// gather supplies (``Instruction/accumulator``).
    func inPlaceAccumulations(placement: [ValueID: Placement], folded: [ValueID: Int], gathers: [Int: LayoutTable],
                              lastUse: [ValueID: Int], types: [ValueID: ValueType]) -> [Int: Int] {
        let inputs = Set(graph.inputs.map(\.id))
        func root(_ v: ValueID) -> ValueID { placement[v]?.root ?? v }
        // Values none of whose elements is -0.0 (a conservative analysis: sums with a term that is
        // never -0.0, and operators whose results are never -0.0).
        var noNegativeZero = Set<ValueID>()
        /// Whether element `k` of operand `v` (read by a node of `n` output elements) is never -0.0.
        func elementIsNotNegativeZero(_ v: ValueID, _ k: Int, _ n: Int) -> Bool {
            guard let position = folded[v] else { return noNegativeZero.contains(v) }
            guard types[v]!.elementCount == n else { return false }
            guard let entry = gathers[position]![k] else { return true }   // padding: +0
            return noNegativeZero.contains(graph.nodes[order[position]].inputs[entry.input])
        }
        var result: [Int: Int] = [:]
        for (p, i) in order.enumerated() {
            let node = graph.nodes[i], out = node.outputs[0]
            guard let type = types[out], type.dtype.isComputeFloat else { continue }
            if let source = placement[out], noNegativeZero.contains(source.root) { noNegativeZero.insert(out) }
            switch node.op {
            case .exp, .sigmoid, .softplus, .abs, .relu:
                noNegativeZero.insert(out)
            case .add where node.inputs.count == 2 && node.inputs.allSatisfy({ types[$0]?.dtype == type.dtype }):
                let (a, b) = (node.inputs[0], node.inputs[1]), n = type.elementCount
                if noNegativeZero.contains(a) || noNegativeZero.contains(b)
                    || (0..<n).allSatisfy({ elementIsNotNegativeZero(a, $0, n) || elementIsNotNegativeZero(b, $0, n) }) {
                    noNegativeZero.insert(out)
                }
                guard placement[out] == nil, folded[out] == nil else { continue }
                for (k, total) in [a, b].enumerated() {
                    let other = [a, b][1 - k]
                    guard folded[total] == nil, let gather = folded[other], placement[total] == nil, !inputs.contains(total),
                          types[total] == type, types[other] == type, lastUse[total] == p, noNegativeZero.contains(total),
                          graph.nodes[order[gather]].inputs.allSatisfy({ root($0) != total }) else { continue }
                    result[p] = k
                    break
                }
            default:
                continue
            }
        }
        return result
    }

    /// Gathers padded with zeros whose value has exactly one reader, a native binary operator on
    /// the same side of the boundary: that reader reads through the gather's table instead, and
    /// the gather runs no instruction and needs no memory. Returns gather output → its position.
    func foldableGathers(_ gathers: [Int: LayoutTable], types: [ValueID: ValueType]) -> [ValueID: Int] {
        var readers: [ValueID: [Int]] = [:]
        for (p, i) in order.enumerated() { for v in graph.nodes[i].inputs { readers[v, default: []].append(p) } }
        let outputs = Set(graph.outputs)
        var folded: [ValueID: Int] = [:]
        for position in gathers.keys.sorted() {
            let gather = graph.nodes[order[position]], out = gather.outputs[0]
            guard !outputs.contains(out), let reads = readers[out], reads.count == 1 else { continue }
            if case let .pad(_, _, value) = gather.attributes, value != 0 { continue }
            let reader = graph.nodes[order[reads[0]]]
            let dtype = types[out]!.dtype
            guard reader.op.family == .binary, reader.op != .multiplyAdd, types[reader.outputs[0]]!.dtype == dtype,
                  reader.inputs.allSatisfy({ types[$0]!.dtype == dtype }),
                  boundaries.allSatisfy({ (position < $0) == (reads[0] < $0) }) else { continue }
            folded[out] = position
        }
        return folded
    }

    /// A layout operator as a table: for each output element, the input and element it copies, or
    /// nil where it pads. Computed by running the operator's kernel on float64 tensors holding
    /// encoded positions, so it is exactly the kernel's semantics.
    static func layoutTable(_ node: Node, inputs: [ValueType]) throws -> LayoutTable {
        var prefix: [Int] = [], total = 0
        var encoded: [Tensor] = []
        for type in inputs {
            prefix.append(total)
            let n = type.shape.reduce(1, *)
            let t = Tensor(uninitialized: type.shape, dtype: .float64)
            let p = t.pointer(Double.self)
            for i in 0..<n { p[i] = Double(total + i + 1) }
            total += n
            encoded.append(t)
        }
        var attributes = node.attributes
        if case let .pad(low, high, _) = attributes { attributes = .pad(low: low, high: high, value: 0) }
        let out = try Kernels.layout(node.op, attributes, encoded)
        let p = out.pointer(Double.self)
        return LayoutTable(count: out.elementCount) { i in
            let code = Int(p[i])
            guard code > 0 else { return nil }
            let k = prefix.lastIndex { $0 < code }!
            return (k, code - 1 - prefix[k])
        }
    }

    /// For each element of `shape`, the element of a `source`-shaped operand broadcast to it.
    static func broadcastTable(_ source: [Int], to shape: [Int]) -> [Int] {
        let strides = ShapeRules.broadcastStrides(source, to: shape)
        let n = shape.reduce(1, *)
        var table = [Int](repeating: 0, count: n)
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for i in 0..<n {
            table[i] = offset
            var d = shape.count - 1
            while d >= 0 {
                index[d] += 1
                offset += strides[d]
                if index[d] < shape[d] { break }
                offset -= strides[d] * index[d]
                index[d] = 0
                d -= 1
            }
        }
        return table
    }

    /// (outer, extent, inner) of a reduction over `rawAxes` when the axes are one run.
    static func reductionLayout(_ shape: [Int], _ rawAxes: [Int]) -> (outer: Int, extent: Int, inner: Int)? {
        guard let axes = try? ShapeRules.axes(rawAxes, rank: shape.count, op: op) else { return nil }
        if axes.isEmpty { return (shape.reduce(1, *), 1, 1) }
        guard axes.last! - axes.first! + 1 == axes.count else { return nil }
        return (shape[..<axes.first!].reduce(1, *), axes.reduce(1) { $0 * shape[$1] }, shape[(axes.last! + 1)...].reduce(1, *))
    }
}

/// First-fit allocation of 64-byte-aligned regions in a frame, reusing released ones.
struct RegionAllocator {
    private var free: [(offset: Int, size: Int)] = []
    private(set) var end = 0
    var peak: Int { end }

    static func rounded(_ bytes: Int) -> Int { Swift.max(64, (bytes + 63) / 64 * 64) }

    mutating func allocate(_ bytes: Int) -> Int {
        let size = Self.rounded(bytes)
        if let k = free.firstIndex(where: { $0.size >= size }) {
            let block = free[k]
            if block.size == size { free.remove(at: k) } else { free[k] = (block.offset + size, block.size - size) }
            return block.offset
        }
        end += size
        return end - size
    }

    /// A region past everything allocated so far (never one released before).
    mutating func allocateAtEnd(_ bytes: Int) -> Int {
        end += Self.rounded(bytes)
        return end - Self.rounded(bytes)
    }

    mutating func release(_ offset: Int, _ bytes: Int) {
        let size = Self.rounded(bytes)
        let k = free.firstIndex { $0.offset > offset } ?? free.count
        free.insert((offset, size), at: k)
        if k + 1 < free.count, free[k].offset + free[k].size == free[k + 1].offset {
            free[k].size += free[k + 1].size
            free.remove(at: k + 1)
        }
        if k > 0, free[k - 1].offset + free[k - 1].size == free[k].offset {
            free[k - 1].size += free[k].size
            free.remove(at: k)
        }
    }
}

extension DType {
    /// float64 or float32: the types arithmetic kernels compute in.
    var isComputeFloat: Bool { self == .float64 || self == .float32 }
}

/// A layout operator's table — for each output element, the input and element it copies, or nil
/// where it pads — kept as pieces: runs of output elements that copy consecutive elements of one
/// input, or one element over and over, or pad (a slice, a shift, a pad, a concatenation of whole
/// inputs or a broadcast scalar is a few pieces),
/// else, when that does not make it much smaller, one packed number per element. The tables of
/// large states' pads and concatenations stay small while a program is planned.
struct LayoutTable {
    /// Output elements from `start` (to the next piece's start) copy input `input`'s elements
    /// from `first` on, one by one (`stride` 1) or element `first` throughout (`stride` 0);
    /// `input` -1: padding.
    struct Piece: Equatable {
        let start: Int, input: Int, first: Int
        var stride = 1
        func entry(_ k: Int) -> (input: Int, index: Int)? { input < 0 ? nil : (input, first + (k - start) * stride) }
    }
    private enum Storage { case pieces([Piece]), packed([Int]) }
    private let storage: Storage
    let count: Int
    /// Inputs up to 2^20, elements up to 2^43 per input.
    private static let shift = 43

    init(_ entries: [(input: Int, index: Int)?]) {
        self.init(count: entries.count) { entries[$0] }
    }

    /// The table of `count` entries `entry(0)`, `entry(1)`, … (asked for in order, once each).
    init(count: Int, _ entry: (Int) -> (input: Int, index: Int)?) {
        self.count = count
        var pieces: [Piece] = [], packed: [Int] = []
        // Pieces while they are at most one per 16 entries, then packed numbers.
        let limit = Swift.max(4, count / 16)
        var last: (input: Int, index: Int)?, lastIsPad = false
        for k in 0..<count {
            let e = entry(k)
            if packed.isEmpty && pieces.count <= limit {
                var continues = e == nil && lastIsPad && k > 0
                if let e, let l = last, e.input == l.input {
                    // A piece of one element takes the stride its second element gives it.
                    let piece = pieces[pieces.count - 1], fresh = piece.start == k - 1
                    if e.index == l.index + 1, fresh || piece.stride == 1 { continues = true }
                    if e.index == l.index, fresh || piece.stride == 0 { (continues, pieces[pieces.count - 1].stride) = (true, 0) }
                }
                if !continues {
                    pieces.append(Piece(start: k, input: e?.input ?? -1, first: e?.index ?? 0))
                    if pieces.count > limit {
                        packed.reserveCapacity(count)
                        for j in 0..<k { packed.append(Self.code(Self.entry(j, in: pieces))) }
                    }
                }
                (last, lastIsPad) = (e, e == nil)
            }
            if !packed.isEmpty { packed.append(Self.code(e)) }
        }
        storage = packed.isEmpty ? .pieces(pieces) : .packed(packed)
    }

    private static func code(_ e: (input: Int, index: Int)?) -> Int { e.map { $0.input << shift | $0.index } ?? -1 }

    private static func entry(_ k: Int, in pieces: [Piece]) -> (input: Int, index: Int)? {
        // The last piece starting at or before k.
        var (lo, hi) = (0, pieces.count)
        while hi - lo > 1 {
            let mid = (lo + hi) / 2
            if pieces[mid].start <= k { lo = mid } else { hi = mid }
        }
        return pieces[lo].entry(k)
    }

    subscript(k: Int) -> (input: Int, index: Int)? {
        switch storage {
        case let .pieces(pieces): return Self.entry(k, in: pieces)
        case let .packed(entries):
            let code = entries[k]
            return code < 0 ? nil : (code >> Self.shift, code & (1 << Self.shift - 1))
        }
    }

    /// `(input, first)` when the whole table copies consecutive elements of one input.
    var contiguousRun: (input: Int, first: Int)? {
        guard count > 0, case let .pieces(pieces) = storage, pieces.count == 1, pieces[0].input >= 0, pieces[0].stride == 1 || count == 1 else { return nil }
        return (pieces[0].input, pieces[0].first)
    }

    /// The pieces, when the table is kept as pieces.
    var pieces: [Piece]? {
        if case let .pieces(pieces) = storage { return pieces }
        return nil
    }

    func map<T>(_ transform: ((input: Int, index: Int)?) -> T) -> [T] {
        guard case let .pieces(pieces) = storage else { return (0..<count).map { transform(self[$0]) } }
        var result: [T] = []
        result.reserveCapacity(count)
        for (j, p) in pieces.enumerated() {
            let end = j + 1 < pieces.count ? pieces[j + 1].start : count
            for k in p.start..<end { result.append(transform(p.entry(k))) }
        }
        return result
    }
}
