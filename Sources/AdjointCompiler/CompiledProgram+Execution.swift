import AdjointTensor
import AdjointIR

extension CompiledProgram {
    /// Runs `range` of the instructions on the frame at `base`.
    func execute(_ range: Range<Int>, _ base: UnsafeMutableRawPointer) throws {
        guard !range.isEmpty else { return }
        let exact = NumericSettings.arithmeticIsPlain
        let policy = hasReductions ? KernelPolicy(determinism: NumericSettings.current.policy.determinism, threads: Parallelism.threadCount)
                                   : KernelPolicy(determinism: .strict, threads: 1)
        let (instructions, tables) = (instructions, tables)
        /// Instruction `k` through the kernels' loops (or the ordinary kernels).
        @inline(__always) func interpret(_ k: Int) throws {
            let instruction = instructions.baseAddress! + k
            switch instruction.pointee.kind {
            case .gather:
                if instruction.pointee.float64 { gather(instruction, base, tables, Double.self) } else { gather(instruction, base, tables, Float.self) }
            case .unary where exact:
                if instruction.pointee.float64 { unary(instruction, base, Double.self) } else { unary(instruction, base, Float.self) }
            case .binary where exact:
                if instruction.pointee.float64 { binary(instruction, base, tables, Double.self) } else { binary(instruction, base, tables, Float.self) }
            case .multiplyAdd where exact:
                if instruction.pointee.float64 { multiplyAdd(instruction, base, tables, Double.self) } else { multiplyAdd(instruction, base, tables, Float.self) }
            case .reduce where exact:
                if instruction.pointee.float64 { reduce(instruction, base, policy, Double.self) } else { reduce(instruction, base, policy, Float.self) }
            case .matmul where exact:
                let i = instruction.pointee
                products[i.product].run(i.float64 ? .float64 : .float32, base + i.a, base + i.b, base + i.y)
            default:
                try runFallback(k, base)
            }
        }
        guard exact, let native else {
            for k in range { try interpret(k) }
            return
        }
        // Runs compiled to machine code, where a whole run is asked for.
        let (start, end, functions) = (native.start, native.end, native.functions)
        var k = range.lowerBound
        while k < range.upperBound {
            let s = Int(start[k])
            if s >= 0, end[s] <= range.upperBound {
                functions[s](base)
                k = end[s]
            } else {
                try interpret(k)
                k += 1
            }
        }
    }

    @inline(__always)
    private func pointer<T>(_ base: UnsafeMutableRawPointer, _ offset: Int, _: T.Type) -> UnsafeMutablePointer<T> {
        (base + offset).assumingMemoryBound(to: T.self)
    }

    private func unary<T: FrameFloat>(_ i: UnsafePointer<Instruction>, _ base: UnsafeMutableRawPointer, _: T.Type) {
        _ = T.mapLoop(i.pointee.op, pointer(base, i.pointee.a, T.self), pointer(base, i.pointee.y, T.self), i.pointee.n)
    }

    private func binary<T: FrameFloat>(_ i: UnsafePointer<Instruction>, _ base: UnsafeMutableRawPointer, _ tables: UnsafeBufferPointer<Int>, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self)
        let n = i.pointee.n
        if i.pointee.table < 0 {
            let a = pointer(base, i.pointee.a, T.self), b = pointer(base, i.pointee.b, T.self)
            _ = T.zipLoop(i.pointee.op, y, a, aScalar: i.pointee.aScalar, b, bScalar: i.pointee.bScalar, n)
        } else {
            let ta = tables.baseAddress! + i.pointee.table
            _ = T.zipTableLoop(i.pointee.op, y, frame: base.assumingMemoryBound(to: T.self), ta, ta + n, n)
        }
    }

    private func multiplyAdd<T: FrameFloat>(_ i: UnsafePointer<Instruction>, _ base: UnsafeMutableRawPointer, _ tables: UnsafeBufferPointer<Int>, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self)
        let n = i.pointee.n
        if i.pointee.table < 0 {
            let a = pointer(base, i.pointee.a, T.self), b = pointer(base, i.pointee.b, T.self), c = pointer(base, i.pointee.c, T.self)
            T.multiplyAddLoop(y, a, b, c, n)
        } else {
            let frame = base.assumingMemoryBound(to: T.self)
            let ta = tables.baseAddress! + i.pointee.table, tb = ta + n, tc = tb + n
            T.multiplyAddTableLoop(y, frame: frame, ta, tb, tc, n)
        }
    }

    private func gather<T: KernelFloat>(_ i: UnsafePointer<Instruction>, _ base: UnsafeMutableRawPointer, _ tables: UnsafeBufferPointer<Int>, _: T.Type) {
        let y = pointer(base, i.pointee.y, T.self), frame = base.assumingMemoryBound(to: T.self)
        let table = tables.baseAddress! + i.pointee.table, pad = T(i.pointee.pad)
        for k in 0..<i.pointee.n {
            let source = table[k]
            y[k] = source < 0 ? pad : frame[source]
        }
    }

    private func reduce<T: FrameFloat>(_ i: UnsafePointer<Instruction>, _ base: UnsafeMutableRawPointer, _ policy: KernelPolicy, _: T.Type) {
        T.reduceLoop(i.pointee.op, pointer(base, i.pointee.a, T.self), i.pointee.outer, i.pointee.extent, i.pointee.inner,
                            pointer(base, i.pointee.y, T.self), policy)
    }

    /// Runs instruction `k` through the ordinary kernel on temporary tensors.
    private func runFallback(_ k: Int, _ base: UnsafeMutableRawPointer) throws {
        let f = fallbacks[k]
        let inputs = f.inputs.map { operand -> Tensor in
            let t = Tensor(uninitialized: operand.type.shape, dtype: operand.type.dtype)
            if operand.table >= 0 {
                // A folded gather: its elements through its table (only f64/f32 gathers fold).
                let size = operand.type.dtype.byteSize
                for k in 0..<operand.type.elementCount {
                    let source = tables[operand.table + k]
                    if source >= 0 { (t.rawPointer + k * size).copyMemory(from: base + source * size, byteCount: size) }
                    else { (t.rawPointer + k * size).initializeMemory(as: UInt8.self, repeating: 0, count: size) }
                }
            } else {
                t.rawPointer.copyMemory(from: base + operand.offset, byteCount: operand.type.byteCount)
            }
            return t
        }
        let output = try Kernels.execute(f.op, f.attributes, inputs)
        guard output.valueType == f.output.type else {
            throw TensorError.shapeMismatch(op: f.op.rawValue, detail: "the compiled program expects \(f.output.type), the operator returned \(output.valueType)")
        }
        (base + f.output.offset).copyMemory(from: output.rawPointer, byteCount: f.output.type.byteCount)
    }
}
