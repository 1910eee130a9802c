import Adjoint
import Foundation

/// A one-dimensional heat equation with a nonlinear source on a rod of `cells` float32 cells, the
/// ends held at zero: `s ← s + α·Δs + β·tanh(s)`, `Δs[i] = s[i−1] − 2·s[i] + s[i+1]`. A large state
/// (10⁶ cells by default) with a small step: what a compiled step over big arrays is measured on.
///
/// Parameters `[α, β]` (float32); loss: the mean square of the final state. The step reads no
/// input. Explicit Euler is stable for `α ≤ ½`.
public struct HeatEquation {
    public typealias Step = CompiledStep<Tensor, Tensor, NoOutput>

    public let cells: Int
    public static let nominal: [Float] = [0.25, 0.05]

    public init(cells: Int = 1_000_000) { self.cells = cells }

    /// `[α, β]`.
    public var nominalParameters: Tensor { try! Tensor(Self.nominal, shape: [2]) }

    /// Half a sine wave along the rod, with a ripple every 64 cells.
    public var initialState: Tensor {
        let n = cells
        let values = (0..<n).map { i -> Float in
            let x = Float(i) / Float(max(n - 1, 1))
            return sin(Float.pi * x) + 0.1 * sin(2 * Float.pi * Float(i) / 64)
        }
        return try! Tensor(values, shape: [n])
    }

    public var loss: Step.Loss { .final { s in try (s * s).mean() } }

    /// One step as tensor operations (what the compiled step traces).
    public static func step(_ s: Tensor, _ p: Tensor) throws -> Tensor {
        let n = s.shape[0]
        let zero = try Tensor.zeros([1], dtype: .float32)
        let left = try Tensor.concat([zero, s.slice([0..<(n - 1)])])
        let right = try Tensor.concat([s.slice([1..<n]), zero])
        let laplacian = try left + right - s * 2
        return try s + p.slice([0..<1]) * laplacian + p.slice([1..<2]) * s.tanh()
    }

    /// The step compiled once (`native`: its elementwise runs as machine code).
    public func compiledStep(native: NativeCode = .automatic) throws -> Step {
        try Step(loss: loss, state: initialState, parameters: nominalParameters, native: native) { s, p in
            (try Self.step(s, p), NoOutput())
        }
    }

    /// Loss and `∂L/∂(α, β)` after `steps` steps.
    public func gradient(steps: Int, schedule: CheckpointSchedule, step: Step? = nil,
                         options: UnrollOptions = UnrollOptions()) throws -> UnrollResult<Step> {
        try unroll(try step ?? compiledStep(), from: initialState, parameters: nominalParameters, steps: steps, loss: loss,
                   schedule: schedule, options: options)
    }
}
