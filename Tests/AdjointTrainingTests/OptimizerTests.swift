import Adjoint
import AdjointTestSupport
import Foundation
import Testing

/// Scalar reference implementations of the update rules, element by element in Double.
enum Reference {
    static func sgd(w: [Double], grads: [[Double]], lr: Double, momentum: Double, nesterov: Bool, decay: Double) -> [Double] {
        var w = w
        var b: [Double]?
        for g in grads {
            let d = zip(g, w).map { $0 + decay * $1 }
            var dir = d
            if momentum != 0 {
                let nb = b.map { zip($0, d).map { momentum * $0 + $1 } } ?? d
                b = nb
                dir = nesterov ? zip(d, nb).map { $0 + momentum * $1 } : nb
            }
            w = zip(w, dir).map { $0 - lr * $1 }
        }
        return w
    }

    static func adam(w: [Double], grads: [[Double]], lr: Double, b1: Double, b2: Double, eps: Double, decay: Double, decoupled: Bool) -> [Double] {
        var w = w
        var m = [Double](repeating: 0, count: w.count), v = m
        for (step, g) in grads.enumerated() {
            let t = Double(step + 1)
            if decoupled { w = w.map { $0 * (1 - lr * decay) } }
            let d = decoupled ? g : zip(g, w).map { $0 + decay * $1 }
            m = zip(m, d).map { b1 * $0 + (1 - b1) * $1 }
            v = zip(v, d).map { b2 * $0 + (1 - b2) * $1 * $1 }
            w = w.indices.map { i in
                w[i] - lr * (m[i] / (1 - Foundation.pow(b1, t))) / ((v[i] / (1 - Foundation.pow(b2, t))).squareRoot() + eps)
            }
        }
        return w
    }
}

@Suite("Optimizers")
struct OptimizerTests {
    static let w0: [Double] = [0.5, -1.0, 2.0]
    static let grads: [[Double]] = [[0.1, -0.2, 0.3], [0.4, 0.1, -0.5], [-0.3, 0.2, 0.05]]

    func run<O: Optimizer>(_ optimizer: inout O) throws -> [Double] {
        var w = t(Self.w0)
        for g in Self.grads { try optimizer.update(&w, along: t(g)) }
        #expect(optimizer.step == Self.grads.count)
        return w.doubles
    }

    @Test("SGD: plain, momentum, Nesterov and weight decay match the reference", arguments: [
        (0.0, false, 0.0), (0.9, false, 0.0), (0.9, true, 0.0), (0.5, false, 0.1), (0.9, true, 0.01),
    ])
    func sgd(_ momentum: Double, _ nesterov: Bool, _ decay: Double) throws {
        var opt = try SGD(learningRate: .constant(0.1), momentum: momentum, nesterov: nesterov, weightDecay: decay)
        let got = try run(&opt)
        let expected = Reference.sgd(w: Self.w0, grads: Self.grads, lr: 0.1, momentum: momentum, nesterov: nesterov, decay: decay)
        #expect(isClose(got, expected, tolerance: 1e-15))
        #expect(Set(opt.state.keys) == (momentum == 0 ? [] : ["momentum."]))
    }

    @Test("Adam and AdamW match the reference", arguments: [0.0, 0.1])
    func adam(_ decay: Double) throws {
        var adam = try Adam(learningRate: .constant(0.01), weightDecay: decay)
        #expect(isClose(try run(&adam), Reference.adam(w: Self.w0, grads: Self.grads, lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, decay: decay, decoupled: false), tolerance: 1e-14))
        var adamw = try AdamW(learningRate: .constant(0.01), weightDecay: decay)
        #expect(isClose(try run(&adamw), Reference.adam(w: Self.w0, grads: Self.grads, lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, decay: decay, decoupled: true), tolerance: 1e-14))
        #expect(Set(adam.state.keys) == ["m.", "v."])
    }

    @Test("updates follow the learning-rate schedule step by step")
    func scheduled() throws {
        var opt = try SGD(learningRate: .step(base: 1, every: 1, factor: 0.5))
        var w = t([0])
        for _ in 0..<3 { try opt.update(&w, along: t([1])) }
        #expect(w.doubles == [-(1 + 0.5 + 0.25)])
    }

    @Test("a model trains: Adam reduces a regression loss on a parameter collection")
    func trains() throws {
        let key = RandomKey(seed: 7)
        let x = try Tensor.uniform([32, 3], key: key)
        let trueW = t([1.5, -2, 0.5], [3, 1])
        let y = try x.matmul(trueW)
        var params = ["w": try Tensor.zeros([3, 1]), "b": try Tensor.zeros([1])]
        var opt = try Adam(learningRate: .warmup(steps: 5, then: .constant(0.1)))
        func loss(_ p: [String: Tensor]) throws -> Tensor { try (x.matmul(p["w"]!) + p["b"]!).meanSquaredError(y) }
        let first = try loss(params).item()
        for _ in 0..<200 {
            let g = try gradient(at: params, of: loss)
            try opt.update(&params, along: g)
        }
        #expect(try loss(params).item() < first * 1e-3)
        #expect(Set(opt.state.keys) == ["m.b", "m.w", "v.b", "v.w"])
    }

    @Test("the update is not recorded by an enclosing tape")
    func notRecorded() throws {
        var opt = try SGD(learningRate: .constant(0.1))
        let (graph, _) = try Tape.trace(at: t([1, 2])) { x in
            var w = x
            try opt.update(&w, along: x)
            return try x.sum()
        }
        #expect(graph.nodes.count == 1)
    }

    @Test("bad options and mismatched gradients are typed errors, and nothing is modified")
    func errors() throws {
        #expect(throws: TrainingError.invalidOption(name: "momentum", value: "1.0", expected: "a value in [0, 1)")) {
            try SGD(learningRate: .constant(0.1), momentum: 1)
        }
        #expect(throws: TrainingError.self) { try SGD(learningRate: .constant(0.1), nesterov: true) }
        #expect(throws: TrainingError.self) { try SGD(learningRate: .constant(-1)) }
        #expect(throws: TrainingError.self) { try Adam(learningRate: .constant(0.1), beta2: 1) }
        #expect(throws: TrainingError.self) { try AdamW(learningRate: .constant(0.1), epsilon: 0) }
        var opt = try Adam(learningRate: .constant(0.1))
        var params = ["a": t([1, 2]), "b": t([3])]
        #expect(throws: TrainingError.gradientMismatch(parameter: "b", detail: "parameter is f64[1], gradient is f64[2]")) {
            try opt.update(&params, along: ["a": t([1, 1]), "b": t([1, 1])])
        }
        #expect(throws: TrainingError.self) { try opt.update(&params, along: ["a": t([1, 1]), "c": t([1])]) }
        #expect(params["a"]!.doubles == [1, 2] && params["b"]!.doubles == [3] && opt.step == 0)
    }
}
