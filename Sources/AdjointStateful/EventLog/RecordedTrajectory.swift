import AdjointTensor

/// A run of a live system as its event log tells it: per step, the input, the other events, and
/// the live state hashes; the state checkpoints the run logged.
///
/// A step counts as recorded once the hash of the state it produced is in the log. Events of a
/// step that a crash interrupted are void: a resumed run logs a resume marker, and what was logged
/// for an unfinished step before it is dropped.
public struct RecordedTrajectory {
    /// Complete steps: `s[0] … s[steps]` are known.
    public let steps: Int
    private let inputs: [Tensor]
    private let hashes: [StateHash]
    private let extras: [[Event]]
    /// Steps with a logged state checkpoint, ascending (always includes 0).
    public let checkpointSteps: [Int]
    private let checkpointSequence: [Int: Int]
    private let log: any EventLog

    /// Indexes `log` (reads it once; checkpoints are read again on demand).
    ///
    /// - Throws: ``EventLogError/replayMismatch(step:detail:)`` when the log has no checkpoint of
    ///   `s[0]` or no hash of it, or a step's input is missing; errors of the log itself.
    public init(log: any EventLog) throws {
        self.log = log
        var inputs: [Tensor] = [], hashes: [StateHash] = [], extras: [[Event]] = []
        var checkpoints: [Int: Int] = [:]
        var pendingInput: Tensor?, pendingExtras: [Event] = []
        let batch = 4096
        var start = 0
        while start < log.count {
            for (i, event) in try log.events(start..<(start + batch)).enumerated() {
                let k = hashes.count - 1        // the step being recorded is k … k+1
                switch event.kind {
                case .stateHash:
                    guard let h = event.hash else { throw EventLogError.replayMismatch(step: event.step, detail: "a state-hash record without an 8-byte hash") }
                    if hashes.isEmpty {
                        guard event.step == 0 else { throw EventLogError.replayMismatch(step: event.step, detail: "the log's first state hash is not of s[0]") }
                        hashes.append(h)
                    } else if event.step == k + 1 {
                        guard let input = pendingInput else { throw EventLogError.replayMismatch(step: k, detail: "s[\(k + 1)] is hashed but step \(k) has no input") }
                        inputs.append(input)
                        extras.append(pendingExtras)
                        hashes.append(h)
                        (pendingInput, pendingExtras) = (nil, [])
                    } else if event.step <= k {
                        // A resumed run re-hashes a state it restored: it must agree.
                        guard hashes[event.step] == h else {
                            throw EventLogError.replayMismatch(step: event.step, detail: "the log hashes s[\(event.step)] twice, differently (\(hashes[event.step]) and \(h))")
                        }
                    } else {
                        throw EventLogError.replayMismatch(step: event.step, detail: "a hash of s[\(event.step)] before s[\(k + 1)]")
                    }
                case .checkpoint:
                    checkpoints[event.step] = start + i
                case .input:
                    guard !hashes.isEmpty, event.step == k else { continue }
                    pendingInput = try event.tensor()
                case .marker where event.name == Event.resumeMarker:
                    (pendingInput, pendingExtras) = (nil, [])   // what a crashed attempt logged is void
                case .external, .random, .decision, .marker:
                    if !hashes.isEmpty, event.step == k { pendingExtras.append(event) }
                }
            }
            start += batch
        }
        guard !hashes.isEmpty, checkpoints[0] != nil else {
            throw EventLogError.replayMismatch(step: 0, detail: "the log has no checkpoint and hash of s[0]; it was not written by an EventSourcedRun")
        }
        steps = hashes.count - 1
        self.inputs = inputs
        self.hashes = hashes
        self.extras = extras
        checkpointSteps = checkpoints.keys.filter { $0 <= hashes.count - 1 }.sorted()
        checkpointSequence = checkpoints
    }

    /// `x[k]`.
    public func input(_ k: Int) throws -> Tensor {
        guard k >= 0, k < steps else { throw UnrollError.missingInput(step: k, available: steps) }
        return inputs[k]
    }

    /// The live run's hash of `s[k]`, `0 ≤ k ≤ steps`.
    public func hash(at k: Int) -> StateHash { hashes[k] }

    /// The external, random, decision and marker events of step `k`, in log order.
    public func events(at k: Int) -> [Event] { extras[k] }

    /// The logged `s[k]` (k in ``checkpointSteps``), checked against its logged hash.
    public func checkpoint<Step: StepFunction>(at k: Int, step: Step, like template: Step.State) throws -> Step.State {
        guard let seq = checkpointSequence[k], let event = try log.events(seq..<(seq + 1)).first else {
            throw EventLogError.replayMismatch(step: k, detail: "no checkpoint of s[\(k)] in the log")
        }
        let state = try step.deserialize(event.data, like: template)
        guard step.hash(state) == hashes[k] else {
            throw EventLogError.replayMismatch(step: k, detail: "the checkpoint of s[\(k)] hashes to \(step.hash(state)), the live run logged \(hashes[k])")
        }
        return state
    }

    /// Rebuilds `s[end]` (default: the last state) from the checkpoint at `start` (default: the
    /// nearest at or before `end`; 0 replays the whole run), stepping through the logged inputs and
    /// checking every state against the live run's hash.
    ///
    /// - Throws: ``EventLogError/replayMismatch(step:detail:)`` naming the first state whose hash
    ///   differs (the step, or its parameters, are not what the live run used), or when `start` is
    ///   not a checkpoint at or before `end`.
    public func replay<Step: StepFunction>(_ step: Step, parameters: Step.Parameters, like template: Step.State,
                                           from start: Int? = nil, to end: Int? = nil) throws -> Step.State where Step.Input == Tensor {
        let target = end ?? steps
        guard target >= 0, target <= steps else { throw UnrollError.missingInput(step: target, available: steps) }
        let start = start ?? checkpointSteps.last { $0 <= target } ?? 0
        guard start <= target else { throw EventLogError.replayMismatch(step: start, detail: "the replay starts at s[\(start)], after its end s[\(target)]") }
        var state = try checkpoint(at: start, step: step, like: template)
        for k in start..<target {
            state = try step.step(state, input: inputs[k], parameters: parameters)
            let h = step.hash(state)
            guard h == hashes[k + 1] else {
                throw EventLogError.replayMismatch(step: k + 1, detail: "the live run hashed s[\(k + 1)] as \(hashes[k + 1]), the replay computes \(h)")
            }
        }
        return state
    }
}
