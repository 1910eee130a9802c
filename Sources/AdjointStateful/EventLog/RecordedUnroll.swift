import AdjointTensor

/// Differentiates a run after the fact, from its event log: `L` over the logged trajectory, `∂L/∂θ`,
/// `∂L/∂s[0]`, with the inputs the live run consumed.
///
/// The log's checkpoints cut the run into segments that are reversed last first, each from its
/// logged start state under `schedule` (so memory is bounded by the longest segment, and no state
/// before a segment is recomputed for it). The cotangent of a segment's first state seeds the
/// previous segment, and losses and gradients accumulate in the same order as in one unroll, so
/// the result is bitwise what ``unroll(_:from:parameters:steps:loss:schedule:options:inputs:)``
/// gives over the same inputs. With `options.verifyReplay`, every recomputed state is checked
/// against the *live run's* hash: a step that differs from the one that ran raises
/// ``ReplayDivergence`` naming the state.
///
/// - Parameters:
///   - step: the step the live run took.
///   - recorded: the run's log, read (``RecordedTrajectory``).
///   - parameters: `θ` to differentiate at (for hashes to match, the live run's parameters).
///   - template: a state of the run's structure, for deserializing checkpoints.
///   - loss: the trajectory loss.
///   - schedule: the checkpoint schedule of each segment.
///   - options: settings that do not change the result (replay verification against the live hashes).
public func unroll<Step: StepFunction>(
    _ step: Step, recorded: RecordedTrajectory, parameters: Step.Parameters, template: Step.State, loss: Step.Loss,
    schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions()
) throws -> UnrollResult<Step> where Step.Input == Tensor {
    let horizon = recorded.steps
    guard horizon >= 1 else { throw UnrollError.invalidSteps(horizon) }
    let starts = recorded.checkpointSteps.filter { $0 < horizon }
    var cotangent: Step.StateCotangent?
    var gradient: Step.ParameterGradient?
    var lossValue = 0.0
    var finalState: Step.State?
    var report = UnrollReport()
    report.steps = horizon
    report.schedule = "\(schedule) per segment of the log (\(starts.count) segments)"
    for (index, start) in starts.enumerated().reversed() {
        let end = index + 1 < starts.count ? starts[index + 1] : horizon
        let initial = try recorded.checkpoint(at: start, step: step, like: template)
        var executor = try UnrollExecutor(step, initial: initial, parameters: parameters, steps: end - start, loss: loss,
                                          schedule: schedule, options: options, inputs: { try recorded.input(start + $0) },
                                        plannedEvaluations: 0)
        defer { executor.removeSnapshotFiles() }
        executor.offset = start
        executor.appliesFinalLoss = end == horizon
        executor.terminalCotangent = cotangent
        executor.gradient = gradient
        executor.lossValue = lossValue
        if options.verifyReplay {
            for k in 0...(end - start) { executor.seedHash(recorded.hash(at: start + k), at: k) }
        }
        try executor.run(schedule)
        let segment = try executor.result()
        cotangent = segment.initialStateGradient
        gradient = segment.parameterGradient
        lossValue = segment.loss
        if finalState == nil { finalState = segment.finalState }
        report.absorb(segment.report)
    }
    return UnrollResult(loss: lossValue, parameterGradient: gradient!, initialStateGradient: cotangent!,
                        finalState: finalState!, report: report)
}

extension UnrollReport {
    /// Adds a segment's counts (peaks take the maximum).
    mutating func absorb(_ other: UnrollReport) {
        forwardSteps += other.forwardSteps
        recordedSteps += other.recordedSteps
        replayChecks += other.replayChecks
        verificationHashes = Swift.max(verificationHashes, other.verificationHashes)
        checkedEvery = Swift.max(checkedEvery, other.checkedEvery)
        inputReads += other.inputReads
        diskWrites += other.diskWrites
        diskReads += other.diskReads
        peakSnapshots = Swift.max(peakSnapshots, other.peakSnapshots)
        peakSnapshotBytes = Swift.max(peakSnapshotBytes, other.peakSnapshotBytes)
        peakRecordedSteps = Swift.max(peakRecordedSteps, other.peakRecordedSteps)
    }
}
