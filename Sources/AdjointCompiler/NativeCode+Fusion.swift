import AdjointTensor

/// Fusion across chunked runs by recomputation.
///
/// A chunked run reads, element by element, values that earlier elementwise instructions wrote to
/// the frame — often shifted (a slice, a pad: a stencil, or the backward of one) and often of
/// another length, so they cannot share a loop with their producer. Instead of reading such a
/// value back, the run can recompute it where it needs it: element `k` of the read is element
/// `k + shift` of the producer, which is the producer's formula applied to its own operands at
/// that element — recursively, down to values that stay in memory (arguments, captures, results
/// of the interpreter) and that nothing overwrites in between. Each recomputed element runs the
/// same operations on the same inputs, so results are bitwise those of reading it back.
///
/// A producer that no one then reads from memory is not stored, and one that no one needs at
/// all is not computed. The gradient of a stencil thereby becomes one pass over its input.
extension NativeCodeGenerator {
    /// Operand `operand` of instruction `instruction`.
    struct Read: Hashable { let instruction: Int, operand: Int }

    /// Instruction `instruction` evaluated at element `k + shift` of a run's loop over `k`: each
    /// of its operands either read from memory or recomputed in turn.
    struct Recomputation {
        let instruction: Int
        let shift: Int
        /// Per operand of the instruction (see `reads(_:)`): the operand's producer recomputed,
        /// or nil when the operand is read from memory.
        let operands: [Recomputation?]
    }

    /// What the chunked runs do beyond their instructions in order (see the extension's
    /// discussion).
    struct Fusion {
        /// Reads of run instructions that recompute their producer.
        var recomputed: [Read: Recomputation] = [:]
        /// Run instructions whose result no one needs: not computed.
        var skipped: Set<Int> = []
        /// Run instructions whose result is stored (someone reads it from memory).
        var stored: Set<Int> = []
        /// Per run: the instruction up to which a program must be run for the run to take its
        /// native form — the end of the last run that recomputes one of its values (the run's
        /// own end when none does). A run cut short is interpreted, and stores everything.
        var reach: [Int] = []
    }

    /// The most instructions one recomputed read may evaluate per element.
    static let recomputationBudget = 48

    /// Whether an elementwise instruction costs more to compute again than to read back: a
    /// transcendental function (one `tanh` is tens of operations per element; a read from memory
    /// is a small fraction of that even when it misses the caches), or `pow`.
    static func isCostly(_ i: Instruction) -> Bool {
        switch i.op {
        case .exp, .expm1, .log, .log1p, .sin, .cos, .tanh, .sigmoid, .softplus, .pow: return true
        default: return false
        }
    }

    /// The frame bytes instruction `k` may write: for the kinds with a native form exactly, for
    /// others `n` elements of the widest type.
    func written(_ k: Int) -> Region {
        let i = instructions[k]
        return chunkable(i) || Self.supports(i) ? Self.write(i) : Region(offset: i.y, bytes: i.n * 8, scalar: false)
    }

    /// Whether an instruction in `range` writes any byte of `region`.
    func overwritten(_ region: Region, in range: Range<Int>) -> Bool {
        range.contains { written($0).overlaps(region) }
    }

    /// The latest instruction in `floor ..< before` writing a byte of `region`, or nil.
    func producer(of region: Region, before: Int, floor: Int) -> Int? {
        (floor..<before).last { written($0).overlaps(region) }
    }

    /// The element of producer `p` that element `j` of `region` (an operand of an instruction
    /// of `n` elements) reads, as `j + shift`; nil when `p` cannot be recomputed for it (not
    /// elementwise, another type, elements misaligned or outside its result).
    func elementShift(of region: Region, float64: Bool, from p: Int) -> Int? {
        let w = instructions[p], size = float64 ? 8 : 4
        guard !region.scalar, chunkable(w), w.float64 == float64 else { return nil }
        let delta = region.offset - w.y
        guard delta >= 0, delta % size == 0, region.offset + region.bytes <= w.y + w.n * size else { return nil }
        return delta / size - (region.padded?.lowerBound ?? 0)
    }

    /// The recomputation of producer `p` at `shift` for a run ending at `end`, whose values read
    /// from memory must not change after the instruction reading them, at most `budget`
    /// instructions (what is left is returned through it); its memory reads are added to `leaves`.
    func recomputation(_ p: Int, shift: Int, floor: Int, end: Int, budget: inout Int, leaves: inout [Region],
                       producers: inout Set<Int>) -> Recomputation? {
        budget -= 1
        let w = instructions[p]
        guard budget >= 0, !Self.isCostly(w) else { return nil }
        var operands: [Recomputation?] = []
        var found: [Region] = [], writers: Set<Int> = []
        for region in reads(w) {
            var sub: Recomputation?
            if let q = producer(of: region, before: p, floor: floor), let d = elementShift(of: region, float64: w.float64, from: q) {
                var attempt = budget, below: [Region] = [], belowProducers: Set<Int> = []
                if let r = recomputation(q, shift: shift + d, floor: floor, end: end, budget: &attempt, leaves: &below, producers: &belowProducers) {
                    (sub, budget) = (r, attempt)
                    found += below
                    writers.formUnion(belowProducers)
                }
            }
            // What is still read from memory: the before/after elements, and the operand itself
            // when it is not recomputed — read after the instruction that read it originally, so
            // whoever wrote it must store it (it may have no other reader left).
            let memory = sub == nil ? region.footprint : Array(region.footprint.dropFirst())
            for r in memory {
                // From `p` itself on: an instruction writing in place over its operand leaves
                // its result there, not what it read.
                guard !overwritten(r, in: p..<end) else { return nil }
                found.append(r)
                if let q = producer(of: r, before: p, floor: 0) { writers.insert(q) }
            }
            operands.append(sub)
        }
        leaves += found
        producers.formUnion(writers)
        return Recomputation(instruction: p, shift: shift, operands: operands)
    }

    /// Decides, for `runs` (from ``chunkedSegments(splits:)``), which reads recompute their
    /// producer, which results are stored and which are not computed at all.
    ///
    /// A read recomputes its producer when the producer is elementwise and not costly
    /// (``isCostly(_:)``), computed after the last
    /// split before the run (the part after a split may be re-run on its own), before the run,
    /// within ``recomputationBudget``, every value the recomputation reads from memory is
    /// unchanged up to the end of the run, and the arrays recomputations add to those the run
    /// reads (two shifted reads of one array are one stream of memory) are no more than the
    /// reads they may replace. Then, from the last
    /// instruction back: a run instruction is stored when it is kept to the end, when an
    /// instruction outside the runs reads it before its last reader (not knowing which regions
    /// those read, every one counts), or when a run instruction computed in that span reads its
    /// region from memory; it is computed when stored or read from a variable in its own run.
    func fusion(_ runs: [Range<Int>], splits: Set<Int>) -> Fusion {
        var fusion = Fusion()
        var runOf = [Int](repeating: -1, count: instructions.count)
        for (r, run) in runs.enumerated() { for k in run { runOf[k] = r } }
        var memoryReads = [[Region]](repeating: [], count: instructions.count)
        var variableReads = [[Int]](repeating: [], count: instructions.count)
        var recomputedNodes = [Set<Int>](repeating: [], count: runs.count)
        var leafWriters = [Set<Int>](repeating: [], count: instructions.count)   // per reader: whose results its recomputations read
        for run in runs {
            let floor = splits.filter { $0 <= run.lowerBound }.max() ?? 0
            var latest: [Int: Int] = [:]   // offset → the run instruction whose result a coinciding read takes from its variable
            var streams: [Region] = []     // arrays the run reads from memory, besides what recomputation may replace
            var candidates = 0, added = 0  // reads recomputation may replace; arrays it has added
            for k in run {
                for region in reads(instructions[k]) where !region.scalar {
                    if let p = producer(of: region, before: run.lowerBound, floor: floor), elementShift(of: region, float64: instructions[k].float64, from: p) != nil {
                        candidates += 1
                    } else {
                        streams.append(region)
                    }
                }
            }
            for k in run {
                let i = instructions[k]
                for (o, region) in reads(i).enumerated() {
                    if !region.scalar, region.padded == nil, let w = latest[region.offset],
                       instructions[w].float64 == i.float64, Self.write(instructions[w]).bytes == region.bytes {
                        variableReads[k].append(w)
                        continue
                    }
                    if let p = producer(of: region, before: run.lowerBound, floor: floor),
                       let d = elementShift(of: region, float64: i.float64, from: p) {
                        var budget = Self.recomputationBudget, leaves: [Region] = [], writers: Set<Int> = []
                        if let tree = recomputation(p, shift: d, floor: floor, end: run.upperBound, budget: &budget, leaves: &leaves,
                                                    producers: &writers) {
                            var new: [Region] = []
                            for a in leaves where !a.scalar && !(streams + new).contains(where: { $0.overlaps(a) }) { new.append(a) }
                            if added + new.count <= candidates {
                                fusion.recomputed[Read(instruction: k, operand: o)] = tree
                                leafWriters[k].formUnion(writers)
                                streams += new
                                added += new.count
                                memoryReads[k] += leaves + region.footprint.dropFirst()
                                var pending = [tree]
                                while let node = pending.popLast() {
                                    recomputedNodes[runOf[k]].insert(node.instruction)
                                    pending += node.operands.compactMap { $0 }
                                }
                                continue
                            }
                        }
                    }
                    memoryReads[k] += region.footprint
                }
                // A reduction's result is written after the run, not per element.
                if i.kind != .reduce { latest[i.y] = k }
            }
        }
        // Liveness, from the last instruction back (its readers are decided first). A value a
        // recomputation reads is stored whatever its last reader (the recomputation may run later).
        for w in instructions.indices.reversed() where runOf[w] >= 0 {
            // A fused reduction always runs; its caller writes its result after the run.
            if instructions[w].kind == .reduce {
                fusion.stored.insert(w)
                continue
            }
            let last = lastReaders.isEmpty ? Int.max : lastReaders[w]
            var stored = last == Int.max || ((w + 1)..<instructions.count).contains { !fusion.skipped.contains($0) && leafWriters[$0].contains(w) }
            if !stored, last > w {
                let target = Self.write(instructions[w])
                for j in (w + 1)...Swift.min(last, instructions.count - 1) {
                    if runOf[j] < 0 || (!fusion.skipped.contains(j) && memoryReads[j].contains { $0.overlaps(target) }) { stored = true; break }
                }
            }
            let needed = stored || runs[runOf[w]].contains { j in j > w && !fusion.skipped.contains(j) && variableReads[j].contains(w) }
            if stored { fusion.stored.insert(w) }
            if !needed { fusion.skipped.insert(w) }
        }
        fusion.reach = runs.indices.map { r in
            var end = runs[r].upperBound
            for (s, nodes) in recomputedNodes.enumerated() where nodes.contains(where: { runs[r].contains($0) }) { end = Swift.max(end, runs[s].upperBound) }
            return end
        }
        return fusion
    }
}
