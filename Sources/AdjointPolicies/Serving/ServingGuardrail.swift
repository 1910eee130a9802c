import AdjointAutodiff
import AdjointStateful
import AdjointTensor
import Foundation

/// Settings of the online guardrail.
public struct ServingGuardrailSettings: Sendable, Equatable {
    /// Requests per window (by position in the trace).
    public var window = 400
    /// The learned policy falls back when its mean latency on a window exceeds the shadow's by
    /// more than this fraction.
    public var margin = 0.1
    /// Consecutive windows worse by more than the margin before falling back.
    public var patience = 1
    /// Consecutive windows no worse than the shadow before the learned policy returns (longer than
    /// `patience`: a hysteresis, since the replayed evidence for returning is weaker than the
    /// observed evidence for leaving).
    public var restorePatience = 3
    /// The classical policy evaluated beside the learned one, and run when it falls back.
    public var shadow: SchedulingPolicy = .tokenBudget(512)
    /// Update the learned weights after each window (one step of imitation of the oracle on the
    /// finished window, whose output lengths are known by then).
    public var onlineLearning = false
    /// The largest update per window, relative to the weights' norm (conservative updates).
    public var maximumUpdate = 0.1

    public init(window: Int = 400, margin: Double = 0.1, patience: Int = 1, restorePatience: Int = 3, shadow: SchedulingPolicy = .tokenBudget(512),
                onlineLearning: Bool = false, maximumUpdate: Double = 0.1) {
        (self.window, self.margin, self.patience, self.restorePatience, self.shadow) = (window, margin, patience, restorePatience, shadow)
        (self.onlineLearning, self.maximumUpdate) = (onlineLearning, maximumUpdate)
    }
}

/// What the guardrail did after a window.
public struct ServingGuardrailEvent: Sendable, Equatable, CustomStringConvertible {
    public enum Action: String, Sendable { case fallback, restore, update }
    public var window: Int
    /// Simulated seconds when the window's last request finished.
    public var time: Double
    public var action: Action
    /// Mean end-to-end latency of the window's requests under the learned policy and the shadow
    /// (seconds): observed and the shadow's continuous run while the learned policy serves, both
    /// replayed from an empty server while the shadow serves.
    public var learned: Double, shadow: Double
    /// For updates: the relative size of the change.
    public var update: Double = 0

    public var description: String {
        switch action {
        case .fallback:
            return String(format: "window %d (t=%.1f s): fallback to the shadow: learned %.3f s > shadow %.3f s + margin", window, time, learned, shadow)
        case .restore:
            return String(format: "window %d (t=%.1f s): restore the learned policy: learned %.3f s ≤ shadow %.3f s", window, time, learned, shadow)
        case .update:
            return String(format: "window %d (t=%.1f s): online update of %.3f of the weights' norm (learned %.3f s, shadow %.3f s)",
                          window, time, update, learned, shadow)
        }
    }
}

/// A run under the guardrail.
public struct GuardedServingRun: Sendable {
    public var report: ServingReport
    public var events: [ServingGuardrailEvent]
    /// Windows decided while the learned policy ran, and while the shadow ran.
    public var windowsOnLearned: Int, windowsOnShadow: Int
    /// The learned model at the end (changed only by online updates).
    public var model: ServingPolicyModel
}

/// The learned scheduler deployed with a stability guardrail. A classical shadow policy runs
/// continuously beside the server on the same arrivals; as each window of requests finishes (in the
/// server and in the shadow, by the server's clock), the learned policy's observed mean latency on
/// the window is compared with the shadow's on the same requests; when it is worse by more than the
/// margin for `patience` windows the server falls back to the shadow (and logs why). While the
/// shadow serves, each window is replayed from an empty server under both policies, and the learned
/// policy returns once it is no worse for `restorePatience` windows. With online learning, each finished window also moves the weights by one
/// imitation step toward the oracle, bounded to ``ServingGuardrailSettings/maximumUpdate`` of their
/// norm.
public enum ServingGuardrail {
    public static func run(_ trace: [ServingRequest], simulator: ServingSimulator, model initial: ServingPolicyModel,
                           settings: ServingGuardrailSettings) throws -> GuardedServingRun {
        guard (2 ... 1 << 20).contains(settings.window) else { throw ServingSimulationError.invalidConfiguration("guardrail window \(settings.window) outside 2 ... 2^20") }
        guard settings.margin.isFinite, settings.margin >= 0, settings.margin <= 100 else { throw ServingSimulationError.invalidConfiguration("guardrail margin \(settings.margin) outside 0 ... 100") }
        guard (1 ... 1000).contains(settings.patience), (1 ... 1000).contains(settings.restorePatience) else {
            throw ServingSimulationError.invalidConfiguration("guardrail patience \(settings.patience) / \(settings.restorePatience) outside 1 ... 1000")
        }
        guard settings.maximumUpdate.isFinite, settings.maximumUpdate > 0, settings.maximumUpdate <= 1 else {
            throw ServingSimulationError.invalidConfiguration("guardrail maximum update \(settings.maximumUpdate) outside (0, 1]")
        }
        if case .learned = settings.shadow { throw ServingSimulationError.invalidConfiguration("the guardrail's shadow must be a classical policy") }
        var model = initial
        var onLearned = true, streak = 0, windowsOnLearned = 0, windowsOnShadow = 0
        var events: [ServingGuardrailEvent] = []
        // The shadow runs continuously beside the server on the same arrivals (the trace is the
        // same whatever the server decides, so its run is computed once); a window's shadow
        // latency is used only once the shadow has finished that window by the server's clock.
        let shadowRun = try simulator.run(trace, policy: settings.shadow)
        let windows = (trace.count + settings.window - 1) / settings.window
        var shadowMean = [Double](repeating: 0, count: windows), shadowDone = [Double](repeating: -.infinity, count: windows)
        for (i, r) in shadowRun.requests.enumerated() {
            let k = i / settings.window
            shadowMean[k] += r.endToEnd / Double(Swift.min(settings.window, trace.count - k * settings.window))
            shadowDone[k] = Swift.max(shadowDone[k], trace[i].arrival + r.endToEnd)
        }
        var hooks = ServingHooks()
        hooks.window = settings.window
        hooks.controller = { k, now, observed in
            guard shadowDone[k] <= now else { return .notReady }
            let window = Array(trace[(k * settings.window)..<Swift.min(trace.count, (k + 1) * settings.window)])
            var answer = ServingHooks.ControllerAnswer.keep
            let learned: Double, shadow: Double
            if onLearned {
                // The learned policy's observed latency against the shadow's on the same requests.
                (learned, shadow) = (observed, shadowMean[k])
                windowsOnLearned += 1
                streak = learned > shadow * (1 + settings.margin) ? streak + 1 : 0
                if streak >= settings.patience {
                    (onLearned, streak) = (false, 0)
                    events.append(ServingGuardrailEvent(window: k, time: now, action: .fallback, learned: learned, shadow: shadow))
                    answer = .switchTo(settings.shadow)
                }
            } else {
                // While the shadow serves, the learned policy is judged on the window replayed from
                // an empty server against the shadow replayed the same way.
                learned = try simulator.run(window, policy: .learned(model)).endToEnd.mean
                shadow = try simulator.run(window, policy: settings.shadow).endToEnd.mean
                windowsOnShadow += 1
                streak = learned <= shadow ? streak + 1 : 0
                if streak >= settings.restorePatience {
                    (onLearned, streak) = (true, 0)
                    events.append(ServingGuardrailEvent(window: k, time: now, action: .restore, learned: learned, shadow: shadow))
                    answer = .switchTo(.learned(model))
                }
            }
            if settings.onlineLearning, window.count >= 2 {
                let before = model.scorer.weights
                model.scorer = try update(model, window: window, simulator: simulator, maximum: settings.maximumUpdate)
                let change = BoundedUpdate.relativeChange(before, model.scorer.weights)
                if change > 0 {
                    events.append(ServingGuardrailEvent(window: k, time: now, action: .update, learned: learned, shadow: shadow, update: change))
                    if onLearned, case .keep = answer { answer = .switchTo(.learned(model)) }
                }
            }
            return answer
        }
        let report = try simulator.run(trace, policy: .learned(initial), hooks: hooks)
        return GuardedServingRun(report: report, events: events, windowsOnLearned: windowsOnLearned, windowsOnShadow: windowsOnShadow, model: model)
    }

    /// One gradient step of imitation of the oracle on a finished window, its length clipped to
    /// `maximum` of the weights' norm.
    static func update(_ model: ServingPolicyModel, window: [ServingRequest], simulator: ServingSimulator, maximum: Double) throws -> ServingScorer {
        var c = simulator.configuration
        (c.tokenBudget, c.maxBatch) = (model.knobs.tokenBudget, model.knobs.maxBatch)
        let (decisions, _) = try ServingTraining.record(window, simulator: try ServingSimulator(cost: simulator.cost, configuration: c),
                                                        policy: .clairvoyant, candidates: 32)
        guard !decisions.counts.isEmpty else { return model.scorer }
        let g = try gradient(at: model.scorer) { s in try decisions.logLikelihood(s, temperature: 1).neg() / Double(decisions.counts.count) }.weights
        guard let stepped = BoundedUpdate.step(model.scorer.weights, along: g, maximum: maximum) else { return model.scorer }
        return try ServingScorer(weights: stepped)
    }
}
