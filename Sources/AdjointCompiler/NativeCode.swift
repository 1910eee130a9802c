import AdjointTensor
import AdjointIR

/// Writes C for runs of a ``CompiledProgram``'s instructions: one function per run, taking the
/// frame's base address, with every offset, size and index table a constant.
///
/// The C does exactly what the interpreted instruction does, operation for operation, in the same
/// order: the same loops, the same libm functions (`exp`, `log1p`, `tanh`, …, the ones Swift
/// Numerics calls), the same comparisons for `max`, `relu` and `sign`, the same pairwise summation
/// with four accumulators. Compiled with `-ffp-contract=off` and without fast-math, each result is
/// the interpreter's bit for bit (tested per operator family and dtype on edge inputs). What is
/// covered: elementwise unary and binary operators, `multiplyAdd`, gathers, and sum/mean/max/min
/// reductions small enough to run serially; large elementwise operators and gathers as chunked
/// runs (``chunkedSegments(splits:)``: one loop over a chunk of elements for the whole run, chunks
/// on the worker threads) when each operand reads its own elements, a single element throughout,
/// or — through an index table — one contiguous run or one element, with a zero or one element
/// repeated before and after it (a slice, a shift, a one-dimensional pad or concatenation:
/// ``AffineRead``); matmul, logsumexp, other
/// large table-driven operators and fallbacks stay interpreted.
struct NativeCodeGenerator {
    typealias Instruction = CompiledProgram.Instruction

    /// Bumped whenever the emitted code changes meaning (it is part of the cache key).
    static let version = 9
    /// The largest elementwise instruction compiled into a plain run: larger ones go to chunked
    /// runs (``chunkable(_:)``) or keep the interpreter's parallel loops.
    static let elementLimit = 4096
    /// Index tables up to this length are unrolled into constant indices.
    static let unrollLimit = 32

    let instructions: [Instruction]
    let tables: [Int]
    /// Per instruction: the index of the last instruction that reads its result (`Int.max`: kept
    /// to the end — an output, or a value read after a boundary). A chunked run does not store a
    /// result that only its own instructions read: they take it from a variable. Empty: every
    /// result is stored.
    var lastReaders: [Int] = []
    /// Frame regions (arguments, outputs) that only chunked runs touch: a run reads or writes them
    /// through the pointer its caller passes for each (`bound[j]`), or in the frame when that is
    /// null, so a caller may bind a tensor's memory in place of copying it (see
    /// ``CompiledProgram/callAsFunction(_:)``).
    var bound: [(offset: Int, bytes: Int)] = []
    /// ``affine(_:_:)`` per table start: the analyses ask for each table many times, and a table
    /// is as long as its instruction.
    private let affineReads = AffineReads()
    private final class AffineReads { var byStart: [Int: AffineRead?] = [:] }

    /// Whether instruction `i` has a native form.
    static func supports(_ i: Instruction) -> Bool {
        guard !i.compact else { return false }   // plain runs read tables entry by entry
        switch i.kind {
        case .unary: return i.n <= elementLimit && unaryExpression(i.op, "x", float64: true) != nil
        case .binary: return i.n <= elementLimit && binaryExpression(i.op, "a", "b", float64: true) != nil
        case .multiplyAdd, .gather: return i.n <= elementLimit
        case .reduce:
            guard [.sum, .mean, .max, .min].contains(i.op), i.outer * Swift.max(i.extent, 1) * i.inner <= 1 << 16 else { return false }
            return i.inner == 1 ? i.extent <= Summation.blockSize : i.extent <= 64 && i.outer * i.inner < Parallelism.elementChunk
        case .matmul, .fallback: return false
        }
    }

    /// Maximal runs of supported instructions, not crossing `splits` (instruction indices a run
    /// may start at, such as a program's boundary).
    func segments(splits: Set<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start: Int?
        for k in instructions.indices {
            if splits.contains(k), let s = start { result.append(s..<k); start = nil }
            if Self.supports(instructions[k]) { if start == nil { start = k } }
            else if let s = start { result.append(s..<k); start = nil }
        }
        if let s = start { result.append(s..<instructions.count) }
        return result
    }

    /// A C translation unit defining `adjoint_segment_<k>` for each of `segments` and
    /// `adjoint_chunked_<k>` for each of `chunked`.
    func source(_ segments: [Range<Int>], chunked: [Range<Int>] = [], fusion: Fusion? = nil) -> String {
        var out = Self.prelude
        for (k, segment) in segments.enumerated() {
            out += "\nvoid adjoint_segment_\(k)(unsigned char *base) {\n"
            for i in segment { out += emit(instructions[i]) }
            out += "}\n"
        }
        let fusion = fusion ?? self.fusion(chunked, splits: [])
        for (k, run) in chunked.enumerated() { out += emitChunked(run, name: Self.chunkedFunctionName(k), fusion: fusion) }
        return out
    }

    /// A CUDA C++ translation unit (for NVRTC) with a kernel `adjoint_chunked_<k>` for each of
    /// `chunked`: the same loop bodies as the C functions of ``source(_:chunked:fusion:)`` — the
    /// same formulas, recomputations and stores — one element per device thread, through the
    /// edge form of the body (each padded read tests its element). A run with fused reductions
    /// writes each reduction's operand to a scratch array (`scratch`, 8 bytes per element and
    /// reduction) and has a second kernel, `adjoint_chunked_<k>_sums`, sum each chunk of it
    /// pairwise into `partials` (laid out as ``fusedReductions(_:)`` says), one thread per chunk:
    /// the CPU's sums, operation for operation. Compiled with `--fmad=false` (see ``NVRTC``), the
    /// arithmetic is the CPU's bit for bit; libm's functions are the device library's there.
    ///
    /// `segments`: the plain runs, each a kernel `adjoint_segment_<k>(base)` that one block of
    /// ``blockThreads`` threads runs: the C function's instructions in order, one phase each,
    /// every phase's loop dealt out over the threads (``emit(_:parallel:)``) and the threads
    /// meeting at a barrier before the next (`ADJOINT_PHASES`), so that a whole program can run on
    /// the device (`DeviceProgram`).
    ///
    /// `reductions`: instructions reducing over axes (sum, mean, max, min) that no run holds, each
    /// a kernel `adjoint_reduce_<k>(base)` (``cudaReduction(_:direct:)``); `elementwise`: elementwise
    /// instructions no run holds, each a kernel `adjoint_elementwise_<k>(base, tables)`
    /// (``cudaElementwise(_:direct:broadcast:shape:)``).
    func cudaSource(segments: [Range<Int>] = [], chunked: [Range<Int>], fusion: Fusion? = nil, reductions: [Int] = [], elementwise: [Int] = []) -> String {
        let fusion = fusion ?? self.fusion(chunked, splits: [])
        var out = Self.cudaPrelude
        for (k, segment) in segments.enumerated() {
            out += "\nextern \"C\" __global__ void __launch_bounds__(\(Self.blockThreads)) \(Self.functionName(k))(unsigned char *base) {\n"
                + "ADJOINT_PHASES(\(segment.count))\n"
            for (phase, i) in segment.enumerated() {
                out += "ADJOINT_PHASE(\(phase))\n" + emit(instructions[i], parallel: true) + "ADJOINT_PHASE_END\n"
            }
            out += "ADJOINT_PHASES_END\n}\n"
        }
        for (k, run) in chunked.enumerated() { out += emitChunked(run, name: Self.chunkedFunctionName(k), fusion: fusion, cuda: true) }
        for k in reductions { out += cudaReduction(k) }
        for k in elementwise { out += cudaElementwise(k) }
        return out
    }

    /// Whether instruction `i` has an elementwise device kernel of its own
    /// (``cudaElementwise(_:direct:broadcast:shape:)``): an elementwise instruction no run holds — one reading its
    /// operands through index tables (a broadcast, a folded gather) too large for a plain run.
    static func hasElementwiseKernel(_ i: Instruction) -> Bool {
        switch i.kind {
        case .unary: return unaryExpression(i.op, "x", float64: true) != nil
        case .binary: return binaryExpression(i.op, "a", "b", float64: true) != nil
        case .multiplyAdd: return true
        case .gather: return i.table >= 0
        default: return false
        }
    }

    /// The operands whose index tables an elementwise kernel reads from device memory (`n`
    /// entries each, from `i.table`): 0 without tables, and for compact ones (``AffineTable``s,
    /// whose rules the kernel's source holds).
    static func tableOperands(_ i: Instruction) -> Int {
        guard i.table >= 0, !i.compact else { return 0 }
        switch i.kind {
        case .binary: return 2
        case .multiplyAdd: return 3
        case .gather: return 1
        default: return 0
        }
    }

    static func elementwiseName(_ k: Int) -> String { "adjoint_elementwise_\(k)" }

    static func directName(_ k: Int) -> String { "adjoint_direct_\(k)" }

    /// Where a generated kernel of one instruction finds its operands and writes its result: at
    /// their offsets in the frame (its one parameter, `base`), or — a direct kernel
    /// (``directName(_:)``), for an operator whose operands and result stay where they are — each
    /// at a pointer parameter of its own: `p0`, `p1`, `p2` in operand order, `out` for the result.
    struct KernelOperands {
        /// A direct kernel's parameters (the pointers of operands it does not have are null).
        static let directParameters = "unsigned char *p0, unsigned char *p1, unsigned char *p2, unsigned char *out"
        /// The operands' and the result's frame offsets (nil: a direct kernel).
        let offsets: (inputs: [Int], output: Int)?

        init(inputs: [Int], output: Int, direct: Bool) {
            precondition(!direct || inputs.count <= 3, "a direct kernel takes at most three operands")
            offsets = direct ? nil : (inputs, output)
        }

        init(_ f: CompiledProgram.Fallback, direct: Bool) {
            self.init(inputs: f.inputs.map(\.offset), output: f.output.offset, direct: direct)
        }

        var parameters: String { offsets == nil ? Self.directParameters : "unsigned char *base" }
        /// The parameters of a kernel that reads the operands and writes partial sums to `scratch`.
        var leavesParameters: String { offsets == nil ? "unsigned char *p0, unsigned char *p1, unsigned char *p2, void *scratch" : "unsigned char *base, void *scratch" }
        /// The parameter of a kernel that only writes the result.
        var outputParameter: String { offsets == nil ? "unsigned char *out" : "unsigned char *base" }
        /// Operand `j`'s address (a C `unsigned char *` expression).
        func input(_ j: Int) -> String { offsets.map { "(base + \($0.inputs[j]))" } ?? "p\(j)" }
        /// The result's address.
        var output: String { offsets.map { "(base + \($0.output))" } ?? "out" }
        /// The kernel's name: `frameName`, or instruction `k`'s direct kernel's.
        func name(_ frameName: String, _ k: Int) -> String { offsets == nil ? directName(k) : frameName }
    }

    /// A kernel `adjoint_elementwise_<k>(base, tables)` for elementwise instruction `k`, one
    /// thread per element, with the formula of ``emit(_:)``'s loop; operands read through index
    /// tables take them from `tables` (the instruction's ``tableOperands(_:)`` tables, copied to
    /// the device) rather than from constants in the source, except compact tables, whose rules
    /// (``AffineTable``: a slice, a shift, a pad) are the source's constants. An addition accumulating in place
    /// leaves the elements the other operand does not supply unwritten, as the CPU does.
    ///
    /// `direct`: the kernel `adjoint_direct_<k>(p0, p1, p2, out)` instead, reading its operands
    /// (in order: a unary's one, a binary's two, a multiply-add's three) at the addresses it is
    /// given and writing at `out` — for an operator whose operands and result stay where they are
    /// (``directName(_:)``). An instruction with tables then broadcasts its operands of shapes
    /// `broadcast` to the output's `shape` through strides instead (no folded gathers: a
    /// broadcast's tables are its strides'); one without reads them flat.
    func cudaElementwise(_ k: Int, direct: Bool = false, broadcast: [[Int]] = [], shape: [Int] = []) -> String {
        let i = instructions[k], t = i.float64 ? "double" : "float", zero = i.float64 ? "0.0" : "0.0f", n = i.n
        precondition(!direct || i.table < 0 || (!broadcast.isEmpty && i.kind != .gather && i.accumulator < 0), "a direct kernel reads no tables")
        var out = direct
            ? "\nextern \"C\" __global__ void \(Self.directName(k))(\(KernelOperands.directParameters)) {\n"
            : "\nextern \"C\" __global__ void \(Self.elementwiseName(k))(unsigned char *base, void *tables) {\n"
        out += "long k = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (k >= \(n)) return;\n"
            + (direct ? "\(t) *y = (\(t) *)out;\n" : "\(t) *frame = (\(t) *)base; \(t) *y = (\(t) *)(base + \(i.y)); const long *t = (const long *)tables;\n")
        /// Operand `o`'s table entry for element `k`: from `tables`, or its compact table's rule.
        func entry(_ o: Int) -> String {
            guard i.compact else { return "t[\(o * n) + k]" }
            let rule = AffineTable(tables[(i.table + o * AffineTable.width)...])
            return "(k < \(rule.lo) ? \(rule.before)L : k < \(rule.hi) ? \(rule.first)L + \(rule.stride)L * (k - \(rule.lo)) : \(rule.after)L)"
        }
        let strided = direct && i.table >= 0
        if strided {
            out += Self.broadcastOffsets(shape, broadcast, index: "k")
        } else if i.table >= 0 {
            let operands = i.kind == .gather ? 1 : i.kind == .multiplyAdd ? 3 : 2
            for o in 0..<operands { out += "const long e\(o) = \(entry(o));\n" }
        }
        /// Operand `o`: through its table or its broadcast strides, or flat at `offset` (a single
        /// element read throughout where `scalar`).
        func read(_ o: Int, _ offset: Int, scalar: Bool = false) -> String {
            if strided { return "((\(t) *)p\(o))[o\(o)]" }
            if i.table >= 0 { return "(e\(o) >= 0 ? frame[e\(o)] : \(zero))" }
            return "((\(t) *)(\(direct ? "p\(o)" : "base + \(offset)")))[\(scalar ? "0" : "k")]"
        }
        switch i.kind {
        case .unary:
            out += "y[k] = \(Self.unaryExpression(i.op, read(0, i.a), float64: i.float64)!);\n"
        case .binary:
            if i.accumulator >= 0, i.table >= 0 { out += "if (e\(1 - i.accumulator) < 0) return;\n" }
            out += "y[k] = \(Self.binaryExpression(i.op, read(0, i.a, scalar: i.aScalar), read(1, i.b, scalar: i.bScalar), float64: i.float64)!);\n"
        case .multiplyAdd:
            // Rounded after the product and after the sum (Kernels.productSum), never fused.
            out += "{ \(t) p = \(read(0, i.a)) * \(read(1, i.b)); y[k] = p + \(read(2, i.c)); }\n"
        case .gather:
            let pad = i.float64 ? "adjoint_bits_d(\(i.pad.bitPattern)ULL)" : "adjoint_bits_f(\(Float(i.pad).bitPattern)U)"
            out += "y[k] = e0 < 0 ? \(pad) : frame[e0];\n"
        default:
            preconditionFailure("no elementwise kernel for \(i.kind)")
        }
        return out + "}\n"
    }

    /// Whether instruction `i` has a device kernel of its own (``cudaReduction(_:direct:)``): a sum,
    /// mean, maximum, minimum or log-sum-exp over an axis layout.
    static func hasReductionKernel(_ i: Instruction) -> Bool {
        i.kind == .reduce && [.sum, .mean, .max, .min, .logsumexp].contains(i.op)
    }

    static func reductionName(_ k: Int) -> String { "adjoint_reduce_\(k)" }

    /// C statements combining blocks `b` from `from` to before `to` (C expressions), each
    /// `value` (statements that set `v`, of C type `t`, for block `b`), as they arrive into `acc`
    /// in `Summation.tree`'s order: equal subtrees left with right (`combine`) on a 64-entry
    /// stack, what remains from the right. Blocks `from ..< to` of a larger run, `from` a multiple
    /// of a power of two `m` at least `to - from`, form a subtree of the run's tree: their `acc`,
    /// so combined in turn, gives the run's.
    static func blockTree(from: String, to: String, _ t: String, _ value: String, _ combine: (String, String) -> String) -> String {
        "{ \(t) stack[64]; long sizes[64]; int top = 0;\n"
            + "for (long b = \(from); b < \(to); b++) {\n" + value
            + "long size = 1; while (top > 0 && sizes[top - 1] == size) { v = \(combine("stack[top - 1]", "v")); size *= 2; top -= 1; }\n"
            + "stack[top] = v; sizes[top] = size; top += 1;\n}\n"
            + "acc = stack[top - 1]; for (int j = top - 2; j >= 0; j--) acc = \(combine("stack[j]", "acc")); }\n"
    }

    /// A kernel `adjoint_reduce_<k>(base)` for reduction instruction `k`, one thread per output
    /// element, computing it as ``Kernels/reduceTyped`` does under the strict policy, operation
    /// for operation: along a contiguous axis, a sum is ``Summation``'s (pairwise within 2¹⁵-element
    /// blocks, the blocks' sums in its fixed tree) and a maximum or minimum runs left to right;
    /// along a strided axis, rows are combined in blocks of 64, the blocks in the same fixed tree.
    /// `direct`: the kernel `adjoint_direct_<k>(p0, p1, p2, out)` on its operand's and result's
    /// addresses (``directName(_:)``). The tree is built as the blocks arrive: equal-sized
    /// subtrees are combined left with right as soon as both exist, and what is left is combined
    /// from the right — the order of
    /// `Summation.tree`'s in-place passes, with a stack of at most 64 entries instead of an array
    /// per block. A log-sum-exp is `Kernels.logsumexp`'s: the maximum so, then where it is finite
    /// the sum so of the shifted exponentials — computed where the sum reads them, so nothing is
    /// stored — and the maximum plus the sum's logarithm; the maximum itself where it is not finite.
    ///
    /// A sum or mean along a contiguous axis of at least 2 · ``sumLeaf`` elements is split over
    /// threads instead (``sumSplit(_:)``, ``splitSumKernels(_:_:float64:outer:extent:split:at:leaf:result:)``).
    func cudaReduction(_ k: Int, direct: Bool = false) -> String {
        let i = instructions[k], at = KernelOperands(inputs: [i.a], output: i.y, direct: direct)
        if let split = Self.sumSplit(i) {
            let t = i.float64 ? "double" : "float"
            return Self.splitSumKernels(at.name(Self.reductionName(k), k), k, float64: i.float64, outer: i.outer, extent: i.extent, split: split, at: at,
                                        leaf: { "adjoint_pairwise_\(i.float64 ? "d" : "f")((const \(t) *)\(at.input(0)) + q * \(i.extent) + \($0), \($1))" },
                                        result: { i.op == .mean ? "\($0) / (\(t))\(i.extent)" : $0 })
        }
        return Self.reductionKernel(k, op: i.op, float64: i.float64, outer: i.outer, extent: i.extent, inner: i.inner, at: at)
    }

    /// The elements a thread of a split sum (``sumSplit(_:)``) adds up, about.
    static let sumLeaf = 2048

    /// How a strict sum along a contiguous axis is split over threads: each row's `blocks` of
    /// ``Summation``'s, each block's pairwise tree cut at `depth` into `leaves` subtrees (fewer
    /// where a branch ends above it), one thread each.
    struct SumSplit: Equatable {
        let blocks: Int, depth: Int
        var leaves: Int { 1 << depth }
        /// The threads of the leaves' kernel for `outer` rows (one per subtree, some idle).
        func threads(outer: Int) -> Int { outer * blocks * leaves }
        /// The partial sums' bytes for `outer` rows (8 each, float32 ones too).
        func scratchBytes(outer: Int) -> Int { threads(outer: outer) * 8 }
    }

    /// The split of reduction instruction `i` (nil: it runs one thread per output element): a sum
    /// or mean along a contiguous axis (`inner` 1) of at least 2 · ``sumLeaf`` elements. One
    /// thread per row would add them all one after another; the split's leaves are at most about
    /// ``sumLeaf`` elements each.
    static func sumSplit(_ i: Instruction) -> SumSplit? {
        guard i.kind == .reduce, i.op == .sum || i.op == .mean, i.inner == 1, i.extent >= 2 * sumLeaf else { return nil }
        return sumSplit(extent: i.extent)
    }

    /// The split of a strict sum of `extent` elements (no blocks for none; one leaf for up to
    /// about 2 · ``sumLeaf``).
    static func sumSplit(extent: Int) -> SumSplit {
        let first = Swift.min(extent, Summation.blockSize)
        var depth = 0
        while first >> depth > sumLeaf { depth += 1 }
        return SumSplit(blocks: (extent + Summation.blockSize - 1) / Summation.blockSize, depth: depth)
    }

    /// The kernels `<name>_leaves` and `<name>_combine` of a split strict sum (``SumSplit``) of
    /// `outer` rows of `extent` elements: ``Summation``'s operations, in its order, over more
    /// threads. `<name>_leaves(base, scratch)` runs one thread per (row `q`, block, leaf): it walks
    /// its block's pairwise tree (`half = (n / 2) & ~3` on the left, the rest on the right, down
    /// to 64 elements) along its leaf's path for `depth` levels and writes `leaf(start, count)`,
    /// the pairwise sum of that subtree's elements (C, with `q` in scope), to `scratch` (a thread
    /// whose path ends early, at a node of at most 64 elements, writes it only for the path's
    /// leftmost leaf). `<name>_combine(scratch, base)` runs one thread per row: each block's tree
    /// over its leaves, left plus right as the pairwise sum adds, then the blocks in
    /// ``Summation``'s tree (``blockTree(from:to:_:_:_:)``), and stores `result(acc)`. (Direct
    /// forms, `at`: `<name>_leaves(p0, p1, p2, scratch)` and `<name>_combine(scratch, out)`.)
    static func splitSumKernels(_ name: String, _ k: Int, float64: Bool, outer: Int, extent: Int, split: SumSplit, at: KernelOperands,
                                leaf: (_ start: String, _ count: String) -> String, result: (String) -> String) -> String {
        let t = float64 ? "double" : "float", block = Summation.blockSize
        let (blocks, depth, leaves) = (split.blocks, split.depth, split.leaves), node = "adjoint_sumnode_\(k)"
        /// Block `b`'s length (C).
        let length = "(\(extent) - b * \(block) < \(block) ? \(extent) - b * \(block) : \(block))"
        var out = "\nstatic __device__ \(t) \(node)(const \(t) *leaf, long n, int level) {\n"
            + "if (level == \(depth) || n <= 64) return leaf[0];\n"
            + "long half = (n / 2) & ~3L;\n"
            + "return \(node)(leaf, half, level + 1) + \(node)(leaf + (1L << (\(depth) - level - 1)), n - half, level + 1);\n"
            + "}\n"
        out += "\nextern \"C\" __global__ void \(name)_leaves(\(at.leavesParameters)) {\n"
            + "long j = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (j >= \(split.threads(outer: outer))) return;\n"
            + "long q = j / \(Swift.max(1, blocks * leaves)), b = (j / \(leaves)) % \(Swift.max(1, blocks)), leaf = j % \(leaves);\n"
            + "long start = b * \(block), n = \(length);\n"
            + "for (int level = 0; level < \(depth); level++) {\n"
            + "long below = 1L << (\(depth) - level - 1);\n"
            + "if (n <= 64) { if (leaf % (2 * below) != 0) return; break; }\n"
            + "long half = (n / 2) & ~3L;\n"
            + "if ((leaf / below) % 2) { start += half; n -= half; } else n = half;\n"
            + "}\n"
            + "((\(t) *)scratch)[j] = \(leaf("start", "n"));\n"
            + "}\n"
        let combine: (String, String) -> String = { binaryExpression(.add, $0, $1, float64: float64)! }
        out += "\nextern \"C\" __global__ void \(name)_combine(void *scratch, \(at.outputParameter)) {\n"
            + "long q = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (q >= \(outer)) return;\n"
            + "const \(t) *partials = (const \(t) *)scratch + q * \(blocks * leaves);\n"
            + "\(t) acc = 0;\n"
            + (blocks == 0 ? "" : blocks == 1 ? "{ long b = 0; acc = \(node)(partials, \(length), 0); }\n"
                           : blockTree(from: "0", to: String(blocks), t, "\(t) v = \(node)(partials + b * \(leaves), \(length), 0);\n", combine))
            + "((\(t) *)\(at.output))[q] = \(result("acc"));\n"
            + "}\n"
        return out
    }

    /// One axis of a strided read: its length and its operand's stride along it.
    struct StridedAxis: Equatable { var size: Int, stride: Int }

    /// The offset of element `r` (a C expression) of a row-major walk over `axes` (the last
    /// fastest), each coordinate times its stride.
    static func stridedOffset(_ r: String, _ axes: [StridedAxis]) -> String {
        var terms: [String] = [], later = 1
        for axis in axes.reversed() {
            if axis.size > 1 && axis.stride != 0 { terms.append("((\(r)) / \(later) % \(axis.size)) * \(axis.stride)") }
            later *= axis.size
        }
        return terms.isEmpty ? "0" : terms.reversed().joined(separator: " + ")
    }

    /// The kernel `adjoint_reduce_<k>(base)` — or `adjoint_direct_<k>(p0, p1, p2, out)` (`at`) —
    /// reducing the (outer, extent, inner) layout of its operand into the `outer · inner` elements
    /// of its result, one thread per output element (see ``cudaReduction(_:direct:)``).
    /// `strided`: the operand is not in that layout but read
    /// through strides, as `Kernels.groupReducedAxes` permutes it (the kept axes, then the reduced
    /// ones; `inner` 1): output element `q` walks the kept axes, and its row's element `r` the
    /// reduced ones, so each row's elements are read, and combined, in the permuted copy's order.
    static func reductionKernel(_ k: Int, op: OpCode, float64: Bool, outer: Int, extent: Int, inner: Int, at: KernelOperands,
                                strided: (kept: [StridedAxis], reduced: [StridedAxis])? = nil) -> String {
        let t = float64 ? "double" : "float", s = float64 ? "d" : "f", zero = float64 ? "0.0" : "0.0f"
        /// C statements setting `acc` to the sum, maximum or minimum (`kind`) of the axis's
        /// elements, element `r` read as `read(r)` and a stretch of a row summed pairwise by
        /// `pairwise(start, count)`.
        func reduce(_ kind: OpCode, _ read: (String) -> String, _ pairwise: (String, String) -> String) -> String {
            let combiner: OpCode = kind == .sum ? .add : kind == .max ? .maximum : .minimum
            func combine(_ a: String, _ b: String) -> String { binaryExpression(combiner, a, b, float64: float64)! }
            func blockTree(_ blocks: Int, _ value: String) -> String { Self.blockTree(from: "0", to: String(blocks), t, value, combine) }
            if inner == 1 {
                if kind != .sum { return "acc = \(read("0")); for (long r = 1; r < \(extent); r++) acc = \(combine("acc", read("r")));\n" }
                return strictSum(extent, float64: float64, pairwise)
            }
            let rows = Summation.rowBlock
            return blockTree((extent + rows - 1) / rows,
                             "long r0 = b * \(rows), r1 = r0 + \(rows) < \(extent) ? r0 + \(rows) : \(extent);\n"
                             + "\(t) v = \(read("r0 * \(inner)"));\n"
                             + "for (long r = r0 + 1; r < r1; r++) v = \(combine("v", read("r * \(inner)")));\n")
        }
        /// Element `r` of the thread's row, from `p`.
        func element(_ r: String) -> String { strided.map { "p[\(stridedOffset(r, $0.reduced))]" } ?? "p[\(r)]" }
        func shifted(_ r: String) -> String { unaryExpression(.exp, "(\(element(r)) - m)", float64: float64)! }
        /// A pairwise sum's call over `count` of the row's elements from `start`: a pointer into a
        /// contiguous row; the row and the start for a strided one.
        func call(_ name: String, _ start: String, _ count: String, _ values: String = "") -> String {
            strided == nil ? "\(name)(\(start == "0" ? "p" : "p + \(start)")\(values), \(count))" : "\(name)(p, \(start)\(values), \(count))"
        }
        var out = ""
        let pairwise = strided == nil ? "adjoint_pairwise_\(s)" : "adjoint_pairwise_strided_\(k)", exponentials = "adjoint_pairwise_shifted_\(k)"
        if extent > 0, inner == 1 {
            // Strided rows' pairwise sums read through the strides, from the `s`-th element on.
            if strided != nil, op != .max, op != .min {
                out += pairwiseFunction(pairwise, float64: float64, bases: ["p"], offsets: ["s"]) { element("s + \($0)") }
            }
            if op == .logsumexp {
                out += pairwiseFunction(exponentials, float64: float64, pointers: strided == nil ? ["p"] : [], bases: strided == nil ? [] : ["p"],
                                       offsets: strided == nil ? [] : ["s"], values: ["m"]) {
                    shifted(strided == nil ? $0 : "s + \($0)")
                }
            }
        }
        out += "\nextern \"C\" __global__ void \(at.name(reductionName(k), k))(\(at.parameters)) {\n"
            + "long q = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (q >= \(outer * inner)) return;\n"
            + "const \(t) *x = (const \(t) *)\(at.input(0)); \(t) *y = (\(t) *)\(at.output);\n"
            + "\(t) acc = \(zero);\n"
        if extent > 0 {
            if let strided {
                out += "const \(t) *p = x + \(stridedOffset("q", strided.kept));\n"
            } else {
                out += inner == 1 ? "const \(t) *p = x + q * \(extent);\n" : "const \(t) *p = x + (q / \(inner)) * \(extent * inner) + q % \(inner);\n"
            }
            switch op {
            case .logsumexp:
                out += reduce(.max, element) { _, _ in "" }
                    + "\(t) m = acc;\n"
                    + "if (m - m == 0) {\n"
                    + reduce(.sum, shifted) { call(exponentials, $0, $1, ", m") }
                    + "acc = m + \(unaryExpression(.log, "acc", float64: float64)!);\n"
                    + "} else acc = m;\n"
            default:
                out += reduce(op == .mean ? .sum : op, element) { call(pairwise, $0, $1) }
            }
        } else if op == .logsumexp {
            // No elements: the maximum's identity (`Kernels.logsumexp`).
            out += "acc = -\(float64 ? "adjoint_bits_d(0x7ff0000000000000ULL)" : "adjoint_bits_f(0x7f800000U)");\n"
        }
        out += op == .mean ? "y[q] = acc / (\(t))\(extent);\n" : "y[q] = acc;\n"
        return out + "}\n"
    }

    /// The CUDA kernels of one chunked run (see ``cudaSource(chunked:fusion:)``).
    private func cudaKernels(_ run: Range<Int>, name: String, declarations: String, body: String,
                             reductions: [(instruction: Int, partials: Int)]) -> String {
        let n = instructions[run.lowerBound].n, chunk = Parallelism.elementChunk
        var scratch = "", sums = ""
        for (j, r) in reductions.enumerated() {
            let float64 = instructions[r.instruction].float64, t = float64 ? "double" : "float"
            scratch += "\(t) *q\(j) = (\(t) *)((unsigned char *)scratch + \(j * n * 8));\n"
            sums += "((\(t) *)((unsigned char *)partials + \(r.partials)))[c] = "
                + "adjoint_pairwise_\(float64 ? "d" : "f")((\(t) *)((unsigned char *)scratch + \(j * n * 8)) + lo, len);\n"
        }
        var out = "\nextern \"C\" __global__ void \(name)(unsigned char *base, long begin, long end, void *const *bound, void *scratch) {\n"
            + "long k = begin + (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (k >= end) return;\n" + declarations + scratch + body + "}\n"
        if !reductions.isEmpty {
            out += "\nextern \"C\" __global__ void \(name)_sums(void *scratch, void *partials) {\n"
                + "long c = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x, lo = c * \(chunk);\n"
                + "if (lo >= \(n)) return;\n"
                + "long len = \(n) - lo < \(chunk) ? \(n) - lo : \(chunk);\n" + sums + "}\n"
            // The partials combined into each reduction's result in the frame, by one thread:
            // `Summation.tree` in place, then the mean's division (`CompiledProgram.combine`).
            let chunks = (n + chunk - 1) / chunk
            out += "\nextern \"C\" __global__ void \(name)_combine(void *partials, void *frame) {\n"
                + "if (blockIdx.x != 0 || threadIdx.x != 0) return;\n"
            for r in reductions {
                let i = instructions[r.instruction], t = i.float64 ? "double" : "float"
                let result = i.op == .mean ? "p[0] / (\(t))\(i.extent)" : "p[0]"
                out += "{ \(t) *p = (\(t) *)((unsigned char *)partials + \(r.partials));\n"
                    + "for (long step = 1; step < \(chunks); step *= 2) for (long j = 0; j + step < \(chunks); j += 2 * step) p[j] = p[j] + p[j + step];\n"
                    + "*(\(t) *)((unsigned char *)frame + \(i.y)) = \(result); }\n"
            }
            out += "}\n"
        }
        return out
    }

    static func functionName(_ k: Int) -> String { "adjoint_segment_\(k)" }
    static func chunkedFunctionName(_ k: Int) -> String { "adjoint_chunked_\(k)" }

    // MARK: - Chunked runs

    /// Whether instruction `i` can join a chunked run: elementwise over operands of its own size
    /// (or single elements read throughout, or tables that are ``AffineRead``s), larger than
    /// ``elementLimit``, not accumulating in place.
    func chunkable(_ i: Instruction) -> Bool {
        guard i.n > Self.elementLimit, i.accumulator < 0 else { return false }
        switch i.kind {
        case .unary: return Self.unaryExpression(i.op, "x", float64: true) != nil
        case .binary: guard Self.binaryExpression(i.op, "a", "b", float64: true) != nil else { return false }
        case .multiplyAdd: break
        case .gather: guard i.table >= 0 else { return false }
        default: return false
        }
        return i.table < 0 || reads(i).allSatisfy(\.affine)
    }

    /// Whether instruction `i` is a reduction a chunked run over `n` elements takes in: the sum or
    /// the mean of all `n` elements of a contiguous operand. Each chunk then sums its elements
    /// pairwise, as ``Summation`` sums one of its strict blocks — chunks and blocks are the same
    /// `2¹⁵` elements from the start — into a partial per chunk, and the caller combines the
    /// partials in ``Summation``'s fixed tree (``CompiledProgram``'s `execute`): bitwise the
    /// kernel's sum under ``DeterminismPolicy/strict`` (other policies interpret the program).
    func fusedReduction(_ i: Instruction, elements n: Int) -> Bool {
        i.kind == .reduce && (i.op == .sum || i.op == .mean) && i.table < 0 && i.outer == 1 && i.inner == 1 && i.extent == n
            && Parallelism.elementChunk == Summation.blockSize
    }

    /// The bytes of one fused reduction's block buffer, a chunk's elements (8 bytes each, float32
    /// too): a chunked run with fused reductions is handed their buffers, one after the other.
    static let fusedBlockBytes = Parallelism.elementChunk * 8

    /// The reductions run `run` takes in (``fusedReduction(_:elements:)``), in order, with the
    /// byte offset of each one's partials (one element per chunk, 8 bytes apart) in the buffer its
    /// function is handed.
    func fusedReductions(_ run: Range<Int>) -> [(instruction: Int, partials: Int)] {
        let n = instructions[run.lowerBound].n, chunks = (n + Parallelism.elementChunk - 1) / Parallelism.elementChunk
        return run.filter { instructions[$0].kind == .reduce }.enumerated().map { j, k in (k, j * chunks * 8) }
    }

    /// An index table that reads, for output elements `lo ..< hi`, consecutive frame elements from
    /// `first` (`stride` 1) or element `first` throughout (`stride` 0); before `lo` element
    /// `before` and from `hi` element `after` (-1: zero, or a gather's pad value).
    typealias AffineRead = AffineTable

    /// The table of `n` entries from `start` as an ``AffineRead``, or nil when it is not one.
    func affine(_ start: Int, _ n: Int) -> AffineRead? {
        AffineTable.detect(tables[start ..< start + n])
    }

    /// A region of the frame an instruction reads or writes: `n` elements from `offset`, or one
    /// element read throughout (`scalar`). A read through an index table that is an
    /// ``AffineRead`` not covering every output element has `padded`: the output elements that
    /// read (element `k` reads region element `k − lo`), zero elsewhere; another table makes
    /// `affine` false (the instruction cannot join a chunked run).
    struct Region {
        let offset: Int, bytes: Int, scalar: Bool
        var padded: Range<Int>? = nil
        /// With `padded`: the byte offsets of the elements read before and after it (-1: zero),
        /// each `element` bytes.
        var before = -1, after = -1, element = 0
        var affine = true
        /// This region and the single elements read before and after it.
        var footprint: [Region] {
            [self] + [before, after].filter { $0 >= 0 }.map { Region(offset: $0, bytes: element, scalar: true) }
        }
        func overlaps(_ other: Region) -> Bool { offset < other.offset + other.bytes && other.offset < offset + bytes }
        /// The same elements at the same places: element `k` of one is element `k` of the other.
        func coincides(with other: Region) -> Bool {
            !scalar && !other.scalar && padded == nil && other.padded == nil && offset == other.offset && bytes == other.bytes
        }
    }

    func reads(_ i: Instruction) -> [Region] {
        let size = i.float64 ? 8 : 4
        func region(_ offset: Int, scalar: Bool) -> Region { Region(offset: offset, bytes: scalar ? size : i.n * size, scalar: scalar) }
        if i.table >= 0 {
            let count = i.kind == .gather ? 1 : i.kind == .binary ? 2 : 3
            return (0..<count).map { o in
                let found: AffineRead?
                if i.compact {
                    let start = i.table + o * AffineTable.width
                    found = AffineTable(tables[start ..< start + AffineTable.width])
                } else {
                    let start = i.table + o * i.n
                    found = affineReads.byStart[start] ?? affine(start, i.n)
                    affineReads.byStart[start] = found
                }
                guard let read = found else { return Region(offset: 0, bytes: 0, scalar: false, affine: false) }
                let scalar = read.stride == 0
                var r = Region(offset: read.first * size, bytes: scalar ? size : (read.hi - read.lo) * size, scalar: scalar)
                if read.lo != 0 || read.hi != i.n {
                    r.padded = read.lo..<read.hi
                    (r.before, r.after, r.element) = (read.before < 0 ? -1 : read.before * size, read.after < 0 ? -1 : read.after * size, size)
                }
                return r
            }
        }
        switch i.kind {
        case .unary: return [region(i.a, scalar: false)]
        case .binary: return [region(i.a, scalar: i.aScalar), region(i.b, scalar: i.bScalar)]
        case .reduce: return [Region(offset: i.a, bytes: i.outer * i.extent * i.inner * size, scalar: false)]
        default: return [region(i.a, scalar: false), region(i.b, scalar: false), region(i.c, scalar: false)]
        }
    }

    static func write(_ i: Instruction) -> Region { Region(offset: i.y, bytes: i.n * (i.float64 ? 8 : 4), scalar: false) }

    /// Maximal runs of chunkable instructions of one size, not crossing `splits`, that may run
    /// element by element: element `k` of every instruction, then element `k + 1`, and chunks of
    /// elements on several threads. That is the instructions' own result when every region one of
    /// them writes and every region any of them reads or writes either do not overlap or coincide
    /// (a value is then read at element `k` only, before or after element `k` is rewritten exactly
    /// as in instruction order), and no single element read throughout is written by the run. A
    /// run also takes in the reductions of all its elements (``fusedReduction(_:elements:)``)
    /// whose results none of its later instructions reads.
    func chunkedSegments(splits: Set<Int>) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start: Int?
        var regions: [Region] = [], writes: [Region] = []   // read or written, and written, by the current run
        var reduced: [Region] = []                          // the results of its reductions: written after it
        /// A fused reduction writes its result after the run: whatever the run's earlier
        /// instructions do with those bytes comes before it, as in instruction order, and a later
        /// instruction touching them ends the run.
        func compatible(_ i: Instruction, fused: Bool = false) -> Bool {
            let written = Self.write(i), read = reads(i).flatMap(\.footprint)
            for r in (fused ? read : regions + read + [written]) where r.overlaps(written) && !r.coincides(with: written) { return false }
            for w in writes {
                for r in read where r.overlaps(w) && !r.coincides(with: w) { return false }
            }
            return !read.contains { r in reduced.contains { $0.overlaps(r) } }
        }
        for k in instructions.indices {
            let i = instructions[k]
            let fused = start.map { fusedReduction(i, elements: instructions[$0].n) } ?? false
            if let s = start, splits.contains(k) || !(fused || chunkable(i) && i.n == instructions[s].n) || !compatible(i, fused: fused) {
                result.append(s..<k)
                start = nil
                (regions, writes, reduced) = ([], [], [])
            }
            if start == nil, chunkable(i), compatible(i) { start = k }
            if start != nil {
                regions += reads(i).flatMap(\.footprint) + [Self.write(i)]
                writes.append(Self.write(i))
                if fused { reduced.append(Self.write(i)) }
            }
        }
        if let s = start { result.append(s..<instructions.count) }
        return result
    }

    /// One loop over `begin ..< end` computing every instruction of `run` at each element; a value
    /// the run computed is taken from its variable, not read back, and single elements read
    /// throughout are read once. Reads that `fusion` recomputes evaluate their producer's formula
    /// at the shifted element (each pair of producer and shift once per element), instructions
    /// it skips are not computed, and only the results it stores are written back. With padded
    /// reads (the recomputed ones' included), the elements where every one of them reads its
    /// array run in a loop of their own that reads the arrays directly, and only the few before
    /// and after test which element a read gives: a loop with no conditional reads is one the C
    /// compiler vectorizes (same values, element by element).
    private func emitChunked(_ run: Range<Int>, name: String, fusion: Fusion, cuda: Bool = false) -> String {
        var declarations = ""
        var names: [String: String] = [:]   // "p"/"s" + offset + type: the declared name
        func type(_ float64: Bool) -> String { float64 ? "double" : "float" }
        /// The name of a pointer to the frame at `offset` ("p") or of the element there read once
        /// ("s"), declared before the loops the first time it is asked for.
        func declared(_ kind: String, _ offset: Int, _ float64: Bool) -> String {
            let key = "\(kind)\(offset):\(float64)"
            if let name = names[key] { return name }
            let name = "\(kind)\(names.count)", t = type(float64)
            names[key] = name
            var address = "base + \(offset)"
            if let j = self.bound.firstIndex(where: { $0.offset <= offset && offset < $0.offset + $0.bytes }) {
                let start = self.bound[j].offset
                address = "(bound && bound[\(j)] ? (unsigned char *)bound[\(j)] : base + \(start)) + \(offset - start)"
            }
            declarations += kind == "p" ? "\(t) *\(name) = (\(t) *)(\(address));\n" : "const \(t) \(name) = *(\(t) *)(\(address));\n"
            return name
        }
        /// `k` shifted by `d`, as C.
        func index(_ d: Int) -> String { d == 0 ? "k" : d > 0 ? "k + \(d)" : "k - \(-d)" }
        let computed = run.filter { !fusion.skipped.contains($0) }
        let reductions = fusedReductions(run)
        var reduction: [Int: Int] = [:]   // instruction → its index among the run's reductions
        for (j, r) in reductions.enumerated() { reduction[r.instruction] = j }
        func blockName(_ j: Int) -> String { "q\(j)" }
        // Where every padded read is inside its elements: `lower ..< upper` (empty when they do not overlap).
        var lower = 0, upper = Int.max, padded = false
        func within(_ elements: Range<Int>, shift: Int) {
            (lower, upper, padded) = (Swift.max(lower, elements.lowerBound - shift), Swift.min(upper, elements.upperBound - shift), true)
        }
        func constrain(_ node: Recomputation) {
            for (region, sub) in zip(reads(instructions[node.instruction]), node.operands) {
                if let elements = region.padded { within(elements, shift: node.shift) }
                if let sub { constrain(sub) }
            }
        }
        for k in computed {
            for (o, region) in reads(instructions[k]).enumerated() {
                if let elements = region.padded { within(elements, shift: 0) }
                if let tree = fusion.recomputed[Read(instruction: k, operand: o)] { constrain(tree) }
            }
        }
        upper = Swift.max(lower, upper)
        /// The loop body; `interior`: for elements inside every padded read.
        func body(interior: Bool) -> String {
            var loop = ""
            var latest: [Int: (name: String, float64: Bool, bytes: Int)] = [:]
            var recomputed: [String: String] = [:]   // "instruction:shift" → its variable (interior only)
            /// What instruction `i` gives outside a padded read: zero, or a gather's pad.
            func outside(_ i: Instruction) -> String {
                i.kind != .gather ? (i.float64 ? "0.0" : "0.0f")
                    : i.float64 ? "adjoint_bits_d(\(i.pad.bitPattern)ULL)" : "adjoint_bits_f(\(Float(i.pad).bitPattern)U)"
            }
            /// Operand `region` of instruction `i` at element `k + shift`: `inside` where a padded
            /// read reads its elements (nil: the array itself), the elements around it elsewhere.
            func operand(_ region: Region, of i: Instruction, shift: Int, inside: (() -> String)?) -> String {
                let float64 = i.float64
                let value: () -> String = inside ?? {
                    if region.scalar { return declared("s", region.offset, float64) }
                    return "\(declared("p", region.offset, float64))[\(index(shift - (region.padded?.lowerBound ?? 0)))]"
                }
                guard let elements = region.padded else { return value() }
                if interior { return value() }
                let before = region.before >= 0 ? declared("s", region.before, float64) : outside(i)
                let after = region.after >= 0 ? declared("s", region.after, float64) : outside(i)
                let j = index(shift)
                return "(\(j) < \(elements.lowerBound) ? \(before) : \(j) < \(elements.upperBound) ? \(value()) : \(after))"
            }
            /// Instruction `i`'s formula of its operands' C.
            func formula(_ i: Instruction, _ reads: [String]) -> String {
                switch i.kind {
                case .unary: return Self.unaryExpression(i.op, reads[0], float64: i.float64)!
                case .binary: return Self.binaryExpression(i.op, reads[0], reads[1], float64: i.float64)!
                case .gather: return reads[0]
                default: return "((\(reads[0]) * \(reads[1])) + \(reads[2]))"   // rounded after each (no contraction)
                }
            }
            /// A recomputed value: in the interior a variable (computed once per element), at the
            /// edges an expression evaluated only where a padded read asks for it.
            func value(_ node: Recomputation) -> String {
                let key = "\(node.instruction):\(node.shift)"
                if interior, let name = recomputed[key] { return name }
                let i = instructions[node.instruction]
                let reads = zip(reads(i), node.operands).map { region, sub in
                    operand(region, of: i, shift: node.shift, inside: sub.map { sub in { value(sub) } })
                }
                guard interior else { return formula(i, reads) }
                let name = "r\(recomputed.count)"
                loop += "\(type(i.float64)) \(name) = \(formula(i, reads));\n"
                recomputed[key] = name
                return name
            }
            for (index, k) in computed.enumerated() {
                let i = instructions[k], v = "v\(index)"
                let reads = reads(i).enumerated().map { o, region -> String in
                    if let tree = fusion.recomputed[Read(instruction: k, operand: o)] {
                        return operand(region, of: i, shift: 0, inside: { value(tree) })
                    }
                    if region.padded == nil, !region.scalar, let value = latest[region.offset], value.float64 == i.float64, value.bytes == region.bytes {
                        return value.name
                    }
                    return operand(region, of: i, shift: 0, inside: nil)
                }
                if let j = reduction[k] {
                    // Element `k` of the chunk's block, summed when the chunk is done (on a device,
                    // of the reduction's scratch array, summed per chunk by a second kernel).
                    loop += "\(blockName(j))[\(cuda ? "k" : "k - begin")] = \(reads[0]);\n"
                    continue
                }
                loop += "\(type(i.float64)) \(v) = \(formula(i, reads));\n"
                if fusion.stored.contains(k) { loop += "\(declared("p", i.y, i.float64))[k] = \(v);\n" }
                latest[i.y] = (v, i.float64, Self.write(i).bytes)
            }
            return loop
        }
        let edges = body(interior: false)
        if cuda { return cudaKernels(run, name: name, declarations: declarations, body: edges, reductions: reductions) }
        // Fused reductions: each a block buffer of the calling thread's (a chunk's elements, in
        // L2; `blocks`, ``fusedBlockBytes`` per reduction), and after the loops the chunk's
        // pairwise sum into its partial.
        // The buffers come from the caller, not from `_Thread_local` arrays of the library: those
        // are dynamic TLS, allocated per thread by the loader and left to it after `dlclose`,
        // where LeakSanitizer's exit-time scan of every thread's dynamic TLS reads them after
        // they are unmapped.
        var locals = "", sums = ""
        for (j, r) in reductions.enumerated() {
            let float64 = instructions[r.instruction].float64, t = type(float64)
            locals += "\(t) *\(blockName(j)) = (\(t) *)((unsigned char *)blocks + \(j * Self.fusedBlockBytes));\n"
            sums += "((\(t) *)((unsigned char *)partials + \(r.partials)))[begin / \(Parallelism.elementChunk)] = "
                + "adjoint_pairwise_\(float64 ? "d" : "f")(\(blockName(j)), end - begin);\n"
        }
        let head = "\nvoid \(name)(unsigned char *base, long begin, long end, void *const *bound, void *partials, void *blocks) {\n"
            + declarations + locals
        guard padded else {
            return head + "for (long k = begin; k < end; k++) {\n" + edges + "}\n" + sums + "}\n"
        }
        let interior = body(interior: true)
        return head
            + "long lo = begin < \(lower) ? \(lower) : begin; if (lo > end) lo = end;\n"
            + "long hi = end > \(upper) ? \(upper) : end; if (hi < lo) hi = lo;\n"
            + "for (long k = begin; k < lo; k++) {\n" + edges + "}\n"
            + "for (long k = lo; k < hi; k++) {\n" + interior + "}\n"
            + "for (long k = hi; k < end; k++) {\n" + edges + "}\n" + sums + "}\n"
    }

    // MARK: - Expressions

    /// C for unary operator `op` of `x` (a call of the helper printed from its ``Pointwise``
    /// formula), or nil when it has no native form.
    static func unaryExpression(_ op: OpCode, _ x: String, float64: Bool) -> String? {
        Pointwise.unary(op, CExpression.probe) == nil ? nil : "\(helperName(op, float64: float64))(\(x))"
    }

    /// C for binary operator `op` of `a` and `b`, or nil when it has no native form.
    static func binaryExpression(_ op: OpCode, _ a: String, _ b: String, float64: Bool) -> String? {
        Pointwise.binary(op, CExpression.probe, CExpression.probe) == nil ? nil : "\(helperName(op, float64: float64))(\(a), \(b))"
    }

    /// The C function of operator `op`'s elementwise function: `adjoint_elementwise_exp_d`, …
    static func helperName(_ op: OpCode, float64: Bool) -> String {
        "adjoint_" + String(op.rawValue.map { $0.isLetter || $0.isNumber ? $0 : "_" }) + (float64 ? "_d" : "_f")
    }

    /// The helpers: for each elementwise operator and element type, a C function whose body is the
    /// operator's ``Pointwise`` formula printed as C — the kernels' own definition, so native
    /// code and the interpreter agree bit for bit.
    static let helpers = helpers(cuda: false)

    /// ``helpers`` as C, or as CUDA C++ device functions (`cuda`).
    static func helpers(cuda: Bool) -> String {
        let qualifier = cuda ? "static __device__ __forceinline__" : "static inline __attribute__((always_inline))"
        let scope = CExpression.Scope(float64: true, cuda: cuda)
        var out = "\(qualifier) double adjoint_float32_tanh(double x) { "
            + scope.body(returning: Pointwise.float32Tanh(CExpression("x", scope))) + " }\n"
        for float64 in [true, false] {
            let t = float64 ? "double" : "float"
            for op in OpCode.allCases {
                let scope = CExpression.Scope(float64: float64, cuda: cuda)
                let (x, a, b) = (CExpression("x", scope), CExpression("a", scope), CExpression("b", scope))
                if let y = Pointwise.unary(op, x) {
                    out += "\(qualifier) \(t) \(helperName(op, float64: float64))(\(t) x) { \(scope.body(returning: y)) }\n"
                } else if let y = Pointwise.binary(op, a, b) {
                    out += "\(qualifier) \(t) \(helperName(op, float64: float64))(\(t) a, \(t) b) { \(scope.body(returning: y)) }\n"
                }
            }
        }
        return out
    }

    /// The pairwise sum of the reductions (``Summation``'s), as functions `adjoint_pairwise_d`
    /// and `adjoint_pairwise_f` declared with `qualifier`.
    static func pairwise(_ qualifier: String) -> String {
        """
        #define ADJOINT_PAIRWISE(T, S, ZERO) \\
        \(qualifier) T adjoint_pairwise_##S(const T *p, long n) { \\
            if (n <= 64) { \\
                T s0 = ZERO, s1 = ZERO, s2 = ZERO, s3 = ZERO; long i = 0; \\
                while (i + 4 <= n) { s0 += p[i]; s1 += p[i + 1]; s2 += p[i + 2]; s3 += p[i + 3]; i += 4; } \\
                while (i < n) { s0 += p[i]; i += 1; } \\
                return (s0 + s1) + (s2 + s3); \\
            } \\
            long half = (n / 2) & ~3L; \\
            return adjoint_pairwise_##S(p, half) + adjoint_pairwise_##S(p + half, n - half); \\
        }
        ADJOINT_PAIRWISE(double, d, 0.0)
        ADJOINT_PAIRWISE(float, f, 0.0f)

        """
    }

    /// What every generated file starts with: libm, the pairwise sum of the reductions, bit-pattern
    /// constants and the elementwise helpers (``helpers``).
    static let prelude = """
    /* Generated by Adjoint (native code version \(version)). */
    #include <math.h>

    """ + pairwise("static") + """
    static inline double adjoint_bits_d(unsigned long long u) { double d; __builtin_memcpy(&d, &u, 8); return d; }
    static inline float adjoint_bits_f(unsigned int u) { float f; __builtin_memcpy(&f, &u, 4); return f; }

    """ + helpers + "\n"

    /// ``prelude`` for CUDA C++ (NVRTC): device functions, the device math library (built into
    /// NVRTC), the bit-pattern intrinsics.
    /// The threads of a kernel that one block runs: a plain run's, an index or cast check's.
    static let blockThreads = 256

    static let cudaPrelude = """
    /* Generated by Adjoint (CUDA, native code version \(version)). */
    #ifndef ADJOINT_PHASES
    /* A plain run's phases: every thread of the block runs phase p, then waits for the others. */
    #define ADJOINT_PHASES(n) for (int adjoint_phase = 0; adjoint_phase < (n); adjoint_phase++) { switch (adjoint_phase) {
    #define ADJOINT_PHASE(p) case p:
    #define ADJOINT_PHASE_END break;
    #define ADJOINT_PHASES_END } __syncthreads(); }
    #endif

    """ + pairwise("static __device__") + """
    static __device__ __forceinline__ double adjoint_bits_d(unsigned long long u) { return __longlong_as_double((long long)u); }
    static __device__ __forceinline__ float adjoint_bits_f(unsigned int u) { return __int_as_float((int)u); }

    """ + sixteenBitConversions + "\n" + helpers(cuda: true) + "\n"

    /// The 16-bit floats' conversions, as the CPU's `Float16` and `BFloat16` make them (bit
    /// operations only, so a GPU and the emulation give the same bits): a float16 from a double
    /// rounded to nearest, ties to even (values from 65520 up overflow to infinity, subnormals
    /// kept), a NaN quiet with the top nine bits of its payload; a float16's double exactly (a NaN
    /// quiet); a bfloat16 from a float as `BFloat16.init(_: Float)` rounds (a NaN with its quiet bit
    /// set), and a bfloat16's float exactly. Element words are `unsigned short`.
    static let sixteenBitConversions = """
    static __device__ unsigned short adjoint_half_from_double(double d) {
        union { double d; unsigned long long u; } v; v.d = d;
        unsigned short sign = (unsigned short)((v.u >> 48) & 0x8000);
        unsigned long long a = v.u & 0x7FFFFFFFFFFFFFFFULL;
        if (a > 0x7FF0000000000000ULL) return sign | 0x7E00 | (unsigned short)(((a & 0x0007FFFFFFFFFFFFULL) >> 42) & 0x1FF);
        if (a >= 0x40F0000000000000ULL) return sign | 0x7C00;
        int e = (int)(a >> 52) - 1023;
        if (e < -25) return sign;
        unsigned long long m = a & 0x000FFFFFFFFFFFFFULL, h, rest, half;
        if (e >= -14) {
            h = ((unsigned long long)(e + 15) << 10) | (m >> 42); rest = m & ((1ULL << 42) - 1); half = 1ULL << 41;
        } else {
            int shift = 28 - e;
            m |= 1ULL << 52;
            h = m >> shift; rest = m & ((1ULL << shift) - 1); half = 1ULL << (shift - 1);
        }
        if (rest > half || (rest == half && (h & 1))) h += 1;
        return sign | (unsigned short)h;
    }
    static __device__ double adjoint_half_to_double(unsigned short h) {
        unsigned long long sign = (unsigned long long)(h & 0x8000) << 48, m = h & 0x3FF;
        int e = (h >> 10) & 0x1F;
        union { double d; unsigned long long u; } v;
        if (e == 0x1F) v.u = sign | 0x7FF0000000000000ULL | (m != 0 ? 0x0008000000000000ULL : 0) | (m << 42);
        else if (e == 0) { v.d = (double)m * 5.9604644775390625e-8; v.u |= sign; }
        else v.u = sign | ((unsigned long long)(e + 1008) << 52) | (m << 42);
        return v.d;
    }
    static __device__ unsigned short adjoint_bf16_from_float(float f) {
        union { float f; unsigned int u; } v; v.f = f;
        if (f != f) return (unsigned short)((v.u >> 16) | 0x0040);
        return (unsigned short)((v.u + 0x7FFFu + ((v.u >> 16) & 1u)) >> 16);
    }
    static __device__ float adjoint_bf16_to_float(unsigned short h) {
        union { float f; unsigned int u; } v; v.u = (unsigned int)h << 16;
        return v.f;
    }
    """

    // MARK: - Instructions

    /// Instruction `i`'s C block. `parallel` (a device's plain run, ``cudaSource(segments:chunked:fusion:reductions:elementwise:)``):
    /// the block is run by every thread of one block, each loop's iterations dealt out over the
    /// threads (`k = threadIdx.x; k += blockDim.x`) and the unrolled statements of a short
    /// instruction run by thread 0. Each iteration computes what it computes serially, in the same
    /// order: its output element, or for a reduction its output element's whole fold. An output's
    /// memory is never an operand's (the planner allocates it before the operands die), except an
    /// accumulator's, which the same iteration reads at the element it writes, so no iteration
    /// reads what another writes within the block.
    private func emit(_ i: Instruction, parallel: Bool = false) -> String {
        let t = i.float64 ? "double" : "float", zero = i.float64 ? "0.0" : "0.0f"
        func pointer(_ name: String, _ offset: Int) -> String { "\(t) *\(name) = (\(t) *)(base + \(offset));" }
        func loop(_ v: String, _ n: Int) -> String { Self.loopHead(v, n, parallel: parallel) }
        /// Unrolled statements (run by thread 0 when `parallel`).
        func unrolled(_ statements: String) -> String { parallel ? "if (threadIdx.x == 0) {\n" + statements + "}\n" : statements }
        /// A frame element through an absolute table entry (-1: zero).
        func element(_ entry: Int) -> String { entry < 0 ? zero : "frame[\(entry)]" }
        /// `body(output index, operand reads)` for each element, unrolled when short.
        func tableLoop(_ operands: Int, _ body: (String, [String]) -> String) -> String {
            let start = i.table
            if i.n <= Self.unrollLimit {
                return unrolled((0..<i.n).map { k in body(String(k), (0..<operands).map { element(tables[start + $0 * i.n + k]) }) + "\n" }.joined())
            }
            var s = ""
            for o in 0..<operands {
                s += "static const long t\(o)[\(i.n)] = {\(tables[(start + o * i.n)..<(start + (o + 1) * i.n)].map(String.init).joined(separator: ","))};\n"
            }
            let reads = (0..<operands).map { "(t\($0)[k] >= 0 ? frame[t\($0)[k]] : \(zero))" }
            return s + loop("k", i.n) + " " + body("k", reads) + "\n"
        }
        var body = ""
        switch i.kind {
        case .unary:
            body = pointer("x", i.a) + pointer("y", i.y)
                + "\(loop("k", i.n)) y[k] = \(Self.unaryExpression(i.op, "x[k]", float64: i.float64)!);\n"
        case .binary:
            func op(_ a: String, _ b: String) -> String { Self.binaryExpression(i.op, a, b, float64: i.float64)! }
            if i.accumulator >= 0 {
                // In place: only the elements the other operand supplies change (see `accumulator`).
                let other = i.table + (1 - i.accumulator) * i.n
                let written = (0..<i.n).filter { tables[other + $0] >= 0 }
                body = pointer("frame", 0) + pointer("y", i.y)
                if written.count <= Self.unrollLimit {
                    body += unrolled(written.map { k in
                        let r = [i.table, i.table + i.n].map { "frame[\(tables[$0 + k])]" }
                        return "y[\(k)] = \(op(r[0], r[1]));\n"
                    }.joined())
                } else {
                    func list(_ values: [Int]) -> String { values.map(String.init).joined(separator: ",") }
                    body += "static const long k0[\(written.count)] = {\(list(written))};\n"
                    for o in 0..<2 { body += "static const long t\(o)[\(written.count)] = {\(list(written.map { tables[i.table + o * i.n + $0] }))};\n" }
                    body += "\(loop("j", written.count)) y[k0[j]] = \(op("frame[t0[j]]", "frame[t1[j]]"));\n"
                }
            } else if i.table >= 0 {
                body = pointer("frame", 0) + pointer("y", i.y)
                body += tableLoop(2) { k, r in "y[\(k)] = \(op(r[0], r[1]));" }
            } else {
                body = pointer("a", i.a) + pointer("b", i.b) + pointer("y", i.y)
                switch (i.aScalar, i.bScalar) {
                case (false, false): body += "\(loop("k", i.n)) y[k] = \(op("a[k]", "b[k]"));\n"
                case (false, true): body += "\(t) s = b[0]; \(loop("k", i.n)) y[k] = \(op("a[k]", "s"));\n"
                case (true, false): body += "\(t) s = a[0]; \(loop("k", i.n)) y[k] = \(op("s", "b[k]"));\n"
                case (true, true): body += "\(t) v = \(op("a[0]", "b[0]")); \(loop("k", i.n)) y[k] = v;\n"
                }
            }
        case .multiplyAdd:
            // Rounded after the product and after the sum (Kernels.productSum), never fused.
            if i.table >= 0 {
                body = pointer("frame", 0) + pointer("y", i.y)
                body += tableLoop(3) { k, r in "{ \(t) p = \(r[0]) * \(r[1]); y[\(k)] = p + \(r[2]); }" }
            } else {
                body = pointer("a", i.a) + pointer("b", i.b) + pointer("c", i.c) + pointer("y", i.y)
                    + "\(loop("k", i.n)) { \(t) p = a[k] * b[k]; y[k] = p + c[k]; }\n"
            }
        case .gather:
            let pad = i.float64 ? "adjoint_bits_d(\(i.pad.bitPattern)ULL)" : "adjoint_bits_f(\(Float(i.pad).bitPattern)U)"
            body = pointer("frame", 0) + pointer("y", i.y) + "\(t) pad = \(pad);\n"
            if i.n <= Self.unrollLimit {
                body += unrolled((0..<i.n).map { k in
                    let source = tables[i.table + k]
                    return "y[\(k)] = \(source < 0 ? "pad" : "frame[\(source)]");\n"
                }.joined())
            } else {
                body += "static const long t0[\(i.n)] = {\(tables[i.table..<(i.table + i.n)].map(String.init).joined(separator: ","))};\n"
                    + "\(loop("k", i.n)) y[k] = t0[k] < 0 ? pad : frame[t0[k]];\n"
            }
        case .reduce:
            body = emitReduce(i, t, parallel: parallel)
        case .matmul, .fallback:
            preconditionFailure("no native form for \(i.kind)")
        }
        return "{\n" + body + "}\n"
    }

    /// The head of a loop over `0..<n`, its iterations dealt out over a block's threads when
    /// `parallel` (``emit(_:parallel:)``).
    static func loopHead(_ v: String, _ n: Int, parallel: Bool) -> String {
        parallel ? "for (long \(v) = threadIdx.x; \(v) < \(n); \(v) += blockDim.x)" : "for (long \(v) = 0; \(v) < \(n); \(v)++)"
    }

    /// ``Kernels/reduceTyped`` for the serial cases ``supports(_:)`` admits. `parallel`
    /// (``emit(_:parallel:)``): each iteration computes output elements — along a contiguous axis
    /// a row's fold; along a strided one, one element's fold over every row, the combinations the
    /// serial form makes row by row — and a mean divides in a second loop over the same elements,
    /// dealt out the same way, so no thread reads what another writes.
    private func emitReduce(_ i: Instruction, _ t: String, parallel: Bool) -> String {
        func loop(_ v: String, _ n: Int) -> String { Self.loopHead(v, n, parallel: parallel) }
        let s = i.float64 ? "d" : "f", zero = i.float64 ? "0.0" : "0.0f"
        let (outer, extent, inner) = (i.outer, i.extent, i.inner)
        var body = "\(t) *x = (\(t) *)(base + \(i.a)); \(t) *y = (\(t) *)(base + \(i.y));\n"
        let kind = i.op == .mean ? OpCode.sum : i.op
        // The kernels' combining function: the formula of `add`, `maximum` or `minimum`.
        let combiner: OpCode = kind == .sum ? .add : kind == .max ? .maximum : .minimum
        func combine(_ a: String, _ b: String) -> String { Self.binaryExpression(combiner, a, b, float64: i.float64)! }
        if extent == 0 {
            body += "\(loop("k", outer * inner)) y[k] = \(zero);\n"
        } else if inner == 1 {
            body += "\(loop("o", outer)) {\n\(t) *p = x + o * \(extent);\n"
            if kind == .sum {
                body += "y[o] = adjoint_pairwise_\(s)(p, \(extent));\n"
            } else {
                body += "\(t) acc = p[0]; for (long k = 1; k < \(extent); k++) acc = \(combine("acc", "p[k]"));\ny[o] = acc;\n"
            }
            body += "}\n"
        } else if parallel {
            // Element q = o · inner + k: rows r = 0, 1, … combined into it in order, as the serial
            // form below combines whole rows into the output row.
            body += """
            \(loop("q", outer * inner)) {
            \(t) *b = x + (q / \(inner)) * \(extent * inner) + q % \(inner);
            \(t) acc = b[0];
            for (long r = 1; r < \(extent); r++) acc = \(combine("acc", "b[r * \(inner)]"));
            y[q] = acc;
            }

            """
        } else {
            body += """
            for (long o = 0; o < \(outer); o++) {
            \(t) *b = x + o * \(extent * inner), *dst = y + o * \(inner);
            for (long k = 0; k < \(inner); k++) dst[k] = b[k];
            for (long r = 1; r < \(extent); r++) { \(t) *src = b + r * \(inner); for (long k = 0; k < \(inner); k++) dst[k] = \(combine("dst[k]", "src[k]")); }
            }

            """
        }
        if i.op == .mean {
            body += "\(loop("k", outer * inner)) y[k] = y[k] / (\(t))\(extent);\n"
        }
        return body
    }
}
