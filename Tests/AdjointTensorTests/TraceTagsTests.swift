import Adjoint
import Testing

@Suite("Trace tags and the direct elementwise dispatch path")
struct TraceTagsTests {
    final class Payload {}

    @Test("tags of one and several levels: lookup, replacement, removal, payloads, value semantics")
    func tags() {
        var tags = TraceTags()
        #expect(tags.isEmpty && tags.count == 0 && tags.all.isEmpty && tags.id(at: 1) == nil && tags.tag(at: 1) == nil)

        let p1 = Payload(), p2 = Payload()
        tags.set(TraceTag(level: 7, id: 3, payload: p1))
        #expect(!tags.isEmpty && tags.count == 1 && tags.id(at: 7) == 3 && tags.id(at: 8) == nil)
        #expect(tags.tag(at: 7)?.payload === p1)

        let single = tags
        tags.set(TraceTag(level: 9, id: 4, payload: p2))
        #expect(tags.count == 2 && tags.id(at: 7) == 3 && tags.id(at: 9) == 4)
        #expect(tags.tag(at: 7)?.payload === p1 && tags.tag(at: 9)?.payload === p2)
        #expect(tags.all.map(\.level) == [7, 9])
        #expect(single.count == 1 && single.id(at: 9) == nil)   // the copy did not change

        tags.set(TraceTag(level: 9, id: 5))                      // replaces level 9's tag
        #expect(tags.count == 2 && tags.id(at: 9) == 5 && tags.tag(at: 9)?.payload == nil)

        let both = tags
        tags.remove(level: 7)                                    // the first goes; the second stays
        #expect(tags.count == 1 && tags.id(at: 7) == nil && tags.id(at: 9) == 5)
        #expect(both.count == 2 && both.id(at: 7) == 3)

        tags.remove(level: 42)                                   // absent: no change
        #expect(tags.count == 1 && tags.id(at: 9) == 5)
        tags.remove(level: 9)
        #expect(tags.isEmpty && tags.count == 0)

        var one = TraceTags()
        one.set(TraceTag(level: 2, id: 1, payload: p1))
        one.set(TraceTag(level: 2, id: 6, payload: p2))          // same level: replaced in place
        #expect(one.count == 1 && one.id(at: 2) == 6 && one.tag(at: 2)?.payload === p2)
    }

    /// Counts the calls a level is offered.
    final class Counter: InterpreterLevel {
        let levelID = InterpreterStack.makeLevelID()
        var ops: [OpCode] = []
        func process(_ call: inout OpCall) throws { ops.append(call.op) }
    }

    static let binaryOps: [OpCode] = [.add, .sub, .mul, .div, .pow, .maximum, .minimum]
    static let unaryOps: [OpCode] = [.neg, .abs, .sign, .exp, .expm1, .log, .log1p, .sqrt, .rsqrt, .sin, .cos, .tanh, .sigmoid, .relu, .softplus]

    @Test("the direct path gives bitwise the results of dispatch, broadcasting included, in f64 and f32")
    func directMatchesDispatch() throws {
        for dtype in [DType.float64, .float32] {
            let a = try Tensor.uniform([3, 4], key: RandomKey(seed: 1), low: 0.5, high: 2, dtype: dtype)
            let b = try Tensor.uniform([4], key: RandomKey(seed: 2), low: 0.5, high: 2, dtype: dtype)
            for op in Self.binaryOps {
                for (x, y) in [(a, b), (b, a), (a, a)] {
                    let direct = try dispatchBinary(op, x, y), general = try dispatch1(op, .none, [x, y])
                    #expect(direct.shape == general.shape && direct.doubles == general.doubles, "\(op.rawValue)")
                }
            }
            for op in Self.unaryOps {
                #expect(try dispatchUnary(op, a).doubles == dispatch1(op, .none, [a]).doubles, "\(op.rawValue)")
            }
        }
    }

    @Test("under a tape the elementwise path records what dispatch records: same values, same gradients, bitwise")
    func recordedLikeDispatch() throws {
        let a = try Tensor.uniform([3, 4], key: RandomKey(seed: 3), low: 0.5, high: 2)
        let b = try Tensor.uniform([4], key: RandomKey(seed: 4), low: 0.5, high: 2)
        for op in Self.binaryOps {
            let direct = try valueWithGradient(at: a, b) { x, y in try dispatchBinary(op, x, y).sum() }
            let general = try valueWithGradient(at: a, b) { x, y in try dispatch1(op, .none, [x, y]).sum() }
            #expect(direct.value.doubles == general.value.doubles, "\(op.rawValue)")
            #expect(direct.gradient.0.doubles == general.gradient.0.doubles && direct.gradient.1.doubles == general.gradient.1.doubles,
                    "\(op.rawValue)")
        }
        for op in Self.unaryOps {
            let direct = try valueWithGradient(at: a) { x in try dispatchUnary(op, x).sum() }
            let general = try valueWithGradient(at: a) { x in try dispatch1(op, .none, [x]).sum() }
            #expect(direct.value.doubles == general.value.doubles && direct.gradient.doubles == general.gradient.doubles, "\(op.rawValue)")
        }
        // An untracked operand is a constant on the tape either way.
        let c = try valueWithGradient(at: a) { x in try dispatchBinary(.mul, x, b).sum() }
        #expect(c.gradient.doubles == (try b.broadcast(to: [3, 4])).doubles)
    }

    @Test("levels, limits and mixed precision still see or shape every elementwise call")
    func fallsBackWhenObserved() throws {
        let x = try Tensor([1.0, 2, 3], shape: [3]).cast(to: .float32), y = try Tensor([0.5, 0.25, 4], shape: [3]).cast(to: .float32)
        let counter = Counter()
        _ = try InterpreterStack.current.withLevel(counter) { try (x * y).exp() }
        #expect(counter.ops == [.mul, .exp])
        _ = try (x * y).exp()                                    // outside the level: not offered
        #expect(counter.ops == [.mul, .exp])

        // Under float16 storage the product is rounded to half precision, exactly as `dispatch1` does.
        let big = try Tensor([1.0 + 1.0 / 1024, 3], shape: [2]).cast(to: .float32)
        let rounded = try MixedPrecision.with(.float16) { try big * big }
        #expect(rounded.doubles == (try MixedPrecision.with(.float16) { try dispatch1(.mul, .none, [big, big]) }).doubles)
        #expect(rounded.doubles != (try big * big).doubles)

        // Resource limits apply to elementwise calls too.
        let wide = try Tensor.zeros([64], dtype: .float32)
        #expect(throws: ResourceError.self) {
            try ResourceLimits(maxElementsPerTensor: 16).enforce { _ = try wide + wide }
        }
        // And the direct path reports bad operands as dispatch does.
        #expect(throws: TensorError.self) { _ = try dispatchBinary(.add, x, try Tensor([1.0, 2], shape: [2]).cast(to: .float32)) }
        #expect(throws: TensorError.self) { _ = try dispatchBinary(.add, x, try Tensor([1.0, 2, 3], shape: [3])) }
    }
}
