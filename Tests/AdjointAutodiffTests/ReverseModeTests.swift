import Adjoint
@testable import AdjointAutodiff
import AdjointTestSupport
import Foundation
import Testing

/// A two-layer model used as a nested parameter collection.
struct Dense: ParameterCollection {
    var weight: Tensor
    var bias: Tensor
    mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try visit("weight", &weight)
        try visit("bias", &bias)
    }
    func callAsFunction(_ x: Tensor) throws -> Tensor { try x.matmul(weight) + bias }
}

struct Model: ParameterCollection {
    var layers: [Dense]
    var extras: [String: Tensor]
    mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
        try layers.visitTensors { try visit("layers." + $0, &$1) }
        try extras.visitTensors { try visit("extras." + $0, &$1) }
    }
}

@Suite("Reverse mode")
struct ReverseModeTests {
    @Test("valueWithGradient of a scalar function")
    func scalar() throws {
        let x = t([1, 2, 3])
        let (value, g) = try valueWithGradient(at: x) { x in try (x * x).sum() }
        #expect(try value.item() == 14)
        #expect(g.doubles == [2, 4, 6])
        #expect(value.traceTags.isEmpty)
    }

    @Test("gradients with respect to several inputs")
    func severalInputs() throws {
        let a = t([1, 2]), b = t([3, 4]), c = t([0.5])
        let (ga, gb) = try gradient(at: a, b) { a, b in try (a * b).sum() }
        #expect(ga.doubles == [3, 4] && gb.doubles == [1, 2])
        let (ha, hb, hc) = try gradient(at: a, b, c) { a, b, c in try (a * b * c).sum() }
        #expect(ha.doubles == [1.5, 2] && hb.doubles == [0.5, 1] && hc.doubles == [11])
        let gs = try gradient(at: [a, b]) { xs in try (xs[0] * xs[1] * xs[1]).sum() }
        #expect(gs[0].doubles == [9, 16] && gs[1].doubles == [6, 16])
    }

    /// Two dense layers, a scale and an unused tensor, and a loss that reads them in that order.
    static func twoLayers() throws -> (Model, (Model) throws -> Tensor) {
        let key = RandomKey(seed: 11)
        let model = Model(
            layers: [Dense(weight: try .uniform([3, 4], key: key.fold(in: 0)), bias: try .zeros([4])),
                     Dense(weight: try .uniform([4, 2], key: key.fold(in: 1)), bias: try .zeros([2]))],
            extras: ["scale": t([2]), "unused": t([7, 7])])
        let x = try Tensor.uniform([5, 3], key: key.fold(in: 2))
        return (model, { m in try (m.layers[1](m.layers[0](x).tanh()) * m.extras["scale"]!).sum() })
    }

    @Test("the ready hook hands over each gradient once, when final, last layer first; the same gradient as without it")
    func readyHook() throws {
        let (model, loss) = try Self.twoLayers()
        var order: [Int] = [], handed: [Int: Tensor?] = [:]
        let (value, g) = try valueWithGradient(at: model, of: loss) { index, gradient in
            order.append(index)
            handed[index] = gradient
        }
        let (plainValue, plain) = try valueWithGradient(at: model, of: loss)
        #expect(bitwiseEqual(value, plainValue))
        // Visiting order: 0 w0, 1 b0, 2 w1, 3 b1, 4 scale, 5 unused. `scale` is read last, layer 0 first.
        #expect(Set(order) == Set(0..<6) && order.count == 6)
        #expect(order.firstIndex(of: 4)! < order.firstIndex(of: 2)! && order.firstIndex(of: 2)! < order.firstIndex(of: 0)!)
        #expect(order.last == 5 && handed[5]! == nil, "the unused tensor comes at the end, with no gradient")
        for (index, tensor) in plain.tensors.enumerated() where index != 5 {
            #expect(bitwiseEqual(try #require(handed[index]!), tensor), "tensor \(index)")
            #expect(bitwiseEqual(g.tensors[index], tensor))
        }
        // An error thrown by the hook ends the pass.
        struct Stop: Error {}
        #expect(throws: Stop.self) { try valueWithGradient(at: model, of: loss) { _, _ in throw Stop() } }
    }

    @Test("nested parameter collections get gradients of the same structure")
    func nestedCollections() throws {
        let (model, loss) = try Self.twoLayers()
        let g = try gradient(at: model, of: loss)
        #expect(g.namedTensors.map(\.name) == ["layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
                                                "extras.scale", "extras.unused"])
        #expect(g.layers[0].weight.shape == [3, 4] && g.extras["unused"]!.doubles == [0, 0])   // symbolic zero materialized
        #expect(g.layers[1].bias.doubles == [10, 10])
        // Every tensor checked against central differences through the flattened view.
        let result = try gradcheck({ xs in try loss(model.replacingTensors(with: xs)) }, at: model.tensors)
        #expect(result.passed, "\(result.maxRelativeError)")
    }

    @Test("a pullback can be called with several cotangents")
    func vjpSeveral() throws {
        let x = t([1, 2, 3])
        let (y, pullback) = try vjp(at: x) { x in try x * x }
        #expect(y.doubles == [1, 4, 9])
        #expect(try pullback(t([1, 0, 0])).doubles == [2, 0, 0])
        #expect(try pullback(t([1, 1, 1])).doubles == [2, 4, 6])
        #expect(try pullback(t([0, 0, 2])).doubles == [0, 0, 12])
        #expect(throws: AutodiffError.self) { try pullback(t([1, 1])) }
        let (_, pairPullback) = try vjp(at: x) { x in [try x * 2, try x * 3] }
        #expect(throws: AutodiffError.cotangentCountMismatch(expected: 2, got: 1)) { try pairPullback([t([1, 1, 1])]) }
        #expect(try pairPullback([t([1, 1, 1]), t([1, 0, 0])]).doubles == [5, 2, 2])
        pullback.release()
        #expect(throws: AutodiffError.tapeReleased) { try pullback(t([1, 1, 1])) }
    }

    @Test("fan-out accumulates and withoutDerivative stops gradients")
    func fanOutAndStop() throws {
        let x = t([2])
        let g = try gradient(at: x) { x -> Tensor in
            let square: Tensor = try x * x
            let linear: Tensor = try x * 3
            return try (square + linear + x.exp()).sum()
        }
        let expected: Double = 7 + Foundation.exp(2)
        #expect(g.doubles == [expected])
        #expect(try gradient(at: x) { x in try (x * withoutDerivative(at: x)).sum() }.doubles == [2])
        #expect(try gradient(at: x) { _ in try Tensor.ones([1]).sum() }.doubles == [0])
        // Work done with every level hidden is not recorded: a constant to differentiation.
        let hidden = try gradient(at: x) { x in
            let c = try InterpreterStack.current.withoutLevels { try x * x }
            return try (c + x).sum()
        }
        #expect(hidden.doubles == [1])
    }

    @Test("the recorded tape is a list of IR nodes that prints")
    func printedTape() throws {
        let (graph, value) = try Tape.trace(at: t([1, 2])) { x in try (x * 3).exp().sum(axes: [0]) }
        #expect(try value.item() == Foundation.exp(3) + Foundation.exp(6))
        #expect(graph.description == """
            graph(%0: f64[2] arg, %4: f64[] capture) {
              %1 = binary.mul(%0, %4) : f64[2]
              %2 = elementwise.exp(%1) : f64[2]
              %3 = reduction.sum(%2) {axes=[0], keepDims=false} : f64[]
              return %3
            }
            """)
        try graph.verify()
    }

    @Test("second derivatives by differentiating a gradient (reverse over reverse)")
    func nested() throws {
        let x = t([0.5, -1, 2])
        let g2 = try gradient(at: x) { x in try gradient(at: x) { x in try (x * x * x).sum() }.sum() }
        #expect(isClose(g2.doubles, [3, -6, 12]))
        // No perturbation confusion: d/dx [x · d/dy (x + y)] = 1.
        for v in [-1.0, 0.5, 3] {
            let d = try gradient(at: t([v])) { x in try (x * gradient(at: t([1])) { y in try (x + y).sum() }).sum() }
            #expect(d.doubles == [1])
        }
    }

    @Test("two threads differentiating at once do not interfere")
    func threads() async throws {
        let results = try await withThrowingTaskGroup(of: [Double].self) { group in
            for scale in 1...4 {
                group.addTask {
                    var g: [Double] = []
                    for _ in 0..<50 {
                        g = try gradient(at: t([1, 2, 3])) { x in try (x * x * Double(scale)).sum() }.doubles
                    }
                    return g + [Double(scale)]
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for r in results {
            let scale = r.last!
            #expect(Array(r.dropLast()) == [2, 4, 6].map { $0 * scale })
        }
    }
}

@Suite("Errors while differentiating")
struct AutodiffErrorTests {
    @Test("gradient of a non-scalar needs a seed")
    func nonScalar() {
        #expect(throws: AutodiffError.nonScalarOutput(shape: [3])) { try gradient(at: t([1, 2, 3])) { x in try x * 2 } }
        let message = String(describing: AutodiffError.nonScalarOutput(shape: [3]))
        #expect(message.contains("vjp") && message.contains("[3]"))
    }

    @Test("errors inside the function propagate and leave the stack clean")
    func propagate() throws {
        #expect(throws: TensorError.self) { try gradient(at: t([1, 2])) { x in try (x + t([1, 2, 3])).sum() } }
        #expect(!InterpreterStack.current.isActive)
        #expect(try gradient(at: t([1])) { x in try (x * x).sum() }.doubles == [2])
    }
}

@Suite("In-place mutation guards")
struct MutationTests {
    @Test("an in-place write to a value a live tape saved goes to a copy; backward reads the saved values")
    func writeAfterSave() throws {
        var w = t([1, 2, 3])
        let (_, pullback) = try vjp(at: w) { w in try (w * w).sum() }
        let elements = w.rawPointer
        let shared = w.hasSharedStorage()    // the tape's saved value is a reference like any other
        #expect(shared)
        try w.add_(t([1]))
        #expect(w.rawPointer != elements && w.doubles == [2, 3, 4])
        #expect(try pullback(Tensor(1.0)).doubles == [2, 4, 6])
        // Once the tape is released nothing else refers to the storage: written in place.
        pullback.release()
        let stillShared = w.hasSharedStorage()
        #expect(!stillShared)
        let fresh = w.rawPointer
        try w.mul_(t([2]))
        #expect(w.rawPointer == fresh && w.doubles == [4, 6, 8])
    }

    @Test("writes to any region of a saved storage leave the tape's values intact")
    func regionsOfSavedStorage() throws {
        var buffer = t([1, 2, 3, 4, 5, 6], [3, 2])
        let (_, pullback) = try vjp(at: buffer) { b in try (b[0..<1] * b[0..<1]).sum() }
        try buffer.assign(t([0, 0], [1, 2]), at: [2..<3])                  // row 2: not saved
        #expect(try pullback(Tensor(1.0)).doubles == [2, 4, 0, 0, 0, 0])
        try buffer.assign(t([9], [1, 1]), starts: [0, 1], ends: [1, 2])   // inside the saved row 0
        #expect(try pullback(Tensor(1.0)).doubles == [2, 4, 0, 0, 0, 0])
        #expect(buffer.doubles == [1, 9, 3, 4, 0, 0])
    }

    @Test("saves of several tapes and value copies all count; a released tape's saves are gone")
    func savesAcrossTapes() throws {
        // Observed through behaviour (where the write lands and what each holder reads), so it
        // holds in debug and release alike.
        var w = t([1, 2, 3])
        let (_, first) = try vjp(at: w) { w in try (w * w).sum() }
        let (_, second) = try vjp(at: w) { w in try (w * 3).sum() }
        second.release()
        let copy = w
        let address = w.rawPointer
        try w.mul_(t([2]))
        #expect(w.rawPointer != address && w.doubles == [2, 4, 6] && copy.doubles == [1, 2, 3])
        #expect(try first(Tensor(1.0)).doubles == [2, 4, 6])
        #expect(throws: AutodiffError.tapeReleased) { try second(Tensor(1.0)) }
        first.release()
        let own = w.rawPointer
        try w.mul_(t([2]))                  // nothing else refers to the copy: written in place
        #expect(w.rawPointer == own && w.doubles == [4, 8, 12])
    }

    @Test("an in-place write while recording is differentiated as the functional update")
    func inPlaceWhileRecording() throws {
        let g = try gradient(at: t([1, 2, 3])) { x in
            var y = try x * x          // saved by the multiplication below
            let z = try y * x
            try y.add_(x)              // y + x: the write goes to a copy, z's saved y is intact
            return try (z + y).sum()
        }
        // d/dx (x³ + x² + x) = 3x² + 2x + 1
        #expect(g.doubles == [6, 17, 34])
    }

    @Test("a copy is never invalidated: copy-on-write protects values the caller still holds")
    func copyProtects() throws {
        let w = t([1, 2, 3])
        let (_, pullback) = try vjp(at: w) { w in try (w * w).sum() }
        var alias = w
        try alias.add_(t([1]))     // w is still held, so alias gets its own copy
        #expect(try pullback(Tensor(1.0)).doubles == [2, 4, 6])
    }

    @Test("withUnsafeMutableScalars refills a tensor in place when nothing else refers to it")
    func refillInPlace() throws {
        var x = t([1, 2])
        let elements = x.rawPointer
        for k in 0..<3 {
            try x.withUnsafeMutableScalars(as: Double.self) { $0[0] = Double(k); $0[1] = Double(-k) }
        }
        #expect(x.rawPointer == elements && x.doubles == [2, -2])
        // Another value shares the storage: the write goes to a copy, the other value keeps its elements.
        let held = x
        try x.withUnsafeMutableScalars(as: Double.self) { $0[0] = 7 }
        #expect(x.rawPointer != elements && x.doubles == [7, -2] && held.doubles == [2, -2])
        // A view's elements are its own region of the storage, copied out when shared.
        var row = try t([1, 2, 3, 4], [2, 2])[1..<2]
        try row.withUnsafeMutableScalars(as: Double.self) { #expect($0.count == 2); $0[1] = 9 }
        #expect(row.doubles == [3, 9] && row.shape == [1, 2])
    }

    @Test("withUnsafeMutableScalars copies what a tape saved, so backward still sees the old values")
    func refillAfterSave() throws {
        var x = t([1, 2, 3])
        let (_, pullback) = try vjp(at: t([1, 1, 1])) { w in try (w * x).sum() }
        try x.withUnsafeMutableScalars(as: Double.self) { for i in $0.indices { $0[i] = 10 } }
        #expect(try pullback(Tensor(1.0)).doubles == [1, 2, 3])
        #expect(x.doubles == [10, 10, 10])
    }

    @Test("withUnsafeMutableScalars rejects another element type and tracked values")
    func refillErrors() throws {
        var x = t([1, 2])
        #expect(throws: TensorError.dtypeMismatch(op: "Tensor.withUnsafeMutableScalars", detail: "Float elements asked of a f64 tensor")) {
            try x.withUnsafeMutableScalars(as: Float.self) { $0[0] = 1 }
        }
        _ = try gradient(at: x) { w in
            var tracked = w
            #expect {
                try tracked.withUnsafeMutableScalars(as: Double.self) { $0[0] = 1 }
            } throws: { error in
                guard case let TensorError.invalidArgument(op, detail) = error else { return false }
                return op == "Tensor.withUnsafeMutableScalars" && detail.contains("tracked by interpreter level")
            }
            return try w.sum()
        }
        #expect(x.doubles == [1, 2])
    }

    @Test("in-place updates inside the function are differentiated")
    func inPlaceInside() throws {
        let g = try gradient(at: t([1, 2])) { x in
            var y = try x * 1
            try y.mul_(x)          // y = x²
            try y.add_(x)          // y = x² + x
            try y.assign(t([5]), at: [0..<1])   // y[0] no longer depends on x
            return try y.sum()
        }
        #expect(g.doubles == [0, 5])
    }
}

@Suite("Rule coverage")
struct RuleCoverageTests {
    @Test("every OpCode has a VJP and a JVP, or an explicit reason why not")
    func everyOp() {
        for op in OpCode.allCases {
            let rule = DerivativeRules.rule(for: op)
            switch rule.status {
            case .differentiable:
                #expect(rule.vjp != nil, "\(op.rawValue) claims a VJP but has none")
                #expect(rule.jvp != nil, "\(op.rawValue) claims a JVP but has none")
            case let .nonDifferentiable(why), let .notImplemented(why):
                #expect(rule.vjp == nil && rule.jvp == nil && !why.isEmpty, "\(op.rawValue) must give a reason")
            }
        }
        #expect(DerivativeRules.statusTable.count == OpCode.allCases.count)
    }

    @Test("a rule producing a derivative of the wrong shape or dtype is reported, naming operator and input")
    func wrongDerivativeType() throws {
        let type = ValueType(dtype: .float64, shape: [2, 3])
        #expect(throws: AutodiffError.ruleProducedWrongShape(op: .exp, input: 0, expected: [2, 3], got: [3])) {
            try DerivativeRules.check(Tensor.zeros([3]), of: .exp, input: 0, against: type)
        }
        #expect(throws: AutodiffError.ruleProducedWrongDType(op: .exp, input: -1, expected: .float64, got: .float32)) {
            try DerivativeRules.check(Tensor.zeros([2, 3], dtype: .float32), of: .exp, input: -1, against: type)
        }
        try DerivativeRules.check(Tensor.zeros([2, 3]), of: .exp, input: 0, against: type)
        let message = AutodiffError.ruleProducedWrongDType(op: .exp, input: -1, expected: .float64, got: .float32).description
        #expect(message.contains("elementwise.exp") && message.contains("output tangent"))
        #expect(throws: AutodiffError.derivativeNotImplemented(op: .exp, node: -1, reason: "example")) {
            try DerivativeRule.notImplemented("example").requireImplemented(.exp, node: -1)
        }
        #expect(AutodiffError.derivativeNotImplemented(op: .exp, node: -1, reason: "r").description.contains("forward mode"))
        try DerivativeRule.nonDifferentiable("boolean").requireImplemented(.equal, node: 3)
    }

    @Test("a cotangent reaching a not-implemented rule is an error, never a silent zero")
    func notImplementedThrows() throws {
        // Simulate through the public rule type: a not-implemented status carries its reason.
        let rule = DerivativeRule.notImplemented("example")
        #expect(rule.status == .notImplemented("example") && rule.vjp == nil)
    }
}
