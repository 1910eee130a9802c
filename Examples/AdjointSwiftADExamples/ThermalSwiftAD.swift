import _Differentiation
import AdjointExamples
import AdjointStateful
import AdjointSwiftAD
import Foundation

/// `ThermalModel` written in plain Swift and differentiated by the toolchain's
/// `_Differentiation` (the adapter-(c) form of the thermal benchmark): the same equations, the same
/// 21 log-multiplier parameters, the same forcing.
public struct ThermalSwiftAD {
    @SwiftADState
    public struct State: Differentiable, Codable {
        public var tank: Double
        public var pipe: [Double]
        public var slab: [Double]
        public var room: Double
    }

    /// `[cos φ, max(0, sin φ)]` of the time of day.
    public struct Forcing {
        public var cosine: Double, daylight: Double
    }

    public typealias Step = SwiftADStep<State, Forcing, [Double]>

    public let segments: Int
    public let dt: Double

    public init(segments: Int = 8, dt: Double = 30) {
        self.segments = segments
        self.dt = dt
    }

    public var nominalParameters: [Double] { [Double](repeating: 0, count: ThermalModel.names.count) }

    public var initialState: State {
        State(tank: 50, pipe: [Double](repeating: 20, count: segments), slab: [Double](repeating: 19, count: segments), room: 19)
    }

    public func forcing(_ k: Int) -> Forcing {
        let phase = 2 * Double.pi * Double(k) * dt / 86_400
        return Forcing(cosine: cos(phase), daylight: max(0, sin(phase)))
    }

    public var step: Step {
        let dt = dt
        return Step { s, x, u in thermalStep(s, x, u, dt: dt) }
    }

    /// `(mean slab[T] − target)²`.
    public func loss(target: Double) -> Step.Loss {
        .final { s in
            let mean = s.slab.differentiableReduce(0, +) / withoutDerivative(at: Double(s.slab.count))
            return (mean - target) * (mean - target)
        }
    }

    public func gradient(parameters: [Double], target: Double = 23, steps: Int, schedule: CheckpointSchedule,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(step, from: initialState, parameters: parameters, steps: steps, loss: loss(target: target),
                   schedule: schedule, options: options, inputs: forcing)
    }

    /// The loss and gradient the plain `_Differentiation` way, with no checkpointing: one pullback
    /// through the whole loop, which keeps every step's intermediate values.
    public func plainGradient(parameters: [Double], target: Double = 23, steps: Int) -> (loss: Double, gradient: [Double]) {
        let s0 = initialState, dt = dt, forcings = (0..<steps).map(forcing)
        let final = loss(target: target).final!
        let (value, g) = valueWithGradient(at: parameters) { u -> Double in
            var s = s0
            for k in 0..<withoutDerivative(at: steps) { s = thermalStep(s, forcings[k], u, dt: dt) }
            return final(densified(s))
        }
        return (value, g.base)
    }
}

@differentiable(reverse, wrt: (s, u))
func thermalStep(_ s: ThermalSwiftAD.State, _ x: ThermalSwiftAD.Forcing, _ u: [Double], dt: Double) -> ThermalSwiftAD.State {
    let nominal = ThermalModel.nominal
    func q(_ i: Int) -> Double { nominal[i] * exp(u[i]) }
    let n = withoutDerivative(at: s.pipe.count)
    let heat = q(1) / (1 + exp(-(q(3) * (q(2) - s.tank))))
    let flow = q(6) * q(7)
    var pipe: [Double] = []
    var slab: [Double] = []
    var toRoomTotal = 0.0
    for i in 0..<n {
        let upstream = i == 0 ? s.tank : s.pipe[i - 1]
        let toSlab = q(9) * (s.pipe[i] - s.slab[i])
        pipe.append(s.pipe[i] + dt * ((flow * (upstream - s.pipe[i]) - toSlab) / q(8)))
        let left = i == 0 ? s.slab[0] : s.slab[i - 1]
        let right = i == n - 1 ? s.slab[n - 1] : s.slab[i + 1]
        let lateral = q(11) * (left + right - 2 * s.slab[i])
        let toRoom = q(12) * (s.slab[i] - s.room)
        let toGround = q(13) * (s.slab[i] - q(14))
        slab.append(s.slab[i] + dt * ((toSlab + lateral - toRoom - toGround) / q(10)))
        toRoomTotal = toRoomTotal + toRoom
    }
    let tank = s.tank + dt * ((heat - flow * (s.tank - s.pipe[n - 1]) - q(4) * (s.tank - q(5))) / q(0))
    let outdoor = q(17) + q(18) * x.cosine
    let gains = q(19) * x.daylight + q(20)
    let room = s.room + dt * ((toRoomTotal - q(16) * (s.room - outdoor) + gains) / q(15))
    return ThermalSwiftAD.State(tank: tank, pipe: pipe, slab: slab, room: room)
}

/// `s`, whose pullback densifies the cotangent (see ``SwiftADState/zeroTangent``): the final loss
/// reads only the slab, so without this the pipe's cotangent would be an empty array.
@differentiable(reverse)
func densified(_ s: ThermalSwiftAD.State) -> ThermalSwiftAD.State { s }

@derivative(of: densified)
func densifiedVJP(_ s: ThermalSwiftAD.State) -> (value: ThermalSwiftAD.State, pullback: (ThermalSwiftAD.State.TangentVector) -> ThermalSwiftAD.State.TangentVector) {
    let zero = s.zeroTangent
    return (s, { zero + $0 })
}
