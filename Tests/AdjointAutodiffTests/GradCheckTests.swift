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

    @Test("forward mode matches central differences and the forward- and reverse-mode Jacobians agree", arguments: OpSpec.table)
    func forward(_ spec: OpSpec) throws {
        let result = try spec.check(mode: .both)
        #expect(Set(result.errors.keys) == [.reverse, .forward, .jacobianAgreement])
        #expect(result.passed, "\(spec): \(result.errors)")
    }

    @Test("Hessian-vector products (forward-over-reverse and reverse-over-reverse) match differences of gradients",
          arguments: OpSpec.table)
    func secondOrder(_ spec: OpSpec) throws {
        let result = try spec.check(mode: .both, order: 2)
        #expect(Set(result.errors.keys) == [.hvpForwardOverReverse, .hvpReverseOverReverse])
        #expect(result.passed, "\(spec): \(result.errors)")
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
        let forward = try gradcheck({ xs in try xs[0] * withoutDerivative(at: xs[0]) }, at: [x], mode: .forward)
        #expect(!forward.passed && forward.worstError(.forward)! > 0.1)
        // Second order: for x²·stop(x) the recorded gradient is 2x·stop(x), whose derivative along
        // the recorded program is 2·stop(x); differences of that gradient see d/dx 2x² = 4x.
        let second = try gradcheck({ xs in try xs[0] * xs[0] * withoutDerivative(at: xs[0]) }, at: [x], mode: .both, order: 2)
        #expect(!second.passed && second.worstError(.hvpForwardOverReverse)! > 0.1 && second.worstError(.hvpReverseOverReverse)! > 0.1)
    }

    @Test("a bad order is a typed error")
    func badOrder() {
        #expect(throws: TensorError.self) { try gradcheck({ $0[0] }, at: [t([1])], order: 3) }
    }
}
