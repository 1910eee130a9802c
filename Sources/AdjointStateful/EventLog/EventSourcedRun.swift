import AdjointTensor

/// A live system driven step by step with everything a replay needs written to an ``EventLog``:
/// a checkpoint and hash of `s[0]`, then per step the events it consumed (external events, random
/// positions, decisions), its input, the hash of the state it produced, and every
/// `checkpointEvery` steps a checkpoint of that state.
///
/// Opening a log that already holds a run resumes it: the state is rebuilt by replaying the log
/// (checked against every logged hash) and stepping continues where the log ends. A step is
/// durable once ``advance(input:events:)`` returns under ``FsyncPolicy/everyRecord``.
///
/// Afterwards, ``RecordedTrajectory`` reads the run back, `RecordedTrajectory.replay(_:parameters:like:to:)`
/// rebuilds any state, and ``unroll(_:recorded:parameters:template:loss:schedule:options:)``
/// differentiates the run after the fact.
public final class EventSourcedRun<Step: StepFunction> where Step.Input == Tensor {
    public let step: Step
    public let parameters: Step.Parameters
    public let log: any EventLog
    /// A state checkpoint every this many steps (0: only `s[0]`).
    public let checkpointEvery: Int
    /// `s[time]`.
    public private(set) var state: Step.State
    /// Steps taken (including those of earlier processes, when resumed).
    public private(set) var time: Int

    /// Starts a run at `initial`, or resumes the run `log` already holds (then `initial` serves as
    /// the template for deserializing its checkpoints).
    ///
    /// - Throws: ``EventLogError/replayMismatch(step:detail:)`` when the logged run does not replay
    ///   with this step and these parameters; errors of the log.
    public init(_ step: Step, from initial: Step.State, parameters: Step.Parameters, log: any EventLog,
                checkpointEvery: Int = 0) throws {
        self.step = step
        self.parameters = parameters
        self.log = log
        self.checkpointEvery = Swift.max(0, checkpointEvery)
        if log.count == 0 {
            state = initial
            time = 0
            try log.append(Event(kind: .checkpoint, step: 0, data: try step.serialize(initial)))
            try log.append(Event.stateHash(step: 0, step.hash(initial)))
        } else {
            let recorded = try RecordedTrajectory(log: log)
            state = try recorded.replay(step, parameters: parameters, like: initial)
            time = recorded.steps
            try log.append(Event(kind: .marker, step: time, name: Event.resumeMarker))
        }
    }

    /// Logs `events` (re-stamped with the current step) and the input, takes the step, and logs
    /// the new state's hash (and a checkpoint when one is due). Returns the new state.
    ///
    /// The step's records are appended as one batch after the step ran (one sync under
    /// ``FsyncPolicy/everyRecord``); a crash before the batch is durable leaves no trace of the
    /// step, or a prefix of it without its state hash, which readers ignore.
    @discardableResult
    public func advance(input: Tensor, events: [Event] = []) throws -> Step.State {
        let next = try step.step(state, input: input, parameters: parameters)
        var records = events.map { event -> Event in
            var stamped = event
            stamped.step = time
            return stamped
        }
        records.append(Event.input(step: time, input))
        if checkpointEvery > 0, (time + 1) % checkpointEvery == 0 {
            records.append(Event(kind: .checkpoint, step: time + 1, data: try step.serialize(next)))
        }
        records.append(Event.stateHash(step: time + 1, step.hash(next)))
        try log.append(contentsOf: records)
        state = next
        time += 1
        return next
    }
}
