import Adjoint
import AdjointTestSupport
import Foundation
import Testing

@Suite("Mixed precision and loss scaling")
struct MixedPrecisionTests {
    @Test("float16 storage rounds results and overflows past 65,504; bfloat16 keeps the range; dtypes stay float32")
    func storage() throws {
        let x = try Tensor([1.0 / 3, 300], shape: [2]).cast(to: .float32)
        let y = try MixedPrecision.with(.float16) { try x * x }
        #expect(y.dtype == .float32)
        let third = Float(1.0 / 3)
        #expect(y.doubles[0] == Double(Float(Float16(third * third))))   // float32 product, float16 storage
        #expect(y.doubles[1].isInfinite)   // 90,000 > float16's max
        let z = try MixedPrecision.with(.bfloat16) { try x * x }
        #expect(z.doubles[1].isFinite && Swift.abs(z.doubles[1] - 90_000) / 90_000 < 0.01)
        #expect(try (x * x).doubles[1] == 90_000)
        #expect(throws: TensorError.self) { try MixedPrecision.with(.float64) { 0 } }
    }

    /// Least squares y = w·x with x ≈ 300 and residuals ≈ 150 at the start: the loss (≈ 22,500)
    /// fits float16, its gradient (≈ 90,000) does not.
    static func train(scaler: DynamicLossScaler?, steps: Int = 60) throws -> (losses: [Double], skipped: Int) {
        let x = try (Tensor.uniform([64], key: RandomKey(seed: 1), low: 250, high: 350)).cast(to: .float32)
        let y = try x * 2
        var w = try Tensor([1.5], shape: [1]).cast(to: .float32)
        var scaler = scaler
        var losses: [Double] = []
        var optimizer = try SGD(learningRate: .constant(5e-6))
        for _ in 0..<steps {
            let (loss, g) = try MixedPrecision.with(.float16) {
                try valueWithGradient(at: w) { w in
                    let l = try (w * x - y).pow(2).mean()
                    return try scaler?.scaled(l) ?? l
                }
            }
            losses.append(try loss.item() / (scaler?.scale ?? 1))
            if var s = scaler {
                let unscaled = try s.unscale(g)
                scaler = s
                if let unscaled { try optimizer.update(&w, along: unscaled) }
            } else {
                try optimizer.update(&w, along: g)
            }
        }
        return (losses, scaler?.skippedSteps ?? 0)
    }

    @Test("a model whose gradients overflow float16 trains with dynamic loss scaling and diverges without it")
    func lossScaling() throws {
        let without = try Self.train(scaler: nil)
        #expect(without.losses.contains { !$0.isFinite }, "expected divergence without scaling")
        let with = try Self.train(scaler: try DynamicLossScaler(initialScale: 1, growthInterval: 20))
        #expect(with.losses.last!.isFinite && with.losses.last! < with.losses.first! / 100, "\(with.losses.prefix(5)) … \(with.losses.suffix(3))")
        #expect(with.skipped >= 1)
    }

    @Test("the scaler backs off on overflow, grows after good steps, and validates its options")
    func scaler() throws {
        var s = try DynamicLossScaler(initialScale: 1024, growthInterval: 2)
        #expect(try s.unscale([t([.infinity])]) == nil && s.scale == 512 && s.skippedSteps == 1)
        #expect(try s.unscale([t([1024])])?.first?.doubles == [2])
        _ = try s.unscale([t([1])])
        #expect(s.scale == 1024)
        #expect(throws: TrainingError.self) { try DynamicLossScaler(backoffFactor: 1) }
        #expect(throws: TrainingError.self) { try DynamicLossScaler(growthInterval: 0) }
    }

    @Test("a bfloat16 loss curve tracks float32 within 5%")
    func bfloat16Tracks() throws {
        func curve(_ storage: DType?) throws -> [Double] {
            var model = MLPCurve.Model(key: RandomKey(seed: 3))
            var adam = try Adam(learningRate: .constant(0.01))
            let x = try Tensor.normal([128, 8], key: RandomKey(seed: 4), dtype: .float32)
            let target = try (x.matmul(Tensor.normal([8, 1], key: RandomKey(seed: 5), dtype: .float32)).tanh())
            var losses: [Double] = []
            for _ in 0..<40 {
                let (loss, g) = try MixedPrecision.with(storage) { try valueWithGradient(at: model) { m in try m(x).meanSquaredError(target) } }
                losses.append(try loss.item())
                try adam.update(&model, along: g)
            }
            return losses
        }
        let full = try curve(nil), bf16 = try curve(.bfloat16)
        let worst = zip(full, bf16).map { Swift.abs($1 - $0) / $0 }.max()!
        print(String(format: "bfloat16 vs float32 loss curve: largest relative difference %.4f over 40 Adam steps (first %.4f → last %.4f)", worst, full.first!, full.last!))
        #expect(worst < 0.05)
        #expect(full.last! < full.first! / 2)
    }
}

enum MLPCurve {
    struct Model: ParameterCollection {
        var w1: Tensor, w2: Tensor
        mutating func visitTensors(_ visit: (String, inout Tensor) throws -> Void) rethrows {
            try visit("w1", &w1); try visit("w2", &w2)
        }
        init(key: RandomKey) {
            w1 = try! Tensor.uniform([8, 32], key: key.fold(in: 1), low: -0.4, high: 0.4, dtype: .float32)
            w2 = try! Tensor.uniform([32, 1], key: key.fold(in: 2), low: -0.2, high: 0.2, dtype: .float32)
        }
        func callAsFunction(_ x: Tensor) throws -> Tensor { try x.matmul(w1).tanh().matmul(w2) }
    }
}
