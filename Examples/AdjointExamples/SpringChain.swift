import Adjoint
import Foundation

/// A damped chain of `masses` unit masses joined by springs, the first tied to a wall and driven by
/// a sinusoidal force, the last free: `2 · masses` float64 states (positions and velocities),
/// symplectic Euler steps. The long-horizon benchmark runs it for a million steps.
///
/// Parameters `[stiffness N/m, damping 1/s, drive amplitude N]`; loss: the chain's final energy
/// proxy `Σ x² + Σ v²`.
public struct SpringChain {
    public static let names = ["stiffness N/m", "damping 1/s", "drive N"]
    public static let nominal: [Double] = [100, 0.05, 1]

    public typealias Step = TensorStep<State, Tensor, Tensor, NoOutput>

    public struct State: ParameterCollection {
        public var position: Tensor, velocity: Tensor
        public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("position", &position)
            try visit("velocity", &velocity)
        }
    }

    public let masses: Int
    public let dt: Double
    /// Angular frequency of the drive (rad/s).
    public let omega: Double

    /// The benchmark's chain: 500 masses, 1,000 states.
    public init(masses: Int = 500, dt: Double = 0.01, omega: Double = 2) {
        self.masses = masses
        self.dt = dt
        self.omega = omega
    }

    public var nominalParameters: Tensor { try! Tensor(Self.nominal, shape: [3]) }

    /// At rest.
    public var initialState: State {
        State(position: try! Tensor.zeros([masses]), velocity: try! Tensor.zeros([masses]))
    }

    /// `sin(ω t)` at step `k`, as a one-element tensor.
    public func drive(_ k: Int) -> Tensor { try! Tensor.full([1], sin(omega * Double(k) * dt)) }

    public var step: Step {
        let n = masses, dt = dt
        var unit = [Double](repeating: 0, count: n)
        unit[0] = 1
        let first = try! Tensor(unit, shape: [n])
        let wall = try! Tensor.zeros([1])
        return Step { s, drive, p in
            let k = try p.slice([0..<1]), c = try p.slice([1..<2]), amplitude = try p.slice([2..<3])
            let x = s.position
            let left = try Tensor.concat([wall, try x.slice([0..<n - 1])])
            let right = try Tensor.concat([try x.slice([1..<n]), try x.slice([n - 1..<n])])
            let force = try k * (left + right - 2 * x) - c * s.velocity + (try amplitude * drive) * first
            let v = try s.velocity + dt * force
            return (State(position: try x + dt * v, velocity: v), NoOutput())
        }
    }

    public var loss: Step.Loss {
        .final { s in try (s.position * s.position).sum() + (s.velocity * s.velocity).sum() }
    }

    public func gradient(parameters: Tensor, steps: Int, schedule: CheckpointSchedule,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, from: initialState, parameters: parameters, steps: steps, loss: loss, schedule: schedule,
                   options: options, inputs: drive)
    }
}
