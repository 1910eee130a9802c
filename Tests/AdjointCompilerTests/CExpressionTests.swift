@testable import AdjointCompiler
import AdjointIR
import AdjointTensor
import Testing

/// The native code's elementwise helpers are the `Pointwise` formulas printed as C.
@Suite("Formulas printed as C")
struct CExpressionTests {
    @Test("every elementwise operator gets a helper per element type, printed from its formula")
    func helpers() {
        let helpers = NativeCodeGenerator.helpers
        for op in OpCode.allCases {
            let isElementwise = Pointwise.unary(op, 1.0) != nil || Pointwise.binary(op, 1.0, 1.0) != nil
            for float64 in [true, false] {
                let name = NativeCodeGenerator.helperName(op, float64: float64)
                #expect(helpers.contains(" \(name)(") == isElementwise, "\(op.rawValue)")
            }
        }
        #expect(helpers.contains("static inline __attribute__((always_inline)) double adjoint_elementwise_exp_d(double x) { return exp(x); }"))
        #expect(helpers.contains("static inline __attribute__((always_inline)) float adjoint_binary_add_f(float a, float b) { return (a + b); }"))
    }

    @Test("a named value inside a branch is a variable of that branch only; constants keep the element type")
    func branchesAndConstants() {
        let scope = CExpression.Scope(float64: false)
        let x = CExpression("x", scope)
        let sigmoid = Pointwise.sigmoid(x)
        #expect(sigmoid.text == "((x >= 0.0f) ? (1.0f / (1.0f + expf((-x)))) : ({ float v1 = expf(x); (v1 / (1.0f + v1)); }))")
        #expect(scope.body(returning: sigmoid).hasPrefix("return "), "no variable outside the branches")
        let outer = CExpression.Scope(float64: true)
        let e = CExpression("x", outer).exp().named()
        #expect(e.text == "v1" && outer.body(returning: e) == "double v1 = exp(x); return v1;")
        #expect(CExpression("x", outer).constant(-0.5).text == "(-0.5)" && x.constant(2).text == "2.0f")
    }
}
