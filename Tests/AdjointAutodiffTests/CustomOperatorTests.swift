import Adjoint
import AdjointTestSupport
import Testing

@Suite("Custom operators", .serialized)
struct CustomOperatorTests {
    /// x·y² is the op-spec table's example ("adjoint.example.xy2"); these are deliberately broken ones.
    static let registered: Void = {
        try! CustomOperators.register(CustomOperator(name: "test.badShape", forward: { xs in try xs[0] * 2 },
            vjp: { _, _, g in [try g.sum()] }))
        try! CustomOperators.register(CustomOperator(name: "test.badDType", forward: { xs in try xs[0] * 2 },
            vjp: { _, _, g in [try g.cast(to: .float32)] }))
        try! CustomOperators.register(CustomOperator(name: "test.alias", forward: { xs in xs[0] }))
        try! CustomOperators.register(CustomOperator(name: "test.noVJP", forward: { xs in try xs[0].exp() }))
        // Σ_i i·x_i over any number of inputs; its VJP reads every input.
        try! CustomOperators.register(CustomOperator(name: "test.weightedSum",
            forward: { xs in try xs.enumerated().reduce(try xs[0] * 0) { try $0 + $1.element * Double($1.offset) } },
            vjp: { xs, _, g in try xs.indices.map { i in try g * xs[i].onesLike() * Double(i) } },
            jvp: { _, _, ts in try ts.enumerated().reduce(nil as Tensor?) { sum, t in
                guard let tangent = t.element else { return sum }
                let term = try tangent * Double(t.offset)
                return try sum.map { try $0 + term } ?? term
            } }))
    }()

    @Test("a custom operator with 200 inputs differentiates in both modes (more inputs than a fixed save list)")
    func manyInputs() throws {
        let xs = (0..<200).map { t([Double($0) / 10]) }
        let grads = try gradient(at: xs) { xs in try Tensor.custom("test.weightedSum", xs).sum() }
        #expect(grads.map { $0.doubles[0] } == (0..<200).map(Double.init))
        let (_, tangent) = try jvp(at: xs[150], direction: t([1])) { x in
            var inputs = xs
            inputs[150] = x
            return try Tensor.custom("test.weightedSum", inputs)
        }
        #expect(tangent.doubles == [150])
    }

    init() { _ = Self.registered }

    @Test("gradcheck passes in both modes and at second order for a registered operator", arguments: [GradcheckMode.reverse, .forward])
    func gradchecked(_ mode: GradcheckMode) throws {
        let result = try gradcheck({ try Tensor.custom(OpSpec.exampleCustomOperator, $0).sum() }, at: [t([0.5, -1.2, 2]), t([1.5, 0.3, -0.7])], mode: mode)
        #expect(result.passed, "\(result)")
        #expect(try gradcheck({ try Tensor.custom(OpSpec.exampleCustomOperator, $0).sum() }, at: [t([0.5]), t([1.5])], mode: mode, order: 2).passed)
        let y = try Tensor.custom(OpSpec.exampleCustomOperator, [t([2]), t([3])])
        #expect(y.doubles == [18])
    }

    @Test("wrong gradient shapes or dtypes, aliasing outputs, a missing VJP and bad names are refused with the operator's name")
    func validation() throws {
        #expect { _ = try gradient(at: t([1, 2])) { try Tensor.custom("test.badShape", [$0]).sum() } } throws: {
            ($0 as? AutodiffError) == .customDerivative(name: "test.badShape", detail: "the cotangent of input 0 is f64[], the input is f64[2]")
        }
        #expect { _ = try gradient(at: t([1, 2])) { try Tensor.custom("test.badDType", [$0]).sum() } } throws: {
            "\($0)".contains("test.badDType") && "\($0)".contains("f32")
        }
        #expect(throws: CustomOperatorError.outputAliasesInput(name: "test.alias", input: 0)) { try Tensor.custom("test.alias", [t([1])]) }
        #expect { _ = try gradient(at: t([1])) { try Tensor.custom("test.noVJP", [$0]).sum() } } throws: { "\($0)".contains("without a VJP") }
        #expect(throws: CustomOperatorError.unknown(name: "nope")) { try Tensor.custom("nope", [t([1])]) }
        #expect(throws: CustomOperatorError.duplicate(name: OpSpec.exampleCustomOperator)) {
            try CustomOperators.register(CustomOperator(name: OpSpec.exampleCustomOperator, forward: { $0[0] }))
        }
    }

    @Test("a custom call is recorded on the tape under its name")
    func recorded() throws {
        let (_, pullback) = try vjp(at: t([1, 2])) { try Tensor.custom(OpSpec.exampleCustomOperator, [$0, t([3, 4])]) }
        #expect(try pullback(t([1, 1])).doubles == [9, 16])
    }
}
