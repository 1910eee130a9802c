import _Differentiation
import AdjointStateful
import AdjointTensor
import Foundation
import AdjointIO

/// A state of a ``SwiftADStep``: differentiable with the toolchain's `_Differentiation`, codable
/// (for disk snapshots), and hashable bit for bit (for replay verification).
public protocol SwiftADState: Differentiable, Codable {
    /// Feeds every bit of the state to `hasher`.
    func hash(into hasher: inout StateHasher)
    /// The bytes a snapshot holds in memory.
    var snapshotByteCount: Int { get }
    /// A zero tangent with this state's structure (arrays as long as the state's).
    ///
    /// `_Differentiation` represents the zero of an array's tangent as an empty array, and a
    /// pullback through an array element reads the cotangent at that index, so a cotangent that
    /// never touched an array (a loss that reads only part of the state) must be densified before
    /// it is pulled back. The adapter adds this zero to every cotangent it passes on.
    var zeroTangent: TangentVector { get }
}

/// Adds the ``SwiftADState`` conformance to a struct whose stored properties are states themselves
/// (`Double`, `Float`, arrays of them, other such structs): the bit-exact hash, the snapshot size
/// and the dense zero tangent, over every stored property in declaration order. The struct still
/// declares `Differentiable` and `Codable`, which the compiler derives:
///
/// ```swift
/// @SwiftADState
/// struct Pendulum: Differentiable, Codable {
///     var angle: Float
///     var velocity: Float
/// }
/// ```
@attached(extension, conformances: SwiftADState, names: named(hash), named(snapshotByteCount), named(zeroTangent))
public macro SwiftADState() = #externalMacro(module: "AdjointMacros", type: "SwiftADStateMacro")

extension Double: SwiftADState {
    public func hash(into hasher: inout StateHasher) { hasher.combine(bitPattern) }
    public var snapshotByteCount: Int { 8 }
    public var zeroTangent: Double { 0 }
}

extension Float: SwiftADState {
    public func hash(into hasher: inout StateHasher) { hasher.combine(UInt64(bitPattern)) }
    public var snapshotByteCount: Int { 4 }
    public var zeroTangent: Float { 0 }
}

extension Array: SwiftADState where Element: SwiftADState {
    public func hash(into hasher: inout StateHasher) {
        hasher.combine(UInt64(count))
        for x in self { x.hash(into: &hasher) }
    }
    public var snapshotByteCount: Int { reduce(0) { $0 + $1.snapshotByteCount } }
    // Inlinable (specialized where the element type is known) and with a closure, not a key path:
    // unspecialized, the map instantiated generic metadata and a key path on every call.
    @inlinable public var zeroTangent: TangentVector { TangentVector(map { $0.zeroTangent }) }
}

/// A step written in plain Swift and differentiated by the toolchain's `_Differentiation`:
/// `s[t+1] = body(s[t], x[t], θ)`, run under `AdjointStateful`'s schedules.
///
/// State and parameters conform to `Differentiable`; the loss closures are
/// `@differentiable(reverse)`. This module is the only one in Adjoint that imports
/// `_Differentiation`, which is experimental: nothing else depends on it.
///
/// ```swift
/// @differentiable(reverse) func decay(_ s: Double, _ x: Double, _ k: Double) -> Double { s * k + x }
/// let step = SwiftADStep<Double, Double, Double>(decay)
/// let loss = SwiftADLoss<Double>.final { s in s * s }
/// let result = try unroll(step, from: 1.0, parameters: 0.9, steps: 100, loss: loss,
///                         schedule: .binomial(snapshots: 8)) { _ in 0.1 }
/// ```
public struct SwiftADStep<State: SwiftADState, Input, Parameters: Differentiable>: SwiftADStepFunction {
    public typealias Loss = SwiftADLoss<State>
    public typealias StateCotangent = State.TangentVector
    public typealias ParameterGradient = Parameters.TangentVector

    public let body: @differentiable(reverse) (State, @noDerivative Input, Parameters) -> State
    /// When a step is differentiated (see ``Recording``).
    public let recording: Recording
    /// `body` as a function of the state with its input beside it (not differentiated) and the
    /// parameters: formed once, so a step is differentiated without forming a closure.
    @usableFromInline let carried: @differentiable(reverse) (StepCarry<State, Input>, Parameters) -> State

    /// When a recorded step is differentiated.
    public enum Recording: Sendable {
        /// When its pullback runs: recording keeps the step's state and input (and the per-step
        /// loss value) and runs the step forward once; the pullback runs `valueWithPullback` then.
        /// Each step is evaluated once more, without derivatives, and a recorded step holds its
        /// state rather than `_Differentiation`'s pullback (for a small step, tens of bytes where
        /// the pullback's saved values take hundreds), so `storeAll` needs less memory than a
        /// plain `_Differentiation` loop. The default.
        case deferred
        /// When it is recorded: `valueWithPullback` runs at once and the recorded step holds its
        /// pullback. No extra forward evaluation; more memory per recorded step. For steps whose
        /// forward pass costs as much as their derivative.
        case eager
    }

    // The per-step methods are inlinable, and so is `unroll`: a call of `unroll` with a
    // `SwiftADStep` of concrete types is specialized where it is made, and `valueWithPullback`,
    // the tangent additions (`+` on an array's `DifferentiableView`) and the hashing run compiled
    // for those types. Run unspecialized, they instantiate generic metadata and look up
    // conformances at every call — several times the cost of a small step.

    @inlinable
    public init(recording: Recording = .deferred,
                _ body: @escaping @differentiable(reverse) (State, @noDerivative Input, Parameters) -> State) {
        self.body = body
        self.recording = recording
        carried = Self.carrying(body)
    }

    /// `body` over a ``StepCarry`` (a closure cannot be differentiated inside inlinable code; this
    /// one is formed here, once per step value).
    @usableFromInline
    static func carrying(_ body: @escaping @differentiable(reverse) (State, @noDerivative Input, Parameters) -> State)
        -> @differentiable(reverse) (StepCarry<State, Input>, Parameters) -> State {
        { c, p in body(c.state, c.input, p) }
    }

    @inlinable
    public func step(_ state: State, input: Input, parameters: Parameters) throws -> State {
        body(state, input, parameters)
    }

    @inlinable
    public func recordStep(_ state: State, input: Input, parameters: Parameters, loss: Loss) throws -> RecordedStep<Self> {
        switch recording {
        case .deferred:
            let next = body(state, input, parameters)
            let perStep = loss.perStep
            let value = perStep.map { $0(next) } ?? 0
            let carried = carried
            return RecordedStep(next: next, loss: value) { cotangent in
                let (next, pullback) = valueWithPullback(at: StepCarry(state: state, input: input), parameters, of: carried)
                let (carry, parameters) = pullback(seed(cotangent, next: next, perStep: perStep))
                return (carry.state, parameters)
            }
        case .eager:
            let (next, pullback) = valueWithPullback(at: StepCarry(state: state, input: input), parameters, of: carried)
            let perStep = loss.perStep
            let value = perStep.map { $0(next) } ?? 0
            return RecordedStep(next: next, loss: value) { cotangent in
                let (carry, parameters) = pullback(seed(cotangent, next: next, perStep: perStep))
                return (carry.state, parameters)
            }
        }
    }

}

/// The cotangent a step's pullback starts from: the next state's (dense: see
/// ``SwiftADState/zeroTangent``) plus the per-step loss's gradient at it.
@inlinable
func seed<State: SwiftADState>(_ cotangent: State.TangentVector?, next: State,
                               perStep: (@differentiable(reverse) (State) -> Double)?) -> State.TangentVector {
    var seed = next.zeroTangent
    if let cotangent { seed += cotangent }
    if let perStep { seed += gradient(at: next, of: perStep) }
    return seed
}

/// A step's state with its input beside it: what ``SwiftADStep`` differentiates (the input is not).
public struct StepCarry<State: Differentiable, Input>: Differentiable {
    public var state: State
    @noDerivative public var input: Input

    @inlinable
    public init(state: State, input: Input) { (self.state, self.input) = (state, input) }
}

/// The loss of a trajectory run by a ``SwiftADStep``: per-step terms `ℓ(s[t+1])`, a final term
/// `ℓ_T(s[T])`, or both.
public struct SwiftADLoss<State: Differentiable> {
    public let perStep: (@differentiable(reverse) (State) -> Double)?
    public let final: (@differentiable(reverse) (State) -> Double)?

    public static func perStep(_ loss: @escaping @differentiable(reverse) (State) -> Double) -> Self {
        Self(perStep: loss, final: nil)
    }

    public static func final(_ loss: @escaping @differentiable(reverse) (State) -> Double) -> Self {
        Self(perStep: nil, final: loss)
    }

    public static func both(perStep: @escaping @differentiable(reverse) (State) -> Double,
                            final: @escaping @differentiable(reverse) (State) -> Double) -> Self {
        Self(perStep: perStep, final: final)
    }
}

extension PropertyListEncoder {
    static var binary: PropertyListEncoder {
        let encoder = PropertyListEncoder()
        encoder.outputFormat = .binary
        return encoder
    }
}
