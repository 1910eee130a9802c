import Adjoint
import AdjointTestSupport
import Testing

/// Swift scalars as operands of every binary operator, comparison and selection; constants in the
/// tensor's own dtype.
@Suite("Scalar operands")
struct ScalarOperandTests {
    @Test("comparisons, select, maximum, minimum and clamping take Swift scalars")
    func comparisonsAndSelection() throws {
        let x = try Tensor([-2.0, 0, 3])
        #expect(try x.greater(0).scalars(as: Bool.self) == [false, false, true])
        #expect(try x.greaterEqual(0).scalars(as: Bool.self) == [false, true, true])
        #expect(try x.less(0).scalars(as: Bool.self) == [true, false, false])
        #expect(try x.lessEqual(-2).scalars(as: Bool.self) == [true, false, false])
        #expect(try x.equal(3).scalars(as: Bool.self) == [false, false, true])
        #expect(try x.notEqual(3).scalars(as: Bool.self) == [true, true, false])
        #expect(try Tensor.select(x.greater(0), x, 0).doubles == [0, 0, 3])
        #expect(try Tensor.select(x.greater(0), -1, x).doubles == [-2, 0, -1])
        #expect(try x.maximum(0).doubles == [0, 0, 3] && x.minimum(1).doubles == [-2, 0, 1])
        #expect(try x.clamped(to: -1.0 ... 2.0).doubles == [-1, 0, 2])
        #expect(try x.pow(2).doubles == [4, 0, 9])
        #expect(try (1 - x).doubles == [3, 1, -2] && (x / 2).doubles == [-1, 0, 1.5] && (6 / Tensor([2.0, 3])).doubles == [3, 2])
        #expect(try x.adding(1).doubles == [-1, 1, 4] && x.multiplying(Float(2)).doubles == [-4, 0, 6])
        let ints = try Tensor([Int64(1) << 60, 5])
        #expect(try ints.greater(Int64(1) << 59).scalars(as: Bool.self) == [true, false])
        #expect(try ints.equal((Int64(1) << 60) + 1).scalars(as: Bool.self) == [false, false])
    }

    @Test("a Float constant stays exact on a float32 tensor; a Double one rounds to nearest")
    func constantsKeepTheDtype() throws {
        let x = try Tensor([Float(1), 2])
        #expect(Float.pi != Float(Double.pi))      // the difference this test is about
        #expect(try (x * Float.pi).scalars(as: Float.self) == [Float.pi, 2 * Float.pi])
        #expect(try (x * Double.pi).scalars(as: Float.self) == [Float(Double.pi), 2 * Float(Double.pi)])
        #expect(try (x * Float.pi).dtype == .float32 && (Float.pi * x).dtype == .float32)
        #expect(try x.scalarLike(Float.pi).scalars(as: Float.self) == [Float.pi])
        let y = try Tensor([1.0])
        #expect(try (y * Float.pi).item() == Double(Float.pi))
        #expect(try Tensor([Int64.max]).scalarLike(Int64.max).scalars(as: Int64.self) == [Int64.max])
    }

    @Test("scalar operands differentiate like tensor operands")
    func derivatives() throws {
        let x = try Tensor([0.5, -1.5, 2])
        let g = try gradient(at: x) { x in try (Tensor.select(x.greater(0), x * 3, 0.5) + x.maximum(1).pow(2)).sum() }
        #expect(g.doubles == [3, 0, 3 + 4])
    }
}
