import Adjoint
import Foundation

/// A ball dropped onto the floor: gravity, quadratic air drag, and an inelastic bounce. Symplectic
/// Euler steps of `dt`; when a step ends below the floor, the ball is reflected: `h ← −e·h`,
/// `v ← −e·v` (`e` the coefficient of restitution).
///
/// **What the derivative means at an impact.** The bounce is a branch (`select` on `h < 0`), and a
/// branch condition has derivative zero, so the gradient is that of the executed sequence of
/// branches: exact for the discrete program, and equal to the true derivative of the loss wherever
/// a small change of the parameters does not move an impact to another step. It does not include
/// the "saltation" term of the continuous system (how moving the impact *time* changes the state);
/// the discrete loss jumps where an impact changes step, and there the gradient describes only the
/// piece the parameters are on. `BouncingBallTests` shows both: agreement with central
/// differences between switches, and a jump in the loss across one.
public struct BouncingBall {
    /// `[gravity m/s², restitution, drag 1/m]`.
    public static let names = ["gravity m/s²", "restitution", "drag 1/m"]
    public static let nominal: [Double] = [9.81, 0.8, 0.02]

    public typealias Step = TensorStep<State, Void, Tensor, NoOutput>

    public struct State: ParameterCollection {
        /// Height above the floor (m) and vertical velocity (m/s), one element each.
        public var height: Tensor, velocity: Tensor
        public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("height", &height)
            try visit("velocity", &velocity)
        }
    }

    public let dt: Double
    public init(dt: Double = 0.005) { self.dt = dt }

    public var nominalParameters: Tensor { try! Tensor(Self.nominal, shape: [3]) }

    /// Dropped from `height` at rest.
    public func initialState(height: Double = 2) -> State {
        State(height: try! Tensor.full([1], height), velocity: try! Tensor.zeros([1]))
    }

    public var step: Step {
        let dt = dt
        return Step { s, _, p in
            let g = try p.slice([0..<1]), e = try p.slice([1..<2]), drag = try p.slice([2..<3])
            let v = try s.velocity - dt * (try g + drag * s.velocity * s.velocity.abs())
            let h = try s.height + dt * v
            let below = try h.less(try h.scalarLike(0))
            let bounced = try Tensor.select(below, try e.neg() * h, h)
            let rebound = try Tensor.select(below, try e.neg() * v, v)
            return (State(height: bounced, velocity: rebound), NoOutput())
        }
    }

    /// `(h[T] − target)²`.
    public func loss(targetHeight: Double) -> Step.Loss {
        .final { s in try (s.height - targetHeight).pow(2).sum() }
    }

    public func gradient(parameters: Tensor, dropHeight: Double = 2, targetHeight: Double = 0.5, steps: Int,
                         schedule: CheckpointSchedule, options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, from: initialState(height: dropHeight), parameters: parameters, steps: steps,
                   loss: loss(targetHeight: targetHeight), schedule: schedule, options: options) { _ in () }
    }
}
