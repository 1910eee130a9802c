import Adjoint
import Foundation

/// A building heated through its floor: an electrically heated hot-water tank pumps water through a
/// pipe loop embedded in a concrete slab, which warms the room above it. Explicit Euler steps of
/// 30 s; `segments` pipe and slab nodes along the loop.
///
/// State: tank temperature, the water temperature in each pipe segment, the temperature of each slab
/// segment, and the room air temperature (°C). Parameters: 21 physical constants (``names``), held
/// as log-multipliers `u` of their nominal values (`θᵢ = nominalᵢ · exp(uᵢ)`), so every parameter is
/// on the same scale for an optimizer. Input per step: `[cos φ, max(0, sin φ)]` of the time of day,
/// driving the outdoor temperature and solar gain.
///
/// The fit (`fit(target:steps:iterations:schedule:progress:)`) sizes the *design* parameters —
/// heater power, set point, controller gain, pump flow, pipe–slab conductance (pipe spacing) and
/// tank insulation — so that the slab reaches a target temperature after a given time; the environment parameters keep
/// their nominal values but get gradients too.
public struct ThermalModel {
    /// The physical parameters, in order, with units.
    public static let names = [
        "tankCapacity J/K", "heaterPower W", "setPoint °C", "controllerGain 1/K", "tankLoss W/K", "tankAmbient °C",
        "flowRate kg/s", "waterHeat J/(kg·K)", "pipeSegmentCapacity J/K", "pipeSlabConductance W/K",
        "slabSegmentCapacity J/K", "slabLateralConductance W/K", "slabRoomConductance W/K", "slabGroundConductance W/K",
        "groundTemperature °C", "roomCapacity J/K", "envelopeConductance W/K", "outdoorMean °C", "outdoorSwing K",
        "solarGain W", "internalGain W",
    ]
    /// Nominal values of ``names``.
    public static let nominal: [Double] = [
        1.256e6, 6000, 55, 1.0, 3, 18,
        0.08, 4186, 16_744, 60,
        2.0e6, 20, 50, 5,
        10, 1.0e6, 150, 2, 5,
        1500, 300,
    ]
    /// Indices of the parameters the fit adjusts.
    public static let design = [1, 2, 3, 4, 6, 9]

    public typealias Step = TensorStep<State, Tensor, Tensor, NoOutput>

    /// Temperatures in °C.
    public struct State: ParameterCollection {
        public var tank: Tensor, pipe: Tensor, slab: Tensor, room: Tensor
        public mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("tank", &tank)
            try visit("pipe", &pipe)
            try visit("slab", &slab)
            try visit("room", &room)
        }
    }

    public let segments: Int
    public let dt: Double

    public init(segments: Int = 8, dt: Double = 30) {
        self.segments = segments
        self.dt = dt
    }

    /// All parameters at their nominal values (`u = 0`).
    public var nominalParameters: Tensor { try! Tensor.zeros([Self.names.count]) }

    /// A cold start: tank at 50 °C, loop water at 20 °C, slab and room at 19 °C.
    public var initialState: State {
        State(tank: try! Tensor.full([1], 50), pipe: try! Tensor.full([segments], 20),
              slab: try! Tensor.full([segments], 19), room: try! Tensor.full([1], 19))
    }

    /// `[cos φ, max(0, sin φ)]` at step `k`, φ the phase of the day.
    public func forcing(_ k: Int) -> Tensor {
        let (cosine, daylight) = forcingValues(k)
        return try! Tensor([cosine, daylight], shape: [2])
    }

    /// The same inputs as ``forcing(_:)`` from one tensor refilled in place at each call
    /// (`Tensor.withUnsafeMutableScalars(as:_:)`): once the unroll has let go of the previous
    /// step's input — the packed unroll of a `CompiledStep` copies it into its frame and drops it —
    /// producing an input allocates nothing. Where something still holds the previous one (an
    /// input cache, a tape), the refill writes a copy, so every step sees its own values.
    public func forcingInputs() -> (Int) throws -> Tensor {
        var x = forcing(0)
        return { k in
            let (cosine, daylight) = forcingValues(k)
            try x.withUnsafeMutableScalars(as: Double.self) { $0[0] = cosine; $0[1] = daylight }
            return x
        }
    }

    private func forcingValues(_ k: Int) -> (cosine: Double, daylight: Double) {
        let phase = 2 * Double.pi * Double(k) * dt / 86_400
        return (cos(phase), max(0, sin(phase)))
    }

    /// The step, written with Adjoint tensors.
    public var step: Step {
        let n = segments, dt = dt
        let nominal = try! Tensor(Self.nominal, shape: [Self.names.count])
        return Step { s, x, u in
            let p = try nominal * u.exp()
            func q(_ i: Int) throws -> Tensor { try p.slice([i..<i + 1]) }
            let heat = try q(1) * (try q(3) * (try q(2) - s.tank)).sigmoid()
            let flow = try q(6) * q(7)
            let upstream = try Tensor.concat([s.tank, try s.pipe.slice([0..<n - 1])])
            let toSlab = try q(9) * (s.pipe - s.slab)
            let pipe = try s.pipe + dt * ((try flow * (upstream - s.pipe) - toSlab) / q(8))
            let left = try Tensor.concat([try s.slab.slice([0..<1]), try s.slab.slice([0..<n - 1])])
            let right = try Tensor.concat([try s.slab.slice([1..<n]), try s.slab.slice([n - 1..<n])])
            let lateral = try q(11) * (left + right - 2 * s.slab)
            let toRoom = try q(12) * (s.slab - s.room)
            let toGround = try q(13) * (s.slab - q(14))
            let slab = try s.slab + dt * ((try toSlab + lateral - toRoom - toGround) / q(10))
            let returnWater = try s.pipe.slice([n - 1..<n])
            let tank = try s.tank + dt * ((try heat - flow * (s.tank - returnWater) - q(4) * (s.tank - q(5))) / q(0))
            let outdoor = try q(17) + q(18) * x.slice([0..<1])
            let gains = try q(19) * x.slice([1..<2]) + q(20)
            let room = try s.room + dt * ((try toRoom.sum() - q(16) * (s.room - outdoor) + gains) / q(15))
            return (State(tank: tank, pipe: pipe, slab: slab, room: room), NoOutput())
        }
    }

    /// `(mean slab[T] − target)²`: how far the slab's final temperature is from the target.
    public func loss(target: Double) -> Step.Loss {
        .final { s in try (s.slab.mean() - target).pow(2) }
    }

    /// The loss and its gradient after `steps` steps.
    public func gradient(parameters: Tensor, target: Double = 23, steps: Int, schedule: CheckpointSchedule,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, from: initialState, parameters: parameters, steps: steps, loss: loss(target: target),
                   schedule: schedule, options: options, inputs: forcing)
    }

    /// Adam on the design parameters (cosine-decayed learning rate from 0.05 in log space); returns the fitted
    /// parameters and the loss before each iteration and after the last. `observe` sees each
    /// iteration's unroll result and the parameters it was taken at.
    public func fit(target: Double = 23, steps: Int, iterations: Int, schedule: CheckpointSchedule = .binomial(snapshots: 16),
                    observe: ((Int, UnrollResult<Step>, Tensor) throws -> Void)? = nil) throws -> (parameters: Tensor, losses: [Double]) {
        var u = nominalParameters
        var adam = try Adam(learningRate: .cosine(base: 0.05, minimum: 0.002, steps: max(1, iterations)))
        var mask = [Double](repeating: 0, count: Self.names.count)
        for i in Self.design { mask[i] = 1 }
        let designMask = try Tensor(mask, shape: [mask.count])
        var losses: [Double] = []
        for i in 0..<iterations {
            let result = try gradient(parameters: u, target: target, steps: steps, schedule: schedule)
            losses.append(result.loss)
            try observe?(i, result, u)
            try adam.update(&u, along: try result.parameterGradient * designMask)
        }
        losses.append(try gradient(parameters: u, target: target, steps: steps, schedule: schedule).loss)
        return (u, losses)
    }
}
