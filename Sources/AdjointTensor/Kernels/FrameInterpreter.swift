import AdjointIR

/// One operator of a compiled program (AdjointCompiler's `CompiledProgram`), as plain data over a
/// *frame* — one block of memory holding every value at a fixed byte offset. No references:
/// reading it retains nothing.
package struct FrameInstruction {
    package enum Kind: UInt8 { case unary, binary, multiplyAdd, gather, reduce, matmul, fallback }
    package var kind: Kind
    package var op: OpCode
    package var float64: Bool
    /// Byte offsets of the output and up to three inputs in the frame.
    package var y = 0, a = 0, b = 0, c = 0
    /// Output elements.
    package var n = 0
    /// Binary operators without tables: which operand is a single element read throughout.
    package var aScalar = false, bScalar = false
    /// Start of this instruction's index tables, or -1: a gather's table (absolute element
    /// offsets, -1 = padding), or one table of element offsets per broadcast operand (`n` entries
    /// each, in operand order).
    package var table = -1
    /// A reduction's (outer, extent, inner) layout.
    package var outer = 0, extent = 0, inner = 0
    /// A gather's padding value.
    package var pad = 0.0
    /// A matmul's plan in the program's products.
    package var product = -1
    /// An addition accumulating in place: the operand (0 or 1) whose region is the output's.
    /// That operand holds no -0.0, so where the other operand reads padding (zero) the sum is
    /// the element already there, and native code leaves it unwritten (-1: not in place).
    package var accumulator = -1
    /// Whether this instruction's tables are ``AffineTable``s: ``AffineTable/width`` numbers per
    /// operand from `table`, not `n` entries (large operands whose tables are affine).
    package var compact = false

    package init(kind: Kind, op: OpCode, float64: Bool) { (self.kind, self.op, self.float64) = (kind, op, float64) }
}

/// Runs frame instructions through the kernels' own element loops — the same functions, in the
/// same order, as the eager kernels, so results are bitwise theirs. It lives beside the kernels
/// so that their generic loops are specialised and inlined here (called per element from another
/// module, they would not be).
package struct FrameInterpreter {
    package let instructions: UnsafeBufferPointer<FrameInstruction>
    package let tables: UnsafeBufferPointer<Int>
    package let products: [Kernels.MatmulPlan]
    /// Arithmetic is plain (no float64 debugging or mixed-precision storage): otherwise every
    /// instruction but gathers goes to the fallback, which runs the ordinary kernels.
    package let exact: Bool
    let policy: KernelPolicy
    /// Whether reductions run under ``DeterminismPolicy/strict`` (fixed blocks, fixed tree).
    package var reducesStrictly: Bool { policy.determinism == .strict }

    package init(instructions: UnsafeBufferPointer<FrameInstruction>, tables: UnsafeBufferPointer<Int>, products: [Kernels.MatmulPlan],
                 hasReductions: Bool) {
        (self.instructions, self.tables, self.products) = (instructions, tables, products)
        exact = NumericSettings.arithmeticIsPlain
        policy = hasReductions ? KernelPolicy(determinism: NumericSettings.current.policy.determinism, threads: Parallelism.threadCount)
                               : KernelPolicy(determinism: .strict, threads: 1)
    }

    /// Runs instruction `k` on the frame at `base`; false when it needs the caller's fallback
    /// (the ordinary kernel on temporary tensors).
    @inline(__always)
    package func interpret(_ k: Int, _ base: UnsafeMutableRawPointer) -> Bool {
        let instruction = instructions.baseAddress! + k
        switch instruction.pointee.kind {
        case .gather:
            if instruction.pointee.float64 { gather(instruction, base, Double.self) } else { gather(instruction, base, Float.self) }
        case .unary where exact:
            if instruction.pointee.float64 { unary(instruction, base, Double.self) } else { unary(instruction, base, Float.self) }
        case .binary where exact:
            if instruction.pointee.float64 { binary(instruction, base, Double.self) } else { binary(instruction, base, Float.self) }
        case .multiplyAdd where exact:
            if instruction.pointee.float64 { multiplyAdd(instruction, base, Double.self) } else { multiplyAdd(instruction, base, Float.self) }
        case .reduce where exact:
            if instruction.pointee.float64 { reduce(instruction, base, Double.self) } else { reduce(instruction, base, Float.self) }
        case .matmul where exact:
            let i = instruction.pointee
            products[i.product].run(i.float64 ? .float64 : .float32, base + i.a, base + i.b, base + i.y)
        default:
            return false
        }
        return true
    }

    /// Runs `range` on the frame at `base`, handing the instructions ``interpret(_:_:)`` cannot run
    /// to `fallback`.
    package func run(_ range: Range<Int>, _ base: UnsafeMutableRawPointer, fallback: (Int) throws -> Void) rethrows {
        for k in range where !interpret(k, base) { try fallback(k) }
    }

    @inline(__always)
    private func pointer<T>(_ base: UnsafeMutableRawPointer, _ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        (base + offset).assumingMemoryBound(to: T.self)
    }

    private func unary<T: KernelFloat>(_ i: UnsafePointer<FrameInstruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        _ = Kernels.withUnaryFunction(i.pointee.op, Kernels.MapBody(x: pointer(base, i.pointee.a, T.self), y: pointer(base, i.pointee.y, T.self), n: i.pointee.n))
    }

    private func binary<T: KernelFloat>(_ i: UnsafePointer<FrameInstruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self)
        let n = i.pointee.n
        if i.pointee.table < 0 {
            let a = pointer(base, i.pointee.a, T.self), b = pointer(base, i.pointee.b, T.self)
            _ = Kernels.withBinaryFunction(i.pointee.op, FlatBody(y: y, a: a, aScalar: i.pointee.aScalar, b: b, bScalar: i.pointee.bScalar, n: n))
        } else if !i.pointee.compact {
            let ta = tables.baseAddress! + i.pointee.table
            _ = Kernels.withBinaryFunction(i.pointee.op, TableBody(y: y, frame: base.assumingMemoryBound(to: T.self), ta: ta, tb: ta + n, n: n))
        } else {
            expanded(i, operands: 2) { start, count, t in
                _ = Kernels.withBinaryFunction(i.pointee.op, TableBody(y: y + start, frame: base.assumingMemoryBound(to: T.self), ta: t, tb: t + count, n: count))
            }
        }
    }

    /// Block by block, the entries of an instruction's compact tables: `body(first element,
    /// count, entries)` with `count` entries per operand, operand after operand.
    @inline(__always)
    private func expanded(_ i: UnsafePointer<FrameInstruction>, operands: Int, _ body: (Int, Int, UnsafePointer<Int>) -> Void) {
        let block = 512, n = i.pointee.n, rules = tables.baseAddress! + i.pointee.table
        withUnsafeTemporaryAllocation(of: Int.self, capacity: operands * block) { buffer in
            let t = buffer.baseAddress!
            var start = 0
            while start < n {
                let count = Swift.min(block, n - start)
                // Each operand's rule decoded where it is used: six loads, no array of rules per call.
                for o in 0..<operands { AffineTable(rules + o * AffineTable.width).fill(t + o * count, from: start, count: count) }
                body(start, count, t)
                start += count
            }
        }
    }

    private func multiplyAdd<T: KernelFloat>(_ i: UnsafePointer<FrameInstruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self)
        let n = i.pointee.n
        if i.pointee.table < 0 {
            let a = pointer(base, i.pointee.a, T.self), b = pointer(base, i.pointee.b, T.self), c = pointer(base, i.pointee.c, T.self)
            for k in 0..<n { y[k] = Kernels.productSum(a[k], b[k], c[k]) }
        } else if !i.pointee.compact {
            let frame = base.assumingMemoryBound(to: T.self)
            let ta = tables.baseAddress! + i.pointee.table, tb = ta + n, tc = tb + n
            for k in 0..<n { y[k] = Kernels.productSum(frame[ta[k]], frame[tb[k]], frame[tc[k]]) }
        } else {
            let frame = base.assumingMemoryBound(to: T.self)
            expanded(i, operands: 3) { start, count, t in
                for k in 0..<count { y[start + k] = Kernels.productSum(frame[t[k]], frame[t[count + k]], frame[t[2 * count + k]]) }
            }
        }
    }

    private func gather<T: KernelFloat>(_ i: UnsafePointer<FrameInstruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self), frame = base.assumingMemoryBound(to: T.self)
        let pad = T(i.pointee.pad)
        guard !i.pointee.compact else {
            expanded(i, operands: 1) { start, count, t in
                for k in 0..<count { y[start + k] = t[k] < 0 ? pad : frame[t[k]] }
            }
            return
        }
        let table = tables.baseAddress! + i.pointee.table
        for k in 0..<i.pointee.n {
            let source = table[k]
            y[k] = source < 0 ? pad : frame[source]
        }
    }

    private func reduce<T: KernelFloat>(_ i: UnsafePointer<FrameInstruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        Kernels.reduceTyped(i.pointee.op, pointer(base, i.pointee.a, T.self), i.pointee.outer, i.pointee.extent, i.pointee.inner,
                            pointer(base, i.pointee.y, T.self), policy)
    }
}

/// A binary function over flat operands (a single-element operand read throughout).
private struct FlatBody<T: KernelFloat>: BinaryKernelBody {
    let y: UnsafeMutablePointer<T>, a: UnsafeMutablePointer<T>, aScalar: Bool, b: UnsafeMutablePointer<T>, bScalar: Bool, n: Int
    @inline(__always) func run<F: BinaryFunction>(_: F.Type) { Kernels.zipFlat(y, a, aScalar: aScalar, b, bScalar: bScalar, n, F.self) }
}

/// A binary function over operands read through index tables of absolute element offsets in the
/// frame (-1: a zero from a folded gather's padding).
private struct TableBody<T: KernelFloat>: BinaryKernelBody {
    let y: UnsafeMutablePointer<T>, frame: UnsafeMutablePointer<T>, ta: UnsafePointer<Int>, tb: UnsafePointer<Int>, n: Int
    @inline(__always) func run<F: BinaryFunction>(_: F.Type) {
        for k in 0..<n {
            let i = ta[k], j = tb[k]
            y[k] = F.apply(i >= 0 ? frame[i] : 0, j >= 0 ? frame[j] : 0)
        }
    }
}
