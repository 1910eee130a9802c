import AdjointAutodiff
import AdjointStateful
import AdjointTensor

extension Communicator {
    /// Differentiates a recorded run across the ranks: bitwise the result of
    /// `unroll(_:recorded:parameters:template:loss:schedule:options:)` in one process.
    ///
    /// The log's checkpoints cut the run into segments; each rank takes a contiguous block of them
    /// and prepares the last `preparedSegments` of its block at once, in parallel with the other
    /// ranks (the forward sweep of each segment under `schedule`, from its logged start state, up
    /// to its first pullback). Then the segments are reversed last first, as in one process: the
    /// rank holding the last block reverses its segments (preparing the earlier ones of its block
    /// in turn, each just before its reversal) and broadcasts the carry (the cotangent of its first
    /// state, the parameter gradient and loss summed so far, the run's final state) to the rank
    /// before it, and so on down to rank 0. Every rank returns the same result, whatever
    /// `preparedSegments` is: each segment performs the same actions, only when differs.
    ///
    /// Every rank must read the same log (on a cluster: a shared file, or a copy on each node). A
    /// rank waits for the carry while the later ranks reverse, so the communicator's ``timeout``
    /// must cover the reversal of the later blocks. Memory per rank is the schedule's for at most
    /// `preparedSegments` segments, however long the log; the report's schedule line says how
    /// many were held at once.
    ///
    /// - Throws: ``DistributedError/invalidArgument(field:value:limit:)`` for `preparedSegments`
    ///   outside 1 ... 65536; ``DistributedError/mismatch(collective:field:values:)`` when the ranks'
    ///   logs differ in length or segments; every error of the single-process unroll (on the rank
    ///   that met it; the others then fail in the next broadcast with the timeout or a mismatch).
    public func unroll<Step: StepFunction>(
        _ step: Step, recorded: RecordedTrajectory, parameters: Step.Parameters, template: Step.State, loss: Step.Loss,
        schedule: CheckpointSchedule = .binomial(snapshots: 32), options: UnrollOptions = UnrollOptions(), preparedSegments: Int = 4
    ) throws -> UnrollResult<Step>
    where Step.Input == Tensor, Step.State: ParameterCollection, Step.StateCotangent == Step.State,
          Step.Parameters: ParameterCollection, Step.ParameterGradient == Step.Parameters {
        guard (1 ... Self.maximumPreparedSegments).contains(preparedSegments) else {
            throw DistributedError.invalidArgument(field: "preparedSegments", value: "\(preparedSegments)", limit: "1 ... \(Self.maximumPreparedSegments)")
        }
        let horizon = recorded.steps
        guard horizon >= 1 else { throw UnrollError.invalidSteps(horizon) }
        let starts = RecordedSegment<Step>.starts(recorded)
        let seen = try allGather(Tensor([Int64(horizon), Int64(starts.count), Int64(starts.last ?? 0)])).scalars(as: Int64.self)
        for (column, field) in ["logged steps", "segments", "last segment's start"].enumerated() {
            let values = (0..<size).map { seen[3 * $0 + column] }
            if Set(values).count > 1 { throw DistributedError.mismatch(collective: "unroll", field: field, values: values.map(String.init)) }
        }
        let mine = Array(shard(Array(starts.indices)))
        // This rank's segments, by position in its block: prepared (held) or not yet / no longer.
        var segments = [RecordedSegment<Step>?](repeating: nil, count: mine.count)
        defer { for position in segments.indices { segments[position]?.removeSnapshotFiles() } }
        var held = 0, peak = 0
        func prepare(_ position: Int) throws {
            var segment = try RecordedSegment(step, recorded: recorded, index: mine[position], parameters: parameters, template: template,
                                              loss: loss, schedule: schedule, options: options)
            do { try segment.prepare() } catch { segment.removeSnapshotFiles(); throw error }
            segments[position] = segment
            held += 1
            peak = Swift.max(peak, held)
        }
        // While the later ranks reverse: the segments this rank reverses first.
        for position in mine.indices.suffix(preparedSegments) { try prepare(position) }
        var carry: SegmentCarry<Step>?
        var report = UnrollReport()
        for owner in (0..<size).reversed() {
            if owner == rank {
                for position in mine.indices.reversed() {
                    if segments[position] == nil { try prepare(position) }
                    carry = try segments[position]!.reverse(from: carry)
                    report.absorb(segments[position]!.report)
                    segments[position]!.removeSnapshotFiles()
                    segments[position] = nil
                    held -= 1
                }
            }
            carry = try broadcast(carry, root: owner, template: template, parameters: parameters)
        }
        report.steps = horizon
        report.schedule = "\(schedule) per segment of the log (\(starts.count) segments; \(mine.count) on rank \(rank) of \(size), "
            + "at most \(peak) prepared at once)"
        guard let carry else { throw UnrollError.invalidSteps(horizon) }
        return carry.result(report: report)
    }

    /// The largest `preparedSegments` of ``unroll(_:recorded:parameters:template:loss:schedule:options:preparedSegments:)``.
    public static let maximumPreparedSegments = 65536

    /// `root`'s carry on every rank (`nil` until some rank has reversed a segment).
    private func broadcast<Step: StepFunction>(_ carry: SegmentCarry<Step>?, root: Int, template: Step.State, parameters: Step.Parameters) throws
        -> SegmentCarry<Step>? where Step.State: ParameterCollection, Step.StateCotangent == Step.State,
                                      Step.Parameters: ParameterCollection, Step.ParameterGradient == Step.Parameters {
        let header = try broadcast(Tensor([carry == nil ? 0 : 1, Int64(bitPattern: carry?.lossValue.bitPattern ?? 0)]), root: root).scalars(as: Int64.self)
        guard header[0] == 1 else { return nil }
        let mine = rank == root
        return SegmentCarry(cotangent: try broadcast(parameters: mine ? carry!.cotangent : template, root: root),
                            gradient: try broadcast(parameters: mine ? carry!.gradient : parameters, root: root),
                            lossValue: Double(bitPattern: UInt64(bitPattern: header[1])),
                            finalState: try broadcast(parameters: mine ? carry!.finalState : template, root: root))
    }
}
