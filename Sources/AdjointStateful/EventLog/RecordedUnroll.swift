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
    let starts = RecordedSegment<Step>.starts(recorded)
    var carry: SegmentCarry<Step>?
    var report = UnrollReport()
    for index in starts.indices.reversed() {
        var segment = try RecordedSegment(step, recorded: recorded, index: index, parameters: parameters, template: template, loss: loss,
                                          schedule: schedule, options: options)
        defer { segment.removeSnapshotFiles() }
        try segment.prepare()
        carry = try segment.reverse(from: carry)
        report.absorb(segment.report)
    }
    report.steps = horizon
    report.schedule = "\(schedule) per segment of the log (\(starts.count) segments)"
    return carry!.result(report: report)
}

/// What reversing a segment hands to the segment before it: the cotangent of its first state, the
/// parameter gradient and loss accumulated so far (continued, not restarted, so the sums run in the
/// order of one unroll), and the run's final state (from the last segment).
package struct SegmentCarry<Step: StepFunction> {
    package var cotangent: Step.StateCotangent
    package var gradient: Step.ParameterGradient
    package var lossValue: Double
    package var finalState: Step.State

    package init(cotangent: Step.StateCotangent, gradient: Step.ParameterGradient, lossValue: Double, finalState: Step.State) {
        (self.cotangent, self.gradient, self.lossValue, self.finalState) = (cotangent, gradient, lossValue, finalState)
    }

    /// The unroll's result once the first segment is reversed.
    package func result(report: UnrollReport) -> UnrollResult<Step> {
        UnrollResult(loss: lossValue, parameterGradient: gradient, initialStateGradient: cotangent, finalState: finalState, report: report)
    }
}

/// One segment of a recorded run, between two logged checkpoints, reversed in two parts:
/// ``prepare()`` runs the schedule's actions up to its first pullback (forward steps, snapshots,
/// recorded steps: nothing that needs a cotangent), ``reverse(from:)`` the rest, seeded by the
/// later segment. Segments can so be prepared in parallel (on different ranks) and reversed in
/// turn, performing exactly the actions of one segment-by-segment unroll.
package struct RecordedSegment<Step: StepFunction> where Step.Input == Tensor {
    package let start: Int, end: Int
    private var executor: UnrollExecutor<Step>
    private let schedule: CheckpointSchedule
    /// Actions run by ``prepare()``.
    private var prepared = 0
    private let isLast: Bool

    /// The first step of every segment: the log's checkpoints before the horizon.
    package static func starts(_ recorded: RecordedTrajectory) -> [Int] {
        recorded.checkpointSteps.filter { $0 < recorded.steps }
    }

    package init(_ step: Step, recorded: RecordedTrajectory, index: Int, parameters: Step.Parameters, template: Step.State, loss: Step.Loss,
                 schedule: CheckpointSchedule, options: UnrollOptions) throws {
        let starts = Self.starts(recorded)
        start = starts[index]
        end = index + 1 < starts.count ? starts[index + 1] : recorded.steps
        isLast = end == recorded.steps
        self.schedule = schedule
        let initial = try recorded.checkpoint(at: start, step: step, like: template)
        let start = start
        executor = try UnrollExecutor(step, initial: initial, parameters: parameters, steps: end - start, loss: loss,
                                      schedule: schedule, options: options, inputs: { try recorded.input(start + $0) },
                                      plannedEvaluations: 0)
        executor.offset = start
        executor.appliesFinalLoss = isLast
        if options.verifyReplay {
            for k in 0...(end - start) { executor.seedHash(recorded.hash(at: start + k), at: k) }
        }
    }

    /// What the segment's actions counted.
    package var report: UnrollReport {
        var report = executor.report
        report.inputReads = executor.inputReads
        return report
    }

    /// Runs the actions before the first pullback.
    package mutating func prepare() throws {
        let outerStep = executor.stack.unrollStep
        defer { executor.stack.unrollStep = outerStep }
        var count = 0
        do {
            try schedule.forEachAction(steps: end - start) { action in
                if case .pullback = action { throw PreparedUpToPullback() }
                try executor.perform(action)
                count += 1
            }
        } catch is PreparedUpToPullback {}
        prepared = count
    }

    /// Runs the remaining actions, seeded with the later segment's carry (`nil` for the last
    /// segment), and returns the carry for the segment before.
    package mutating func reverse(from carry: SegmentCarry<Step>?) throws -> SegmentCarry<Step> {
        precondition(isLast == (carry == nil), "the last segment starts the reversal, every other continues a carry")
        executor.terminalCotangent = carry?.cotangent
        executor.gradient = carry?.gradient
        executor.lossValue = carry?.lossValue ?? 0
        let outerStep = executor.stack.unrollStep
        defer { executor.stack.unrollStep = outerStep }
        var index = 0
        let skip = prepared
        try schedule.forEachAction(steps: end - start) { action in
            defer { index += 1 }
            if index >= skip { try executor.perform(action) }
        }
        let segment = try executor.result()
        return SegmentCarry(cotangent: segment.initialStateGradient, gradient: segment.parameterGradient, lossValue: segment.loss,
                            finalState: carry?.finalState ?? segment.finalState)
    }

    package mutating func removeSnapshotFiles() { executor.removeSnapshotFiles() }
}

private struct PreparedUpToPullback: Error {}

extension UnrollReport {
    /// Adds a segment's counts (peaks take the maximum).
    package mutating func absorb(_ other: UnrollReport) {
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
