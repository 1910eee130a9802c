import RealModule
#if canImport(Glibc)
import Glibc
#endif

/// The floating-point types kernels compute in (`Double`, `Float`), which evaluate the
/// ``Pointwise`` formulas themselves.
package protocol KernelFloat: BinaryFloatingPoint, Real, TensorScalar, Sendable, ElementValue
    where Self.Magnitude == Self, Failure == Never, Condition == Bool {
    /// C `pow`: defined for negative bases with integral exponents, unlike `Real.pow`.
    static func cPow(_ x: Self, _ y: Self) -> Self
    /// The correctly rounded square root as the hardware instruction (generic `squareRoot()` can
    /// end up as a libm call per element, which does not vectorize).
    static func hardwareSquareRoot(_ x: Self) -> Self
}

extension Double: KernelFloat {
    @inlinable package static func cPow(_ x: Double, _ y: Double) -> Double { Glibc.pow(x, y) }
    @inlinable @inline(__always) package static func hardwareSquareRoot(_ x: Double) -> Double { x.squareRoot() }
}
extension Float: KernelFloat {
    @inlinable package static func cPow(_ x: Float, _ y: Float) -> Float { Glibc.powf(x, y) }
    @inlinable @inline(__always) package static func hardwareSquareRoot(_ x: Float) -> Float { x.squareRoot() }
}
