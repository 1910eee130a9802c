import AdjointTensor

extension OpSpec {
    /// Every differentiable operator over random shapes, broadcasting cases and edge domains.
    /// Drives the gradcheck tests and `adjoint gradcheck`.
    package static let table: [OpSpec] = unaryCases + binaryCases + reductionCases + otherCases

    private static func u(_ shape: InputSpec.Shape, _ range: ClosedRange<Double>) -> InputSpec { InputSpec(shape, .uniform(range)) }
    private static let anyShape = InputSpec.Shape.random(ranks: 0...3)

    static let unaryCases: [OpSpec] = {
        typealias Unary = @Sendable (Tensor) throws -> Tensor
        let ops: [(OpCode, Unary, [(String, InputSpec.Domain)])] = [
            (.neg, { try $0.neg() }, [("", .uniform(-2...2))]),
            (.abs, { try $0.abs() }, [("", .awayFromZero(0.1...2))]),
            (.sign, { try $0.sign() }, [("", .awayFromZero(0.1...2))]),
            (.exp, { try $0.exp() }, [("", .uniform(-3...3)), ("large", .uniform(5...10)), ("very negative", .uniform(-40 ... -30))]),
            (.expm1, { try $0.expm1() }, [("", .uniform(-1...1)), ("tiny", .uniform(-1e-4...1e-4))]),
            (.log, { try $0.log() }, [("", .uniform(0.1...5)), ("near zero", .uniform(0.01...0.05))]),
            (.log1p, { try $0.log1p() }, [("", .uniform(-0.5...3)), ("near -1", .uniform(-0.99 ... -0.9))]),
            (.sqrt, { try $0.sqrt() }, [("", .uniform(0.1...4)), ("near zero", .uniform(0.01...0.05))]),
            (.rsqrt, { try $0.rsqrt() }, [("", .uniform(0.1...4))]),
            (.sin, { try $0.sin() }, [("", .uniform(-3...3)), ("large", .uniform(100...200))]),
            (.cos, { try $0.cos() }, [("", .uniform(-3...3)), ("large", .uniform(100...200))]),
            (.tanh, { try $0.tanh() }, [("", .uniform(-2...2)), ("saturated", .awayFromZero(5...10))]),
            (.sigmoid, { try $0.sigmoid() }, [("", .uniform(-4...4)), ("saturated", .awayFromZero(20...30))]),
            (.relu, { try $0.relu() }, [("", .awayFromZero(0.1...2))]),
            (.softplus, { try $0.softplus() }, [("", .uniform(-4...4)), ("saturated", .awayFromZero(30...40))]),
        ]
        return ops.flatMap { op, f, domains in
            domains.map { label, domain in
                OpSpec(op, label.isEmpty ? "random shape" : label, [InputSpec(anyShape, domain)]) { try f($0[0]) }
            } + [OpSpec(op, "scalar", [InputSpec(.fixed([]), domains[0].1)]) { try f($0[0]) }]   // the rank-0 rules
        }
    }()

    static let binaryCases: [OpSpec] = {
        typealias Binary = @Sendable (Tensor, Tensor) throws -> Tensor
        let ops: [(OpCode, Binary, ClosedRange<Double>, InputSpec.Domain)] = [
            (.add, { try $0 + $1 }, -2...2, .uniform(-2...2)),
            (.sub, { try $0 - $1 }, -2...2, .uniform(-2...2)),
            (.mul, { try $0 * $1 }, -2...2, .uniform(-2...2)),
            (.div, { try $0 / $1 }, -2...2, .awayFromZero(0.5...2)),
            (.pow, { try $0.pow($1) }, 0.5...2, .uniform(-2...2)),
            (.maximum, { try $0.maximum($1) }, -2...2, .uniform(-2...2)),
            (.minimum, { try $0.minimum($1) }, -2...2, .uniform(-2...2)),
        ]
        let broadcasts: [(String, [Int], [Int])] = [
            ("broadcast [2,1,3]×[4,1]", [2, 1, 3], [4, 1]),
            ("broadcast [3]×[2,3]", [3], [2, 3]),
            ("broadcast scalar×[2,2]", [], [2, 2]),
        ]
        return ops.flatMap { op, f, left, right in
            [OpSpec(op, "random shape", [u(anyShape, left), InputSpec(.like(0), right)]) { try f($0[0], $0[1]) },
             OpSpec(op, "scalar×scalar", [u(.fixed([]), left), InputSpec(.fixed([]), right)]) { try f($0[0], $0[1]) }]
                + broadcasts.map { label, a, b in
                    OpSpec(op, label, [u(.fixed(a), left), InputSpec(.fixed(b), right)]) { try f($0[0], $0[1]) }
                }
        } + [
            OpSpec(.mul, "squared operand x·x", [u(anyShape, -2...2)]) { try $0[0] * $0[0] },
            OpSpec(.mul, "squared scalar x·x", [u(.fixed([]), -2...2)]) { try $0[0] * $0[0] },
            OpSpec(.multiplyAdd, "random shape", [u(anyShape, -2...2), u(.like(0), -2...2), u(.like(0), -2...2)]) {
                try $0[0].multiplied(by: $0[1], adding: $0[2])
            },
            OpSpec(.multiplyAdd, "broadcast [2,1,3]×[4,1]+[3]", [u(.fixed([2, 1, 3]), -2...2), u(.fixed([4, 1]), -2...2), u(.fixed([3]), -2...2)]) {
                try $0[0].multiplied(by: $0[1], adding: $0[2])
            },
            OpSpec(.multiplyAdd, "scalar addend, squared operand", [u(.fixed([2, 3]), -2...2), u(.fixed([]), -2...2)]) {
                try $0[0].multiplied(by: $0[0], adding: $0[1])
            },
            OpSpec(.select, "broadcast mask [2,1]×[2,3]×[3]",
                   [InputSpec(.fixed([2, 1]), .mask), u(.fixed([2, 3]), -2...2), u(.fixed([3]), -2...2)]) {
                try Tensor.select($0[0], $0[1], $0[2])
            },
            OpSpec(.select, "random shape", [InputSpec(anyShape, .mask), u(.like(0), -2...2), u(.like(0), -2...2)]) {
                try Tensor.select($0[0], $0[1], $0[2])
            },
        ]
    }()

    static let reductionCases: [OpSpec] = {
        typealias Reduce = @Sendable (Tensor, [Int], Bool) throws -> Tensor
        let ops: [(OpCode, Reduce)] = [
            (.sum, { try $0.sum(axes: $1, keepDims: $2) }),
            (.mean, { try $0.mean(axes: $1, keepDims: $2) }),
            (.max, { try $0.max(axes: $1, keepDims: $2) }),
            (.min, { try $0.min(axes: $1, keepDims: $2) }),
            (.logsumexp, { try $0.logsumexp(axes: $1, keepDims: $2) }),
        ]
        let axesCases: [([Int], Bool)] = [([], false), ([0], false), ([1], true), ([0, 2], false), ([-1], true)]
        var cases = ops.flatMap { op, f in
            axesCases.map { axes, keep in
                OpSpec(op, "[2,3,4] axes \(axes)\(keep ? " keepDims" : "")", [u(.fixed([2, 3, 4]), -2...2)]) { try f($0[0], axes, keep) }
            }
        }
        cases.append(OpSpec(.logsumexp, "values ±1e3", [InputSpec(.fixed([3, 4]), .awayFromZero(999...1001))]) {
            try $0[0].logsumexp(axes: [1])
        })
        return cases
    }()

    static let otherCases: [OpSpec] = [
        // Linear algebra
        OpSpec(.matmul, "[3,4]×[4,2]", [u(.fixed([3, 4]), -1...1), u(.fixed([4, 2]), -1...1)]) { try $0[0].matmul($0[1]) },
        OpSpec(.matmul, "batched [2,3,4]×[4,5]", [u(.fixed([2, 3, 4]), -1...1), u(.fixed([4, 5]), -1...1)]) { try $0[0].matmul($0[1]) },
        OpSpec(.matmul, "broadcast batch [2,1,3,4]×[3,4,2]", [u(.fixed([2, 1, 3, 4]), -1...1), u(.fixed([3, 4, 2]), -1...1)]) { try $0[0].matmul($0[1]) },
        OpSpec(.matmul, "transposeA [4,3]ᵀ×[4,2]", [u(.fixed([4, 3]), -1...1), u(.fixed([4, 2]), -1...1)]) { try $0[0].matmul($0[1], transposeSelf: true) },
        OpSpec(.matmul, "transposeB [3,4]×[2,4]ᵀ", [u(.fixed([3, 4]), -1...1), u(.fixed([2, 4]), -1...1)]) { try $0[0].matmul($0[1], transposeOther: true) },
        OpSpec(.matmul, "both transposed [2,4,3]ᵀ×[2,5,4]ᵀ", [u(.fixed([2, 4, 3]), -1...1), u(.fixed([2, 5, 4]), -1...1)]) {
            try $0[0].matmul($0[1], transposeSelf: true, transposeOther: true)
        },
        // Layout
        OpSpec(.reshape, "[2,3,4]→[6,-1]", [u(.fixed([2, 3, 4]), -2...2)]) { try $0[0].reshaped([6, -1]) * $0[0].reshaped([6, 4]) },
        OpSpec(.transpose, "permutation [2,0,1]", [u(.fixed([2, 3, 4]), -2...2)]) { try $0[0].transposed([2, 0, 1]) },
        OpSpec(.broadcastTo, "[3,1]→[2,3,4]", [u(.fixed([3, 1]), -2...2)]) { try $0[0].broadcast(to: [2, 3, 4]) },
        OpSpec(.slice, "inner block of [4,5]", [u(.fixed([4, 5]), -2...2)]) { try $0[0].slice(starts: [1, 2], ends: [3, 5]) },
        OpSpec(.slice, "leading rows (view)", [u(.fixed([4, 3]), -2...2)]) { try $0[0][1..<3] * $0[0][0..<2] },
        OpSpec(.concat, "three inputs on axis 1", [u(.fixed([2, 1]), -2...2), u(.fixed([2, 3]), -2...2), u(.fixed([2, 2]), -2...2)]) {
            try Tensor.concat($0, axis: 1)
        },
        OpSpec(.stack, "two inputs on axis 1", [u(.fixed([2, 3]), -2...2), u(.fixed([2, 3]), -2...2)]) { try Tensor.stack($0, axis: 1) },
        OpSpec(.pad, "[2,3] low [1,0] high [2,1]", [u(.fixed([2, 3]), -2...2)]) { try $0[0].padded(low: [1, 0], high: [2, 1], value: 0.5) },
        // Indexing
        OpSpec(.gather, "axis 0, repeated indices", [u(.fixed([4, 3]), -2...2), InputSpec(.fixed([6]), .indices(bound: 4))]) {
            try $0[0].gather($0[1], axis: 0)
        },
        OpSpec(.gather, "axis 1, 2-D indices", [u(.fixed([2, 5, 3]), -2...2), InputSpec(.fixed([2, 2]), .indices(bound: 5))]) {
            try $0[0].gather($0[1], axis: 1)
        },
        OpSpec(.scatterAdd, "axis 0", [u(.fixed([4, 3]), -2...2), InputSpec(.fixed([5]), .indices(bound: 4)), u(.fixed([5, 3]), -2...2)]) {
            try $0[0].scatterAdd($0[1], $0[2], axis: 0)
        },
        // Neural-network composites
        OpSpec(.softmax, "last axis", [u(.fixed([3, 5]), -3...3)]) { try $0[0].softmax(axis: -1) },
        OpSpec(.softmax, "axis 0", [u(.fixed([3, 2, 4]), -3...3)]) { try $0[0].softmax(axis: 0) },
        OpSpec(.softmax, "logits ±1e3", [InputSpec(.fixed([2, 4]), .awayFromZero(999...1001))]) { try $0[0].softmax(axis: -1) },
        OpSpec(.logSoftmax, "last axis", [u(.fixed([3, 5]), -3...3)]) { try $0[0].logSoftmax(axis: -1) },
        OpSpec(.logSoftmax, "axis 1 of rank 3", [u(.fixed([2, 3, 4]), -3...3)]) { try $0[0].logSoftmax(axis: 1) },
        OpSpec(.crossEntropyWithLogits, "[4,5] logits", [u(.fixed([4, 5]), -3...3), InputSpec(.fixed([4]), .indices(bound: 5))]) {
            try $0[0].crossEntropy(labels: $0[1])
        },
        OpSpec(.crossEntropyWithLogits, "logits ±1e3", [InputSpec(.fixed([3, 4]), .awayFromZero(999...1001)), InputSpec(.fixed([3]), .indices(bound: 4))]) {
            try $0[0].crossEntropy(labels: $0[1])
        },
        OpSpec(.meanSquaredError, "[3,4]", [u(.fixed([3, 4]), -2...2), u(.like(0), -2...2)]) { try $0[0].meanSquaredError($0[1]) },
        // Conversion: through float32 and back (linear, so a large step is exact up to f32 rounding).
        OpSpec(.cast, "f64→f32→f64", [u(.fixed([3, 2]), -2...2)], step: 1e-2, tolerance: 1e-4) {
            try $0[0].cast(to: .float32).cast(to: .float64)
        },
        // In-place updates are differentiated as the functional update they perform.
        OpSpec(.addInPlace, "broadcast row", [u(.fixed([3, 4]), -2...2), u(.fixed([4]), -2...2)]) {
            var t = $0[0]; try t.add_($0[1]); return try t * $0[0]
        },
        OpSpec(.mulInPlace, "same shape", [u(.fixed([3, 4]), -2...2), u(.like(0), -2...2)]) {
            var t = $0[0]; try t.mul_($0[1]); return t
        },
        OpSpec(.multiplyAddInPlace, "scalar factor, broadcast row", [u(.fixed([3, 4]), -2...2), u(.fixed([]), -2...2), u(.fixed([4]), -2...2)]) {
            var t = $0[0]; try t.multiplyAdd_($0[1], $0[2]); return try t * $0[0]
        },
        OpSpec(.assignInPlace, "block of rows", [u(.fixed([4, 3]), -2...2), u(.fixed([2, 3]), -2...2)]) {
            var t = try $0[0] * 2; try t.assign($0[1], at: [1..<3]); return try t * $0[0]
        },
        // A registered custom operator: its own VJP and JVP are what is checked.
        OpSpec(.customCall, "registered x·y²", [u(.fixed([3]), -2...2), u(.like(0), -2...2)]) {
            try Tensor.custom(OpSpec.exampleCustomOperator, $0)
        },
    ]

    /// The custom operator the op-spec table checks (x·y² with its VJP and JVP), registered on first use.
    package static let exampleCustomOperator: String = {
        let name = "adjoint.example.xy2"
        try? CustomOperators.register(CustomOperator(name: name, forward: { xs in try xs[0] * xs[1] * xs[1] },
            vjp: { xs, _, g in [try g * xs[1] * xs[1], try g * xs[0] * xs[1] * 2] },
            jvp: { xs, _, t in
                let a = try t[0].map { try $0 * xs[1] * xs[1] }, b = try t[1].map { try $0 * xs[0] * xs[1] * 2 }
                switch (a, b) {
                case let (a?, b?): return try a + b
                case let (a?, nil): return a
                case let (nil, b?): return b
                case (nil, nil): return nil
                }
            }), replacing: true)
        return name
    }()
}
