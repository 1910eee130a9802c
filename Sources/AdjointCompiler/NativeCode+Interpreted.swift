import AdjointIR
import AdjointTensor

// MARK: - Device kernels for instructions the CPU interprets

/// A check a device runs before an interpreted instruction's kernel (see
/// `NativeCodeGenerator.deviceCheck(_:)`), and so the CPU's error when it fails.
package enum DeviceCheck: Equatable, Sendable {
    /// The indices in operand `operand` lie in `0 ..< bound` (the error names `axis`).
    case indices(operand: Int, bound: Int, axis: Int)
    /// A cast's elements (of `from`) are representable in the integer type `to`.
    case castValues(from: DType, to: DType)
}

extension NativeCodeGenerator {
    /// The device kernel of interpreted instruction `k` (`f`), when it has one: its name and the
    /// threads a launch runs (one per output element of a comparison, a `where`, a one-hot
    /// encoding, a gather or a cast; one per line of a softmax or an `argmax`, per example of a
    /// cross-entropy, per column of a scatter-add; one for a mean squared error, whose kernels
    /// are a split sum's instead, `name` their prefix: `sumSplit(_:)` of `f`). Operands must
    /// each be in a frame region of
    /// their own (none read through a folded gather's table), and the output in one no operand
    /// shares: the threads write their elements while others still read theirs (a softmax's log
    /// form even reads its operand after writing its output), which the CPU's kernels, writing a
    /// new tensor, never see. The planner gives every interpreted output a region of its own; an
    /// overlap refused here keeps a planning mistake from becoming a race.
    static func interpretedKernel(_ f: CompiledProgram.Fallback, _ k: Int) -> (name: String, threads: Int)? {
        guard f.inputs.allSatisfy({ $0.table < 0 && $0.offset >= 0 }), f.output.offset >= 0 else { return nil }
        let written = f.output.offset..<(f.output.offset + f.output.type.byteCount)
        guard f.inputs.allSatisfy({ !written.overlaps($0.offset..<($0.offset + $0.type.byteCount)) }) else { return nil }
        switch f.op {
        case .equal, .notEqual, .less, .lessEqual, .greater, .greaterEqual:
            // Two operands of one dtype, floating-point or integer; bool ones for (in)equality only, as on the CPU.
            guard f.inputs.count == 2, f.inputs[0].type.dtype == f.inputs[1].type.dtype, f.output.type.dtype == .bool,
                  comparedType(f.inputs[0].type.dtype) != nil,
                  f.inputs[0].type.dtype != .bool || f.op == .equal || f.op == .notEqual else { return nil }
            return ("adjoint_select_\(k)", f.output.type.elementCount)
        case .select:
            guard f.inputs.count == 3, f.inputs[0].type.dtype == .bool, f.inputs[1].type.dtype == f.inputs[2].type.dtype,
                  f.output.type.dtype == f.inputs[1].type.dtype else { return nil }
            return ("adjoint_select_\(k)", f.output.type.elementCount)
        case .softmax, .logSoftmax:
            guard f.inputs.count == 1, [.float64, .float32].contains(f.inputs[0].type.dtype), f.output.type == f.inputs[0].type,
                  let layout = softmaxLayout(f) else { return nil }
            return ("adjoint_softmax_\(k)", layout.outer * layout.inner)
        case .crossEntropyWithLogits:
            guard f.inputs.count == 2, [.float64, .float32].contains(f.inputs[0].type.dtype), f.inputs[1].type.dtype.isInteger,
                  let classes = f.inputs[0].type.shape.last, classes >= 1,
                  f.inputs[1].type.shape == Array(f.inputs[0].type.shape.dropLast()), f.output.type.dtype == f.inputs[0].type.dtype
            else { return nil }
            return ("adjoint_crossentropy_\(k)", f.inputs[1].type.elementCount)
        case .meanSquaredError:
            guard f.inputs.count == 2, [.float64, .float32].contains(f.inputs[0].type.dtype), f.inputs[1].type == f.inputs[0].type,
                  f.output.type == ValueType(dtype: f.inputs[0].type.dtype, shape: []) else { return nil }
            return ("adjoint_mse_\(k)", 1)
        case .oneHot:
            guard f.inputs.count == 1, f.inputs[0].type.dtype.isInteger, case let .oneHot(depth, dtype) = f.attributes, depth > 0,
                  f.output.type == ValueType(dtype: dtype, shape: f.inputs[0].type.shape + [depth]) else { return nil }
            return ("adjoint_onehot_\(k)", f.output.type.elementCount)
        case .gather:
            // Any dtype: elements are copied as words.
            guard f.inputs.count == 2, f.inputs[1].type.dtype.isInteger, indexedAxis(f) != nil,
                  f.output.type.dtype == f.inputs[0].type.dtype else { return nil }
            return ("adjoint_gather_\(k)", f.output.type.elementCount)
        case .scatterAdd:
            guard f.inputs.count == 3, [.float64, .float32].contains(f.inputs[0].type.dtype), f.inputs[1].type.dtype.isInteger,
                  f.inputs[2].type.dtype == f.inputs[0].type.dtype, f.output.type == f.inputs[0].type, let axis = indexedAxis(f) else { return nil }
            let (outer, _, inner) = ShapeRules.split(f.inputs[0].type.shape, at: axis)
            return ("adjoint_scatteradd_\(k)", outer * inner)
        case .cast:
            // Between any two of float64, float32, float16, bfloat16, int64, int32 and bool.
            guard f.inputs.count == 1, castable(f.inputs[0].type.dtype), castable(f.output.type.dtype),
                  f.output.type.shape == f.inputs[0].type.shape else { return nil }
            return ("adjoint_cast_\(k)", f.output.type.elementCount)
        case .argmax:
            guard f.inputs.count == 1, [.float64, .float32].contains(f.inputs[0].type.dtype), f.output.type.dtype == .int64,
                  case let .axisKeepDims(raw, _) = f.attributes, let axis = try? ShapeRules.axis(raw, rank: f.inputs[0].type.shape.count, op: f.op.rawValue),
                  f.inputs[0].type.shape[axis] > 0 else { return nil }
            let (outer, _, inner) = ShapeRules.split(f.inputs[0].type.shape, at: axis)
            guard f.output.type.elementCount == outer * inner else { return nil }
            return ("adjoint_argmax_\(k)", outer * inner)
        case .sum, .mean, .max, .min, .logsumexp:
            guard let reduction = stridedReduction(f) else { return nil }
            return (reductionName(k), reduction.kept.reduce(1) { $0 * $1.size })
        case .reshape, .transpose, .broadcastTo, .slice, .concat, .stack, .pad:
            // On elements the planner does not turn into aliases and gathers (integers, bools, 16-bit floats), copied as words.
            guard layoutCopies(f) != nil else { return nil }
            return ("adjoint_layout_\(k)", f.output.type.elementCount)
        default:
            return nil
        }
    }

    /// A reduction the CPU interprets (its axes not one run, or an empty log-sum-exp) read
    /// through strides (``NativeCodeGenerator/reductionKernel(_:op:float64:outer:extent:inner:x:y:strided:)``):
    /// the kept axes, then the reduced ones, in `Kernels.groupReducedAxes`'s order.
    static func stridedReduction(_ f: CompiledProgram.Fallback) -> (kept: [StridedAxis], reduced: [StridedAxis])? {
        let shape = f.inputs.first?.type.shape ?? []
        guard f.inputs.count == 1, [.float64, .float32].contains(f.inputs[0].type.dtype), f.output.type.dtype == f.inputs[0].type.dtype,
              case let .reduction(raw, _) = f.attributes, let axes = try? ShapeRules.axes(raw, rank: shape.count, op: f.op.rawValue) else { return nil }
        let strides = ShapeRules.contiguousStrides(shape)
        let kept = shape.indices.filter { !axes.contains($0) }.map { StridedAxis(size: shape[$0], stride: strides[$0]) }
        let reduced = axes.map { StridedAxis(size: shape[$0], stride: strides[$0]) }
        guard f.output.type.elementCount == kept.reduce(1, { $0 * $1.size }),
              f.op == .sum || f.op == .mean || f.op == .logsumexp || reduced.allSatisfy({ $0.size > 0 }) else { return nil }
        return (kept, reduced)
    }

    /// A layout operator's output as its CPU kernel (`Kernels.layout`) makes it: boxes of output
    /// coordinates, one per input it copies, and the fill elsewhere (a pad's value).
    struct LayoutCopies: Equatable {
        /// Input `input` fills the output coordinates `low ..< low + extent`; coordinate `c` reads
        /// its element `first + Σ (c[d] − low[d]) · strides[d]`.
        struct Box: Equatable {
            var input: Int, low: [Int], extent: [Int], first = 0, strides: [Int]
        }
        /// The coordinates' shape: the output's, or its element count for a reshape (which copies in order).
        var shape: [Int]
        var boxes: [Box]
        /// The bits of the element outside every box (a pad's value in the output's dtype); nil: none.
        var fill: UInt64?
    }

    /// ``LayoutCopies`` of a layout operator `f`, from its attributes and its operands' shapes;
    /// nil where they are not those of one of its CPU kernels' valid calls, or the dtypes differ.
    static func layoutCopies(_ f: CompiledProgram.Fallback) -> LayoutCopies? {
        let shape = f.output.type.shape, dtype = f.output.type.dtype, inputs = f.inputs.map(\.type.shape)
        guard let x = inputs.first, f.inputs.allSatisfy({ $0.type.dtype == dtype }) else { return nil }
        let strides = ShapeRules.contiguousStrides(x), single = inputs.count == 1
        func whole(_ strides: [Int], first: Int = 0) -> LayoutCopies {
            LayoutCopies(shape: shape, boxes: [.init(input: 0, low: shape.map { _ in 0 }, extent: shape, first: first, strides: strides)])
        }
        switch (f.op, f.attributes) {
        case (.reshape, _):
            let n = shape.reduce(1, *)
            guard single, x.reduce(1, *) == n else { return nil }
            return LayoutCopies(shape: [n], boxes: [.init(input: 0, low: [0], extent: [n], strides: [1])])
        case let (.transpose, .permutation(p)):
            guard single, p.count == x.count, Set(p) == Set(x.indices), shape == p.map({ x[$0] }) else { return nil }
            return whole(p.map { strides[$0] })
        case let (.broadcastTo, .shape(target)):
            guard single, target == shape, (try? ShapeRules.broadcast(x, target, op: f.op.rawValue)) == target else { return nil }
            return whole(ShapeRules.broadcastStrides(x, to: target))
        case let (.slice, .region(starts, ends)):
            guard single, starts.count == x.count, ends.count == x.count,
                  x.indices.allSatisfy({ 0 <= starts[$0] && starts[$0] <= ends[$0] && ends[$0] <= x[$0] }),
                  shape == x.indices.map({ ends[$0] - starts[$0] }) else { return nil }
            return whole(strides, first: zip(starts, strides).reduce(0) { $0 + $1.0 * $1.1 })
        case let (.concat, .axis(raw)), let (.stack, .axis(raw)):
            let stacked = f.op == .stack
            guard let axis = try? ShapeRules.axis(raw, rank: x.count + (stacked ? 1 : 0), op: f.op.rawValue), shape.count == x.count + (stacked ? 1 : 0),
                  !shape.isEmpty else { return nil }
            var boxes: [LayoutCopies.Box] = [], position = 0
            for (j, input) in inputs.enumerated() {
                // A stacked input is one step along the new axis; its strides skip it.
                var extent = input, inputStrides = ShapeRules.contiguousStrides(input)
                if stacked { extent.insert(1, at: axis); inputStrides.insert(0, at: axis) }
                guard extent.count == shape.count, shape.indices.allSatisfy({ $0 == axis || extent[$0] == shape[$0] }), !stacked || input == x else { return nil }
                var low = shape.map { _ in 0 }
                low[axis] = position
                boxes.append(.init(input: j, low: low, extent: extent, strides: inputStrides))
                position += extent[axis]
            }
            guard position == shape[axis] else { return nil }
            return LayoutCopies(shape: shape, boxes: boxes)
        case let (.pad, .pad(low, high, value)):
            guard single, low.count == x.count, high.count == x.count, !(low + high).contains(where: { $0 < 0 }),
                  shape == x.indices.map({ low[$0] + x[$0] + high[$0] }),
                  let element = try? Tensor.full([], value, dtype: dtype) else { return nil }
            var fill: UInt64 = 0
            withUnsafeMutableBytes(of: &fill) { $0.copyMemory(from: UnsafeRawBufferPointer(start: element.rawPointer, count: dtype.byteSize)) }
            return LayoutCopies(shape: shape, boxes: [.init(input: 0, low: low, extent: x, strides: strides)], fill: fill)
        default:
            return nil
        }
    }

    /// A gather's or scatter-add's axis of its first operand (nil: no valid axis attribute).
    static func indexedAxis(_ f: CompiledProgram.Fallback) -> Int? {
        guard case let .axis(raw) = f.attributes else { return nil }
        return try? ShapeRules.axis(raw, rank: f.inputs[0].type.shape.count, op: f.op.rawValue)
    }

    /// Whether a cast's device kernel converts `dtype`.
    private static func castable(_ dtype: DType) -> Bool { [.float64, .float32, .float16, .bfloat16, .int64, .int32, .bool].contains(dtype) }

    /// The C type of a cast's elements of `dtype` (the 16-bit floats as their bits).
    private static func castElement(_ dtype: DType) -> String {
        switch dtype {
        case .float64: "double"
        case .float32: "float"
        case .float16, .bfloat16: "unsigned short"
        case .int64: "long long"
        case .int32: "int"
        case .bool: "unsigned char"
        }
    }

    /// Element `e` (of `dtype`) as a double, as `Kernels.cast` reads it: exactly, a bfloat16
    /// through its float.
    private static func castRead(_ dtype: DType, _ e: String) -> String {
        switch dtype {
        case .float16: "adjoint_half_to_double(\(e))"
        case .bfloat16: "(double)adjoint_bf16_to_float(\(e))"
        default: "(double)\(e)"
        }
    }

    /// The check an interpreted instruction's kernel needs before it runs: cross-entropy's labels,
    /// one-hot's, a gather's and a scatter-add's indices in range; a cast's elements representable
    /// in its integer target. A one-thread kernel (`adjoint_check_<k>(base, status)`) runs before the
    /// instruction's, reading the operand in order as the CPU's kernel does, and writes three
    /// 64-bit words: 1, the first failing element's position and its value (an index, or a value's
    /// float64 bits) — or 0 when all pass — so the call can throw the CPU's error.
    static func deviceCheck(_ f: CompiledProgram.Fallback) -> DeviceCheck? {
        switch f.op {
        case .crossEntropyWithLogits: return .indices(operand: 1, bound: f.inputs[0].type.shape.last ?? 0, axis: f.inputs[0].type.shape.count - 1)
        case .oneHot:
            guard case let .oneHot(depth, _) = f.attributes else { return nil }
            return .indices(operand: 0, bound: depth, axis: f.inputs[0].type.shape.count)
        case .gather, .scatterAdd:
            guard let axis = indexedAxis(f) else { return nil }
            return .indices(operand: 1, bound: f.inputs[0].type.shape[axis], axis: axis)
        case .cast:
            let (from, to) = (f.inputs[0].type.dtype, f.output.type.dtype)
            guard to.isInteger, from.isFloatingPoint || (from == .int64 && to == .int32) else { return nil }
            return .castValues(from: from, to: to)
        default: return nil
        }
    }

    /// The C type a comparison reads `dtype` as (nil: the CPU compares no such elements).
    static func comparedType(_ dtype: DType) -> String? {
        switch dtype {
        case .float64: "double"
        case .float32: "float"
        case .int64: "long long"
        case .int32: "int"
        case .bool: "unsigned char"
        case .float16, .bfloat16: nil
        }
    }

    /// A softmax's (outer, extent, inner) around its axis (nil: no valid axis attribute).
    static func softmaxLayout(_ f: CompiledProgram.Fallback) -> (outer: Int, extent: Int, inner: Int)? {
        let shape = f.inputs[0].type.shape
        guard case let .axis(raw) = f.attributes, let axis = try? ShapeRules.axis(raw, rank: shape.count, op: f.op.rawValue) else { return nil }
        return ShapeRules.split(shape, at: axis)
    }

    /// The kernel of interpreted instruction `k` (`f`, which has an ``interpretedKernel(_:_:)``),
    /// computing what the CPU's kernel computes, operation for operation, with its check kernel
    /// first where it has one (``deviceCheck(_:)``).
    ///
    /// `direct`: the kernel `adjoint_direct_<k>(p0, p1, p2, out)` instead (``directName(_:)``),
    /// reading its operands (at most three) at the addresses it is given and writing its result
    /// at `out` — for an operator whose operands and result stay where they are. Its check kernel
    /// reads the checked operand at `base` itself (the launch passes the operand's address), and a
    /// copy before it (``deviceCopyBefore(_:)``) copies from the operand's address to `out`.
    static func cudaInterpreted(_ f: CompiledProgram.Fallback, _ k: Int, direct: Bool = false) -> String {
        let (frameName, threads) = interpretedKernel(f, k)!
        precondition(!direct || hasDirectKernel(f), "a direct kernel takes at most three operands")
        let at = KernelOperands(f, direct: direct), name = at.name(frameName, k)
        var out = ""
        switch deviceCheck(f) {
        case let .indices(operand, bound, _)?: out += checkKernel(f.inputs[operand], at: direct ? 0 : f.inputs[operand].offset, bound: bound, k)
        case let .castValues(from, to)?: out += castCheckKernel(f.inputs[0], at: direct ? 0 : f.inputs[0].offset, from: from, to: to, k)
        case nil: break
        }
        let body: String
        switch f.op {
        case .cast: body = castBody(f, at)
        case .argmax: body = argmaxBody(f, at)
        case .softmax, .logSoftmax: body = softmaxBody(f, at)
        case .crossEntropyWithLogits:
            out += shiftedPairwise(float64: f.inputs[0].type.dtype == .float64, k)
            body = crossEntropyBody(f, at, k)
        case .meanSquaredError:
            return out + meanSquaredErrorKernels(f, k, at)
        case .sum, .mean, .max, .min, .logsumexp:
            let reduction = stridedReduction(f)!
            return out + reductionKernel(k, op: f.op, float64: f.inputs[0].type.dtype == .float64, outer: reduction.kept.reduce(1) { $0 * $1.size },
                                         extent: reduction.reduced.reduce(1) { $0 * $1.size }, inner: 1, at: at, strided: reduction)
        case .oneHot: body = oneHotBody(f, at)
        case .gather: body = gatherBody(f, at)
        case .scatterAdd: body = scatterAddBody(f, at)
        case .reshape, .transpose, .broadcastTo, .slice, .concat, .stack, .pad: body = layoutBody(f, at)
        default: body = selectionBody(f, at)
        }
        return out + "\nextern \"C\" __global__ void \(name)(\(at.parameters)) {\n"
            + "long q = (long)blockIdx.x * (long)blockDim.x + (long)threadIdx.x;\n"
            + "if (q >= \(threads)) return;\n" + body + "}\n"
    }

    /// Whether interpreted instruction `f`'s kernel also has a direct form (``cudaInterpreted(_:_:direct:)``):
    /// it has a kernel and at most three operands (a direct kernel's pointers).
    static func hasDirectKernel(_ f: CompiledProgram.Fallback) -> Bool {
        interpretedKernel(f, 0) != nil && f.inputs.count <= 3
    }

    static func checkName(_ k: Int) -> String { "adjoint_check_\(k)" }

    /// C statements declaring `o<j>`, operand `j`'s element (of shape `operands[j]`, broadcast to
    /// `shape`) at output element `index`: the output element's coordinates, last axis first, each
    /// operand moving by its broadcast stride (`ShapeRules.broadcastStrides`) along each.
    static func broadcastOffsets(_ shape: [Int], _ operands: [[Int]], index: String) -> String {
        let strides = operands.map { ShapeRules.broadcastStrides($0, to: shape) }
        var out = "long r = \(index)" + strides.indices.map { ", o\($0) = 0" }.joined() + ";\n"
        for d in shape.indices.reversed() where shape[d] > 1 {
            out += "{ long i = r % \(shape[d]); r /= \(shape[d]);"
                + strides.enumerated().filter { $0.element[d] != 0 }.map { " o\($0.offset) += i * \($0.element[d]);" }.joined()
                + " }\n"
        }
        return out
    }

    /// A device-to-device copy within the frame that runs before interpreted instruction `f`'s
    /// kernel (frame offsets and bytes): a scatter-add's base, copied into its output whole, where
    /// its kernel's threads, one per column, would each copy a column element by element.
    static func deviceCopyBefore(_ f: CompiledProgram.Fallback) -> (source: Int, destination: Int, bytes: Int)? {
        guard f.op == .scatterAdd, f.output.type.byteCount > 0 else { return nil }
        return (f.inputs[0].offset, f.output.offset, f.output.type.byteCount)
    }

    /// The unsigned C integer of `dtype`'s width: what an element is copied as, bits unchanged.
    private static func unsignedWord(_ dtype: DType) -> String {
        switch dtype.byteSize {
        case 1: "unsigned char"
        case 2: "unsigned short"
        case 4: "unsigned int"
        default: "unsigned long long"
        }
    }

    /// The C type of integer indices of `dtype`.
    private static func indexType(_ dtype: DType) -> String { dtype == .int64 ? "long long" : "int" }

    /// A check kernel (`adjoint_check_<k>(base, words)`) over the `count` elements at `element`'s
    /// pointer `p`, run by one block of ``NativeCodeGenerator/blockThreads`` threads in two
    /// phases (`ADJOINT_PHASES`): each thread scans its elements (`i = threadIdx.x; i +=
    /// blockDim.x`) up to its first failing one (`setup` declares `v` and what `failing` tests),
    /// then thread 0 takes the smallest of the threads' first failures — the first failing element
    /// in order, the one the CPU's loop stops at — and writes the three status words: 1, its
    /// position and `value` (a 64-bit word), or 0, 0, 0.
    private static func parallelCheck(_ k: Int, element: String, offset: Int, count: Int, setup: String, failing: String, value: String) -> String {
        let threads = NativeCodeGenerator.blockThreads
        return "\nextern \"C\" __global__ void __launch_bounds__(\(threads)) \(checkName(k))(unsigned char *base, void *words) {\n"
            + "__shared__ long long first[\(threads)];\n"
            + "const \(element) *p = (const \(element) *)(base + \(offset));\n"
            + "ADJOINT_PHASES(2)\n"
            + "ADJOINT_PHASE(0) {\n"
            + "long long mine = -1;\n"
            + "for (long i = threadIdx.x; i < \(count); i += blockDim.x) { \(setup) if (\(failing)) { mine = i; break; } }\n"
            + "first[threadIdx.x] = mine;\n"
            + "} ADJOINT_PHASE_END\n"
            + "ADJOINT_PHASE(1) if (threadIdx.x == 0) {\n"
            + "long long *status = (long long *)words, i = -1;\n"
            + "for (unsigned t = 0; t < blockDim.x; t++) if (first[t] >= 0 && (i < 0 || first[t] < i)) i = first[t];\n"
            + "if (i < 0) { status[0] = 0; status[1] = 0; status[2] = 0; }\n"
            + "else { \(setup) status[0] = 1; status[1] = i; status[2] = \(value); }\n"
            + "} ADJOINT_PHASE_END\n"
            + "ADJOINT_PHASES_END\n}\n"
    }

    /// ``deviceCheck(_:)``'s kernel over `indices` (``parallelCheck(_:element:offset:count:setup:failing:value:)``):
    /// the first index outside `0..<bound`, as `Kernels.readIndices` finds it, the indices at
    /// `offset` from the kernel's `base`.
    private static func checkKernel(_ indices: CompiledProgram.Operand, at offset: Int, bound: Int, _ k: Int) -> String {
        parallelCheck(k, element: indexType(indices.type.dtype), offset: offset, count: indices.type.elementCount,
                      setup: "long long v = p[i];", failing: "v < 0 || v >= \(bound)", value: "v")
    }

    /// The range a cast to the integer type `to` takes (`Kernels.checkRepresentable`'s bounds),
    /// as C double literals.
    private static func castBounds(_ to: DType) -> (low: String, high: String) {
        to == .int32 ? ("-2147483648.0", "2147483647.0") : ("-9223372036854775808.0", "9223372036854774784.0")
    }

    /// Whether the truncated float64 `t` converts to the integer type `to`
    /// (`Kernels.checkRepresentable`): finite, and within ``castBounds(_:)``.
    private static func representable(_ t: String, as to: DType) -> String {
        let (low, high) = castBounds(to)
        return "\(t) - \(t) == 0 && \(t) >= \(low) && \(t) <= \(high)"
    }

    /// A cast's `y[q]` from the float64 expression `v` truncated toward zero, or 0 where that is
    /// not ``representable(_:as:)`` (the cast's check fails the call then).
    private static func truncatedStore(_ v: String, to: DType) -> String {
        "double t = trunc(\(v));\n" + "y[q] = \(representable("t", as: to)) ? (\(castElement(to)))t : 0;\n"
    }

    /// ``deviceCheck(_:)``'s kernel for a cast to an integer type (``parallelCheck(_:element:offset:count:setup:failing:value:)``):
    /// the first element `Kernels.cast` refuses — from a float, one whose value truncated is not
    /// finite or not within the target's range; from int64 to int32, one that does not fit. The
    /// status's value word is the float's value as float64 bits, or the integer. The operand is
    /// at `offset` from the kernel's `base`.
    private static func castCheckKernel(_ x: CompiledProgram.Operand, at offset: Int, from: DType, to: DType, _ k: Int) -> String {
        if from == .int64 {
            return parallelCheck(k, element: "long long", offset: offset, count: x.type.elementCount,
                                 setup: "long long v = p[i];", failing: "v < -2147483648LL || v > 2147483647LL", value: "v")
        }
        return parallelCheck(k, element: castElement(from), offset: offset, count: x.type.elementCount,
                             setup: "double v = \(castRead(from, "p[i]")), t = trunc(v); union { double d; long long l; } u; u.d = v;",
                             failing: "!(\(representable("t", as: to)))", value: "u.l")
    }

    /// Element `q` of a cast, as `Kernels.cast` converts it: through float64 (an int64 to float32
    /// rounds twice, as there), floats to integers truncated toward zero (a value out of range
    /// writes 0: its check fails the call), anything to bool as `x != 0`; to float16 rounded from
    /// the float64 once, to bfloat16 through float32 (``NativeCodeGenerator/sixteenBitConversions``).
    private static func castBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let (from, to) = (f.inputs[0].type.dtype, f.output.type.dtype)
        let c = castElement
        var out = "const \(c(from)) *x = (const \(c(from)) *)\(at.input(0));\n"
            + "\(c(to)) *y = (\(c(to)) *)\(at.output);\n"
        if from == to { return out + "y[q] = x[q];\n" }
        if [.float16, .bfloat16].contains(from) || [.float16, .bfloat16].contains(to) {
            if (from, to) == (.float32, .bfloat16) { return out + "y[q] = adjoint_bf16_from_float(x[q]);\n" }
            if (from, to) == (.bfloat16, .float32) { return out + "y[q] = adjoint_bf16_to_float(x[q]);\n" }
            out += "double v = \(from == .bool ? "x[q] ? 1.0 : 0.0" : castRead(from, "x[q]"));\n"
            switch to {
            case .float16: return out + "y[q] = adjoint_half_from_double(v);\n"
            case .bfloat16: return out + "y[q] = adjoint_bf16_from_float((float)v);\n"
            case .bool: return out + "y[q] = (unsigned char)(v != 0);\n"
            case .float64, .float32: return out + "y[q] = (\(c(to)))v;\n"
            case .int64, .int32: return out + truncatedStore("v", to: to)
            }
        }
        if to == .bool { return out + "y[q] = (unsigned char)(x[q] != 0);\n" }
        if from == .bool { return out + "y[q] = x[q] ? (\(c(to)))1 : (\(c(to)))0;\n" }
        switch (from, to) {
        case (.int64, .int32): out += "y[q] = x[q] >= -2147483648LL && x[q] <= 2147483647LL ? (int)x[q] : 0;\n"
        case (.int32, .int64): out += "y[q] = (long long)x[q];\n"
        case (_, .float64), (.float64, .float32): out += "y[q] = (\(c(to)))x[q];\n"
        case (_, .float32): out += "y[q] = (float)(double)x[q];\n"   // from an integer, through float64
        default: out += truncatedStore("(double)x[q]", to: to)   // a float to an integer
        }
        return out
    }

    /// Line `q` (an (outer, inner) pair) of an `argmax`, as `Kernels.argmax` finds it: the first
    /// largest element's position along the axis, or the first NaN's.
    private static func argmaxBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        guard case let .axisKeepDims(raw, _) = f.attributes,
              let axis = try? ShapeRules.axis(raw, rank: f.inputs[0].type.shape.count, op: f.op.rawValue) else { preconditionFailure("an argmax without its axis") }
        let (_, extent, inner) = ShapeRules.split(f.inputs[0].type.shape, at: axis)
        let t = f.inputs[0].type.dtype == .float64 ? "double" : "float"
        return "const \(t) *x = (const \(t) *)\(at.input(0)) + (q / \(inner)) * \(extent * inner) + q % \(inner);\n"
            + "\(t) best = x[0]; long long index = 0;\n"
            + "if (best == best) {\n"
            + "for (long r = 1; r < \(extent); r++) {\n"
            + "\(t) v = x[r * \(inner)];\n"
            + "if (v != v) { index = r; break; }\n"
            + "if (v > best) { best = v; index = r; }\n"
            + "}\n}\n"
            + "((long long *)\(at.output))[q] = index;\n"
    }

    /// `Summation.pairwise` as a device function `name(<pointers>, <bases>, <offsets>, <values>,
    /// long n)`: the sum of `element(i)` for `i < n`, each computed where the sum reads it — the
    /// same additions in the same order as the CPU's pairwise sum over stored values, without
    /// storing them. The recursion advances every pointer and every offset (a `long`) by the first
    /// half's length; `bases` (pointers) and `values` pass through unchanged.
    static func pairwiseFunction(_ name: String, float64: Bool, pointers: [String] = [], bases: [String] = [], offsets: [String] = [],
                                 values: [String] = [], element: (String) -> String) -> String {
        let t = float64 ? "double" : "float"
        let parameters = (pointers + bases).map { "const \(t) *\($0)" } + offsets.map { "long \($0)" } + values.map { "\(t) \($0)" } + ["long n"]
        func call(_ offset: String?, _ count: String) -> String {
            let advanced = pointers.map { p in offset.map { "\(p) + \($0)" } ?? p }, moved = offsets.map { s in offset.map { "\(s) + \($0)" } ?? s }
            return "\(name)(" + (advanced + bases + moved + values + [count]).joined(separator: ", ") + ")"
        }
        return "\nstatic __device__ \(t) \(name)(\(parameters.joined(separator: ", "))) {\n"
            + "if (n <= 64) {\n"
            + "\(t) s0 = 0, s1 = 0, s2 = 0, s3 = 0; long i = 0;\n"
            + "while (i + 4 <= n) { s0 += \(element("i")); s1 += \(element("i + 1")); s2 += \(element("i + 2")); s3 += \(element("i + 3")); i += 4; }\n"
            + "while (i < n) { s0 += \(element("i")); i += 1; }\n"
            + "return (s0 + s1) + (s2 + s3);\n"
            + "}\n"
            + "long half = (n / 2) & ~3L;\n"
            + "return \(call(nil, "half")) + \(call("half", "n - half"));\n"
            + "}\n"
    }

    /// ``pairwiseFunction(_:float64:pointers:values:element:)`` over `exp(p[i] - m)`
    /// (`Kernels.logsumexp` with a finite maximum). `k`: the instruction whose kernel calls it
    /// (`adjoint_pairwise_shifted_<k>`).
    static func shiftedPairwise(float64: Bool, _ k: Int) -> String {
        pairwiseFunction("adjoint_pairwise_shifted_\(k)", float64: float64, pointers: ["p"], values: ["m"]) { i in
            unaryExpression(.exp, "(p[\(i)] - m)", float64: float64)!
        }
    }

    /// C statements setting `acc` to the strict policy's sum of `n` elements (`Summation.sum`)
    /// from blocks `from ..< to` of `Summation`'s: one pairwise sum (`pairwise(start, count)`, C
    /// expressions) where `n` fits in a block, else each block's pairwise sum combined in
    /// `Summation.tree`'s order (``NativeCodeGenerator/blockTree(from:to:_:_:_:)``).
    static func strictSum(_ n: Int, from: String = "0", to: String? = nil, float64: Bool, _ pairwise: (String, String) -> String) -> String {
        let t = float64 ? "double" : "float", block = Summation.blockSize
        if n <= block { return "acc = \(pairwise("0", String(n)));\n" }
        return blockTree(from: from, to: to ?? String((n + block - 1) / block), t,
                         "long lo = b * \(block), len = \(n) - lo < \(block) ? \(n) - lo : \(block);\n\(t) v = \(pairwise("lo", "len"));\n") {
            binaryExpression(.add, $0, $1, float64: float64)!
        }
    }

    /// The mean squared error's kernels (`adjoint_mse_<k>_leaves` and `_combine`, or their direct
    /// forms: `at`), as `Kernels.meanSquaredError` computes it: the strict policy's sum of the
    /// squared differences (each `(a - b) * (a - b)`, computed where the sum reads it) divided by
    /// the element count, NaN for none — a split sum (``NativeCodeGenerator/splitSumKernels(_:_:float64:outer:extent:split:at:leaf:result:)``)
    /// of one row, each leaf's pairwise sum over the squares.
    static func meanSquaredErrorKernels(_ f: CompiledProgram.Fallback, _ k: Int, _ at: KernelOperands) -> String {
        let float64 = f.inputs[0].type.dtype == .float64, t = float64 ? "double" : "float", n = f.inputs[0].type.elementCount
        let pairwise = "adjoint_pairwise_squared_\(k)", nan = float64 ? "adjoint_bits_d(0x7ff8000000000000ULL)" : "adjoint_bits_f(0x7fc00000U)"
        return pairwiseFunction(pairwise, float64: float64, pointers: ["a", "b"]) { i in "((a[\(i)] - b[\(i)]) * (a[\(i)] - b[\(i)]))" }
            + splitSumKernels(at.name("adjoint_mse_\(k)", k), k, float64: float64, outer: 1, extent: n, split: sumSplit(extent: n), at: at,
                              leaf: { "\(pairwise)((const \(t) *)\(at.input(0)) + \($0), (const \(t) *)\(at.input(1)) + \($0), \($1))" },
                              result: { n == 0 ? nan : "\($0) / (\(t))\(n)LL" })
    }

    /// The split sum interpreted instruction `f` runs as (nil: none): a mean squared error's.
    static func sumSplit(_ f: CompiledProgram.Fallback) -> SumSplit? {
        guard f.op == .meanSquaredError, let a = f.inputs.first else { return nil }
        return sumSplit(extent: a.type.elementCount)
    }

    /// Example `q`'s loss, as `Kernels.crossEntropy` computes it: the log-sum-exp of its logits
    /// (`Kernels.logsumexp` along a contiguous axis: the maximum left to right, the shifted
    /// exponentials summed as the strict policy sums them — pairwise, or over more than 2¹⁵
    /// classes by blocks (``strictSum(_:from:to:float64:_:)``) — the maximum plus the sum's
    /// logarithm, or the maximum itself where it is not finite) less the logit of its label. A
    /// label out of range reads class 0: its check fails the call.
    private static func crossEntropyBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands, _ k: Int) -> String {
        let float64 = f.inputs[0].type.dtype == .float64, t = float64 ? "double" : "float", classes = f.inputs[0].type.shape.last!
        let l = indexType(f.inputs[1].type.dtype)
        return "const \(t) *x = (const \(t) *)\(at.input(0)) + q * \(classes);\n"
            + "long long c = ((const \(l) *)\(at.input(1)))[q];\n"
            + "if (c < 0 || c >= \(classes)) c = 0;\n"
            + "\(t) m = x[0];\n"
            + "for (long j = 1; j < \(classes); j++) m = \(binaryExpression(.maximum, "m", "x[j]", float64: float64)!);\n"
            + "\(t) acc = 0;\n"
            + "if (m - m == 0) \(strictSum(classes, float64: float64) { "adjoint_pairwise_shifted_\(k)(x + \($0), m, \($1))" })"
            + "\(t) lse = m - m == 0 ? m + \(unaryExpression(.log, "acc", float64: float64)!) : m;\n"
            + "((\(t) *)\(at.output))[q] = lse - x[c];\n"
    }

    /// Element `q` of a one-hot encoding, as `Kernels.oneHot` writes it: the dtype's one where the
    /// row's index is the column, zero elsewhere, as an unsigned word of the dtype's width.
    private static func oneHotBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        guard case let .oneHot(depth, dtype) = f.attributes else { preconditionFailure("a one-hot without its attributes") }
        let one: String
        switch dtype {
        case .float64: one = "0x3ff0000000000000ULL"
        case .float32: one = "0x3f800000U"
        case .float16: one = "0x3c00U"
        case .bfloat16: one = "0x3f80U"
        case .int32, .int64, .bool: one = "1U"
        }
        let word = unsignedWord(dtype)
        return "long long v = ((const \(indexType(f.inputs[0].type.dtype)) *)\(at.input(0)))[q / \(depth)];\n"
            + "((\(word) *)\(at.output))[q] = v == q % \(depth) ? (\(word))\(one) : (\(word))0;\n"
    }

    /// A comparison or a `where` at output element `q`: each operand's element found through its
    /// broadcast strides (`ShapeRules.broadcastStrides`, as `Kernels.compare` and `Kernels.select`
    /// walk them), then compared as the CPU compares (one byte, 0 or 1) or selected — the chosen
    /// element's bytes copied as an unsigned word, so the result is the CPU's bit for bit, NaN
    /// payloads and signed zeros included.
    private static func selectionBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let out = broadcastOffsets(f.output.type.shape, f.inputs.map(\.type.shape), index: "q")
        if f.op == .select {
            let word = unsignedWord(f.output.type.dtype)
            return out + "const unsigned char *c = \(at.input(0));\n"
                + "const \(word) *a = (const \(word) *)\(at.input(1)), *b = (const \(word) *)\(at.input(2));\n"
                + "((\(word) *)\(at.output))[q] = c[o0] ? a[o1] : b[o2];\n"
        }
        let t = comparedType(f.inputs[0].type.dtype)!
        let relation: String
        switch f.op {
        case .equal: relation = "=="
        case .notEqual: relation = "!="
        case .less: relation = "<"
        case .lessEqual: relation = "<="
        case .greater: relation = ">"
        default: relation = ">="
        }
        return out + "const \(t) *a = (const \(t) *)\(at.input(0)), *b = (const \(t) *)\(at.input(1));\n"
            + "\(at.output)[q] = (unsigned char)(a[o0] \(relation) b[o1]);\n"
    }

    /// Softmax or log-softmax of line `q` (an (outer, inner) pair) along the axis, as
    /// `Kernels.softmax` computes it: the maximum left to right (an infinite one taken as 0, a NaN
    /// kept), the shifted exponentials stored and summed left to right, then each divided by the sum
    /// as a product with its reciprocal — or, for the log form, the input less the maximum plus the
    /// sum's logarithm. `exp` and `log` are the operators' own (`Pointwise`), so the emulation gives
    /// the CPU's bits and a GPU its math library's.
    private static func softmaxBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let (_, extent, inner) = softmaxLayout(f)!
        let float64 = f.inputs[0].type.dtype == .float64, t = float64 ? "double" : "float"
        let negativeInfinity = float64 ? "adjoint_bits_d(0xfff0000000000000ULL)" : "adjoint_bits_f(0xff800000U)"
        let exp = unaryExpression(.exp, "(x[j] - m)", float64: float64)!, log = unaryExpression(.log, "s", float64: float64)!
        var out = "const \(t) *x = (const \(t) *)\(at.input(0)) + (q / \(inner)) * \(extent * inner) + q % \(inner);\n"
            + "\(t) *y = (\(t) *)\(at.output) + (q / \(inner)) * \(extent * inner) + q % \(inner);\n"
            + "\(t) m = \(negativeInfinity);\n"
            + "for (long j = 0; j < \(extent * inner); j += \(inner)) m = \(binaryExpression(.maximum, "m", "x[j]", float64: float64)!);\n"
            // Not finite: infinite (0) or NaN (kept).
            + "if (!(m - m == 0)) m = m != m ? m : 0;\n"
            + "\(t) s = 0;\n"
            + "for (long j = 0; j < \(extent * inner); j += \(inner)) { \(t) e = \(exp); y[j] = e; s = s + e; }\n"
        if f.op == .logSoftmax {
            out += "\(t) ls = m + \(log);\n"
                + "for (long j = 0; j < \(extent * inner); j += \(inner)) y[j] = x[j] - ls;\n"
        } else {
            out += "\(t) inv = 1 / s;\n"
                + "for (long j = 0; j < \(extent * inner); j += \(inner)) y[j] = y[j] * inv;\n"
        }
        return out
    }

    /// Element `q` of a gather along its axis, as `Kernels.gather` copies it: the element of row
    /// `indices[j]` as a word of the dtype's width (an index out of range reads row 0: its check
    /// fails the call).
    private static func gatherBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let (_, extent, inner) = ShapeRules.split(f.inputs[0].type.shape, at: indexedAxis(f)!)
        let count = f.inputs[1].type.elementCount, word = unsignedWord(f.output.type.dtype)
        return "long o = q / \(Swift.max(1, count * inner)), j = (q / \(Swift.max(1, inner))) % \(Swift.max(1, count)), i = q % \(Swift.max(1, inner));\n"
            + "long long r = ((const \(indexType(f.inputs[1].type.dtype)) *)\(at.input(1)))[j];\n"
            + "if (r < 0 || r >= \(extent)) r = 0;\n"
            + "((\(word) *)\(at.output))[q] = ((const \(word) *)\(at.input(0)))[(o * \(extent) + r) * \(inner) + i];\n"
    }

    /// Output element `q` of a layout operator (``layoutCopies(_:)``), copied as a word: its
    /// coordinates, last axis first; the first box holding them gives the input and element; the
    /// fill outside every box.
    private static func layoutBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let copies = layoutCopies(f)!, shape = copies.shape, word = unsignedWord(f.output.type.dtype)
        var out = "long r = q;\n"
        for d in shape.indices.reversed() {
            out += shape[d] > 1 ? "long c\(d) = r % \(shape[d]); r /= \(shape[d]);\n" : "const long c\(d) = 0;\n"
        }
        out += "\(word) *y = (\(word) *)\(at.output);\n"
        for box in copies.boxes {
            // Only the axes the box does not cover whole are tested.
            let tests = shape.indices.filter { box.low[$0] != 0 || box.extent[$0] != shape[$0] }.map { d in
                box.extent[d] == 1 ? "c\(d) == \(box.low[d])" : "c\(d) >= \(box.low[d]) && c\(d) < \(box.low[d] + box.extent[d])"
            }
            let element = ([String(box.first)] + shape.indices.filter { box.strides[$0] != 0 }.map { d in
                box.low[d] == 0 ? "c\(d) * \(box.strides[d])" : "(c\(d) - \(box.low[d])) * \(box.strides[d])"
            }).joined(separator: " + ")
            let copy = "{ y[q] = ((const \(word) *)\(at.input(box.input)))[\(element)]; return; }\n"
            out += tests.isEmpty ? copy : "if (\(tests.joined(separator: " && "))) " + copy
        }
        if let fill = copies.fill { out += "y[q] = (\(word))\(fill)ULL;\n" }
        return out
    }

    /// Column `q` (an (outer, inner) pair) of a scatter-add, as `Kernels.scatterAdd` computes it:
    /// each update added at its index's row in the order of the indices — each column's
    /// additions in the CPU's order, and no two threads writing one element (an index out of
    /// range is skipped: its check fails the call). The base is in the output already: a device
    /// copy runs first (``deviceCopyBefore(_:)``).
    private static func scatterAddBody(_ f: CompiledProgram.Fallback, _ at: KernelOperands) -> String {
        let (_, extent, inner) = ShapeRules.split(f.inputs[0].type.shape, at: indexedAxis(f)!)
        let count = f.inputs[1].type.elementCount, t = f.inputs[0].type.dtype == .float64 ? "double" : "float"
        return "long o = q / \(Swift.max(1, inner)), i = q % \(Swift.max(1, inner));\n"
            + "const \(t) *u = (const \(t) *)\(at.input(2)) + o * \(count * inner) + i;\n"
            + "\(t) *y = (\(t) *)\(at.output) + o * \(extent * inner) + i;\n"
            + "const \(indexType(f.inputs[1].type.dtype)) *index = (const \(indexType(f.inputs[1].type.dtype)) *)\(at.input(1));\n"
            + "for (long j = 0; j < \(count); j++) {\n"
            + "long long r = index[j];\n"
            + "if (r < 0 || r >= \(extent)) continue;\n"
            + "y[r * \(inner)] = y[r * \(inner)] + u[j * \(inner)];\n"
            + "}\n"
    }
}
