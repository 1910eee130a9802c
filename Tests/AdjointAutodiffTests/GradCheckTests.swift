import Adjoint
import AdjointTestSupport
import Testing

@Suite("gradcheck over the op-spec table")
struct GradCheckTests {
    @Test("reverse mode matches float64 central differences", arguments: OpSpec.table)
    func opSpec(_ spec: OpSpec) throws {
        let result = try spec.check()
        #expect(result.passed, "\(spec): worst error \(result.worstError) > \(result.tolerance); per input \(result.maxRelativeError)")
    }

    @Test("every differentiable operator has at least one op-spec case")
    func coverage() {
        let covered = Set(OpSpec.table.map(\.op))
        for (op, status) in DerivativeRules.statusTable where status == .differentiable {
            #expect(covered.contains(op), "\(op.rawValue) is differentiable but has no op-spec case")
        }
    }

    @Test("gradcheck catches a wrong derivative")
    func detectsWrongRule() throws {
        // A function whose gradient path deliberately drops a term: d/dx [x · stopgrad(x)] = x, not 2x.
        let x = t([0.5, -1.5, 2.0])
        let result = try gradcheck({ xs in try xs[0] * withoutDerivative(at: xs[0]) }, at: [x])
        #expect(!result.passed)
        #expect(result.worstError > 0.1)
    }
}
