import AdjointTensor

/// The batching rule of every operator (``BatchLevel``): how an operator applied to one example is
/// applied to a whole batch whose axis 0 is the batch.
///
/// A rule receives the call as the function made it (logical inputs, attributes for one example)
/// and returns the output's whole batch. Rules go by family, as the derivative rules do:
/// elementwise operators align ranks and broadcast; reductions, layout and softmax operators shift
/// their axes past the batch axis; a matrix product of a shared matrix and a batch becomes one
/// GEMM. Operators without a batched form (gather or scatter with per-example indices, custom
/// operators) run once per example and are stacked, which is correct for every operator.
enum BatchingRules {
    static func apply(_ call: OpCall, level: BatchLevel) throws -> Tensor {
        let inputs = call.inputs
        let physical = inputs.map { level.physical(of: $0) }
        let ranks = inputs.map(\.rank)
        switch call.op.family {
        case .unary, .conversion:
            return try dispatch1(call.op, call.attributes, [physical[0]!])
        case .binary, .comparison:
            return try dispatch1(call.op, call.attributes, aligned(inputs, physical))
        case .reduction:
            switch call.attributes {
            case let .reduction(axes, keepDims):
                let normalized = try ShapeRules.axes(axes, rank: ranks[0], op: call.op.rawValue)
                // A reduction of a rank-0 value reduces nothing; an empty axis list would reduce the batch.
                guard !normalized.isEmpty else { return try perExample(call, level: level) }
                return try dispatch1(call.op, .reduction(axes: normalized.map { $0 + 1 }, keepDims: keepDims), [physical[0]!])
            case let .axisKeepDims(axis, keepDims):
                let a = try ShapeRules.axis(axis, rank: ranks[0], op: call.op.rawValue)
                return try dispatch1(call.op, .axisKeepDims(axis: a + 1, keepDims: keepDims), [physical[0]!])
            default:
                return try perExample(call, level: level)
            }
        case .linalg:
            return try matmul(call, physical, level: level)
        case .layout:
            return try layout(call, physical, level: level)
        case .indexing:
            return try indexing(call, physical, level: level)
        case .nn:
            switch (call.op, call.attributes) {
            case (.softmax, .axis(let axis)), (.logSoftmax, .axis(let axis)):
                let a = try ShapeRules.axis(axis, rank: ranks[0], op: call.op.rawValue)
                return try dispatch1(call.op, .axis(a + 1), [physical[0]!])
            case (.crossEntropyWithLogits, _):
                // Per-example losses over the leading axes of the logits: the batch is one more.
                return try dispatch1(call.op, call.attributes, inputs.map { try level.physicalOrBroadcast($0) })
            case (.meanSquaredError, _) where ranks.max() ?? 0 > 0:
                // (Rank-0 examples go per example: a mean over no axes would reduce the batch.)
                let difference = try dispatch1(.sub, .none, aligned(inputs, physical))
                let squared = try dispatch1(.mul, .none, [difference, difference])
                return try dispatch1(.mean, .reduction(axes: Array(1..<squared.rank), keepDims: false), [squared])
            default:
                return try perExample(call, level: level)
            }
        case .inPlace:
            return try inPlace(call, physical, level: level)
        case .creation, .custom:
            return try perExample(call, level: level)
        }
    }

    /// Operands of an elementwise (broadcasting) operator: a batched operand of lower rank than
    /// the others gets unit axes after its batch axis, so its example axes line up with theirs;
    /// shared operands broadcast against the batch as they are.
    private static func aligned(_ inputs: [Tensor], _ physical: [Tensor?]) throws -> [Tensor] {
        let rank = inputs.map(\.rank).max() ?? 0
        return try zip(inputs, physical).map { input, p in try p.map { try widened($0, example: input, to: rank) } ?? input }
    }

    /// The batch `p` of `example` with unit axes after its batch axis, so that its example axes
    /// count `rank` (trailing axes line up with an operand of that rank when broadcasting).
    private static func widened(_ p: Tensor, example: Tensor, to rank: Int) throws -> Tensor {
        guard example.rank < rank else { return p }
        return try p.reshaped([p.shape[0]] + Array(repeating: 1, count: rank - example.rank) + example.shape)
    }

    private static func matmul(_ call: OpCall, _ physical: [Tensor?], level: BatchLevel) throws -> Tensor {
        guard case let .matmul(ta, tb) = call.attributes else { return try perExample(call, level: level) }
        let (a, b) = (call.inputs[0], call.inputs[1])
        switch (physical[0], physical[1]) {
        case let (nil, pb?) where a.rank == 2 && b.rank == 2:
            // A shared matrix times a batch of matrices: one GEMM, the batch folded into the
            // columns. out[β] = op(A)·op(B[β]); with Bᵀ[β] rows stacked, (op(B)ᵀ stacked)·op(A)ᵀ.
            let size = level.size
            let columns = tb ? pb : try swappingLastTwo(pb)  // [size, n, k]: op(B[β])ᵀ
            let (n, k) = (columns.shape[1], columns.shape[2])
            let product = try dispatch1(.matmul, .matmul(transposeA: false, transposeB: !ta),
                                        [columns.reshaped([size * n, k]), a])  // [size·n, m]
            return try swappingLastTwo(product.reshaped([size, n, product.shape[1]]))
        default:
            // Batch axes broadcast in the product: give every batched operand the other's rank.
            let rank = Swift.max(a.rank, b.rank)
            let operands = try [a, b].enumerated().map { i, input in try physical[i].map { try widened($0, example: input, to: rank) } ?? input }
            return try dispatch1(.matmul, call.attributes, operands)
        }
    }

    /// `x` (rank 3) with its last two axes swapped: a reshape when either has one element (a
    /// matrix-vector product's operands), a transpose otherwise.
    private static func swappingLastTwo(_ x: Tensor) throws -> Tensor {
        let (b, r, c) = (x.shape[0], x.shape[1], x.shape[2])
        return r == 1 || c == 1 ? try x.reshaped([b, c, r]) : try x.transposed([0, 2, 1])
    }

    private static func layout(_ call: OpCall, _ physical: [Tensor?], level: BatchLevel) throws -> Tensor {
        let size = level.size
        let x = call.inputs[0]
        switch (call.op, call.attributes) {
        case (.reshape, .shape(let shape)):
            return try dispatch1(.reshape, .shape([size] + shape), [physical[0]!])
        case (.transpose, .permutation(let permutation)):
            let p = try permutation.map { try ShapeRules.axis($0, rank: x.rank, op: call.op.rawValue) + 1 }
            return try dispatch1(.transpose, .permutation([0] + p), [physical[0]!])
        case (.broadcastTo, .shape(let shape)):
            return try dispatch1(.broadcastTo, .shape([size] + shape), [widened(physical[0]!, example: x, to: shape.count)])
        case let (.slice, .region(starts, ends)):
            return try dispatch1(.slice, .region(starts: [0] + starts, ends: [size] + ends), [physical[0]!])
        case let (.pad, .pad(low, high, value)):
            return try dispatch1(.pad, .pad(low: [0] + low, high: [0] + high, value: value), [physical[0]!])
        case (.concat, .axis(let axis)):
            let a = try ShapeRules.axis(axis, rank: x.rank, op: call.op.rawValue)
            return try dispatch1(.concat, .axis(a + 1), call.inputs.map { try level.physicalOrBroadcast($0) })
        case (.stack, .axis(let axis)):
            let a = try ShapeRules.axis(axis, rank: x.rank + 1, op: call.op.rawValue)
            return try dispatch1(.stack, .axis(a + 1), call.inputs.map { try level.physicalOrBroadcast($0) })
        default:
            return try perExample(call, level: level)
        }
    }

    private static func indexing(_ call: OpCall, _ physical: [Tensor?], level: BatchLevel) throws -> Tensor {
        switch (call.op, call.attributes) {
        case (.oneHot, _):
            return try dispatch1(.oneHot, call.attributes, [physical[0]!])
        case (.gather, .axis(let axis)) where physical[1] == nil:
            // Shared indices into a batch: gather past the batch axis.
            let a = try ShapeRules.axis(axis, rank: call.inputs[0].rank, op: call.op.rawValue)
            return try dispatch1(.gather, .axis(a + 1), [physical[0]!, call.inputs[1]])
        case (.scatterAdd, .axis(let axis)) where physical[1] == nil:
            let a = try ShapeRules.axis(axis, rank: call.inputs[0].rank, op: call.op.rawValue)
            return try dispatch1(.scatterAdd, .axis(a + 1), [level.physicalOrBroadcast(call.inputs[0]), call.inputs[1],
                                                             level.physicalOrBroadcast(call.inputs[2])])
        default:
            // Per-example indices: no single operator takes them.
            return try perExample(call, level: level)
        }
    }

    /// In-place operators as the functional update of the target they describe: the batch of a
    /// target written with batched operands is the batch of the updated values.
    private static func inPlace(_ call: OpCall, _ physical: [Tensor?], level: BatchLevel) throws -> Tensor {
        let target = call.inputs[0]
        let updated: Tensor
        switch call.op {
        case .addInPlace: updated = try dispatch1(.add, .none, aligned(call.inputs, physical))
        case .mulInPlace: updated = try dispatch1(.mul, .none, aligned(call.inputs, physical))
        case .multiplyAddInPlace:
            let operands = try aligned(call.inputs, physical)
            updated = try dispatch1(.multiplyAdd, .none, [operands[1], operands[2], operands[0]])
        case .assignInPlace:
            guard case let .region(starts, ends) = call.attributes else { return try perExample(call, level: level) }
            // The write copies the batch first: the batched value still refers to it.
            var copy = try level.physicalOrBroadcast(target)
            let value = call.inputs[1]
            let region = zip(starts, ends).map { $1 - $0 }
            let batchedValue = try level.physical(of: value).map { try widened($0, example: value, to: region.count) } ?? value
            try dispatchInPlace(.assignInPlace, .region(starts: [0] + starts, ends: [level.size] + ends),
                                target: &copy, operands: [batchedValue])
            return copy
        default:
            return try perExample(call, level: level)
        }
        // A shared target updated with batched operands becomes a batch.
        return updated.shape == [level.size] + target.shape ? updated : try updated.broadcast(to: [level.size] + target.shape)
    }

    /// The operator applied to each example in turn, the results stacked: correct for any operator.
    static func perExample(_ call: OpCall, level: BatchLevel) throws -> Tensor {
        let physical = call.inputs.map { level.physical(of: $0) }
        let results = try (0..<level.size).map { example in
            let inputs = try zip(call.inputs, physical).map { input, p -> Tensor in
                guard let p else { return input }
                return try p.slice(starts: [example] + Array(repeating: 0, count: input.rank), ends: [example + 1] + input.shape)
                    .reshaped(input.shape)
            }
            if call.op.isInPlace {
                var target = inputs[0]  // copied by the write: the batch still refers to it
                try dispatchInPlace(call.op, call.attributes, target: &target, operands: Array(inputs.dropFirst()))
                return target
            }
            return try dispatch1(call.op, call.attributes, inputs)
        }
        return try Tensor.stack(results, axis: 0)
    }
}
