import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import Foundation

/// The relaxed simulator with a soft admission decision: a request for object `j` costs the soft
/// miss `1 − r_j`, then brings `j` in only in part, `r_j ← r_j + (1 − r_j)·a`, with
/// `a = σ(g_φ(z_j))` the admission gate's probability for the request's features `z_j`. Eviction
/// is the relaxed eviction of ``RelaxedCacheSimulator`` under a fixed eviction scorer, so the
/// gradient of the window's misses reaches φ through everything an admission changes: the
/// object's own later hits and the residency it takes from the others.
extension RelaxedCacheSimulator {
    /// The step: state `r` [N], input [N, d + 1 + g] (eviction features, the one-hot request, the
    /// gate's normalised features on the requested row), output the soft miss; parameters the gate.
    public typealias AdmissionStep = TensorStep<Tensor, Tensor, AdmissionScorer, Tensor>

    public static func admissionStep(capacity: Double, temperature: Double, eviction: EvictionScorer) -> AdmissionStep {
        AdmissionStep { r, input, gate in
            let n = input.shape[0], d = ObjectFeatures.count, g = AdmissionFeatures.count
            let x = try input.slice(starts: [0, 0], ends: [n, d]), request = try input.slice(starts: [0, d], ends: [n, d + 1]).reshaped([n])
            let z = try input.slice(starts: [0, d + 1], ends: [n, d + 1 + g])
            let miss = try 1 - (r * request).sum()
            let admitted = try (request * gate.scores(z)).sum().sigmoid()
            let inserted = try r + (1 - r) * request * admitted
            let excess = try (inserted.sum() - capacity).relu()
            let others = try 1 - request
            let scores = try eviction.scores(x).untracked
            let logits = try (inserted * others + 1e-12).log() - scores / temperature + (others - 1) * 1e9
            let next = try (inserted - excess * logits.softmax(axis: 0)).relu()
            return (next, miss)
        }
    }

    /// A window (``window(_:start:length:capacity:normalization:)``) with the gate's features of
    /// each step's request appended: the gate's sketches see every request before the window, as
    /// they would in deployment.
    public static func admissionWindow(_ requests: [CacheRequest], start: Int, length: Int, capacity: Int64, mode: SizeMode,
                                       normalization: FeatureNormalization, gate model: AdmissionModel) throws -> Window {
        var window = try self.window(requests, start: start, length: length, capacity: capacity, normalization: normalization)
        var gate = model.gate(capacity: capacity, mode: mode)
        func unit(_ r: CacheRequest) -> CacheRequest { var r = r; if mode == .unit { r.size = 1 }; return r }
        for r in requests[..<start] { gate.record(unit(r), hit: false) }
        let n = window.tracked, d = ObjectFeatures.count, g = AdmissionFeatures.count, m = model.metadata
        for k in 0..<length {
            let request = unit(requests[start + k])
            let z = gate.features(request)
            let normalised = [(z.0 - m.mean[0]) / m.std[0], (z.1 - m.mean[1]) / m.std[1], (z.2 - m.mean[2]) / m.std[2]]
            gate.record(request, hit: false)
            let old = window.inputs[k].doubles
            var row = [Double](repeating: 0, count: n * (d + 1 + g))
            for i in 0..<n {
                for j in 0...d { row[i * (d + 1 + g) + j] = old[i * (d + 1) + j] }
                if old[i * (d + 1) + d] == 1 { for j in 0..<g { row[i * (d + 1 + g) + d + 1 + j] = normalised[j] } }
            }
            window.inputs[k] = try Tensor(row, shape: [n, d + 1 + g])
        }
        return window
    }
}
