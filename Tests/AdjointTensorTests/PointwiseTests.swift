@testable import AdjointTensor
import AdjointIR
import Testing
import Foundation

/// The elementwise formulas (`Pointwise`) are the kernels' definition: evaluated over one float they
/// give the dispatched kernel's element bit for bit, in both element types, on values where
/// implementations part ways.
@Suite("Pointwise formulas")
struct PointwiseTests {
    static let edges: [Double] = [-0.0, 0.0, .nan, .infinity, -.infinity, 1e-310, -1e-310, 710, -745, 0.5, -2.5, 1, -1, 3e38, 1e-40, 40, -40]

    static let unary: [OpCode] = [.neg, .abs, .sign, .exp, .expm1, .log, .log1p, .sqrt, .rsqrt, .sin, .cos, .tanh, .sigmoid, .relu, .softplus]
    static let binary: [OpCode] = [.add, .sub, .mul, .div, .pow, .maximum, .minimum]

    /// The same value bit for bit (float32 widens exactly), or both NaN.
    static func same<T: KernelFloat>(_ a: T, _ b: T) -> Bool { a.isNaN ? b.isNaN : Double(a).bitPattern == Double(b).bitPattern }

    static func check<T: KernelFloat>(_: T.Type, _ dtype: DType) throws {
        let values = Self.edges.map { T($0) }
        let x = try Tensor(values.map { $0.doubleValue }, shape: [values.count]).cast(to: dtype)
        for op in unary {
            let kernel = try dispatch1(op, .none, [x]).scalars(as: T.self)
            for (i, v) in values.enumerated() {
                let formula = try #require(Pointwise.unary(op, v), "\(op.rawValue) has a formula")
                #expect(same(formula, kernel[i]),
                        "\(op.rawValue)(\(v)) in \(dtype): formula \(formula), kernel \(kernel[i])")
            }
        }
        for op in binary {
            let a = try Tensor(values.flatMap { v in values.map { _ in v.doubleValue } }, shape: [values.count * values.count]).cast(to: dtype)
            let b = try Tensor(values.flatMap { _ in values.map { $0.doubleValue } }, shape: [values.count * values.count]).cast(to: dtype)
            let kernel = try dispatch1(op, .none, [a, b]).scalars(as: T.self)
            for (i, u) in values.enumerated() {
                for (j, v) in values.enumerated() {
                    let formula = try #require(Pointwise.binary(op, u, v))
                    let k = kernel[i * values.count + j]
                    #expect(same(formula, k), "\(op.rawValue)(\(u), \(v)) in \(dtype)")
                }
            }
        }
    }

    @Test("each formula over one float is the kernel's element, float64 and float32")
    func formulasAreTheKernels() throws {
        try Self.check(Double.self, .float64)
        try Self.check(Float.self, .float32)
    }

    @Test("operators outside the elementwise families have no formula")
    func onlyElementwise() {
        for op in OpCode.allCases where !Self.unary.contains(op) && !Self.binary.contains(op) {
            #expect(Pointwise.unary(op, 1.0) == nil && Pointwise.binary(op, 1.0, 2.0) == nil, "\(op.rawValue)")
        }
    }

    @Test("float32 tanh is the correctly rounded tanh (one ulp off at most, and on fewer than 1 in 100,000 sampled inputs); signs, zeros, NaN and infinities as libm")
    func float32Tanh() throws {
        // Every 1,999th float from 2^-30 to 2^5 and its negation, and the edges.
        var inputs: [Float] = [0, -0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, -.leastNonzeroMagnitude, .greatestFiniteMagnitude,
                               0x1p-12, -0x1p-12, Float(0x1p-12).nextDown, 9, 9.1, 10, 10.5, 20, -20, 1e30]
        var bits = Float(0x1p-30).bitPattern
        while bits < Float(32).bitPattern {
            inputs += [Float(bitPattern: bits), -Float(bitPattern: bits)]
            bits += 1999
        }
        var offByOne = 0
        for x in inputs {
            let y = x.tanh(), exact = Float(Foundation.tanh(Double(x)))
            if x.isNaN {
                #expect(y.isNaN)
                continue
            }
            #expect(y.sign == x.sign, "tanh(\(x)) = \(y)")
            if y != exact {
                offByOne += 1
                #expect(y == exact.nextUp || y == exact.nextDown, "tanh(\(x)) = \(y), correctly rounded \(exact)")
            }
        }
        #expect(inputs.count > 200_000 && offByOne * 100_000 < inputs.count, "\(offByOne) of \(inputs.count) one ulp off")
        // The kernel's element is the formula's (the dispatch and formula check above covers edges).
        let x = try Tensor(inputs.prefix(4096).map { Double($0) }, shape: [4096]).cast(to: .float32)
        #expect(try x.tanh().scalars(as: Float.self).elementsEqual(inputs.prefix(4096).map { $0.tanh() }) { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
    }
}
